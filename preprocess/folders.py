"""Any class-per-folder video tree (UCF101 / HMDB51 style): SRC/<class>/.../<clip>.<video ext> -> one store.

    python -m preprocess.folders SRC OUT.h5 [--splits DIR] [common options]

Split lists, if found in SRC or in --splits DIR, are recorded in the store (`FrameStore.splits`):
- UCF101 style `trainlist01.txt` / `testlist01.txt` (lines `Class/clip.avi [label]`) -> split "split01"; a
  `classInd.txt` there (lines `<1-based label> <Class>`) sets the label order (else sorted folder names);
- HMDB51 style `<class>_test_split1.txt` (lines `clip.avi 0|1|2`, 1 train, 2 test) -> split "split1".
Groups: UCF101's `_gNN_` in the file name, else the folder between class and clip, else empty.
"""

from __future__ import annotations

import os
import re
import sys

from preprocess.ingest import Clip, IngestError, assign_ids, check_source, ingest, run_cli, walk_videos
from ttrnn.store import DEFAULT_CODEC

UCF_LIST_RE = re.compile(r"^(train|test)list(\d+)\.txt$", re.I)
HMDB_LIST_RE = re.compile(r"^(.+)_test_split(\d+)\.txt$", re.I)
GROUP_RE = re.compile(r"_(g\d+)_c\d+$")
SKIP_DIRS = {"annotation", "annotations"}


def scan_classes(src, dataset_hint="a class-per-folder tree SRC/<class>/.../<clip>.avi"):
    """(clips, classes) for SRC/<class>/.../<video>; classes are the sub-folders holding videos, sorted."""
    check_source(src)
    entries = sorted(e for e in os.listdir(src) if not e.startswith("."))
    found = {}
    for cls in entries:
        root = os.path.join(src, cls)
        if os.path.isdir(root) and cls.lower() not in SKIP_DIRS:
            vids = walk_videos(root, SKIP_DIRS)
            if vids:
                found[cls] = vids
    if not found:
        raise IngestError(f"no videos found in class folders of {src} (expected {dataset_hint})")
    classes = sorted(found)
    clips = []
    for label, cls in enumerate(classes):
        for path in found[cls]:
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            parts = rel.split("/")
            stem = os.path.splitext(parts[-1])[0]
            m = GROUP_RE.search(stem)
            group = m.group(1) if m else ("/".join(parts[1:-1]) if len(parts) > 2 else "")
            clips.append(Clip(clip_id=stem, path=os.path.abspath(path), source=rel, class_name=cls, label=label,
                              group=group))
    return assign_ids(clips), classes


def read_split_lists(clips, list_dir):
    """Splits {name: {"train": [clip_id], "test": [clip_id]}} from split list files in `list_dir`."""
    by_rel = {c.source.lower(): c.clip_id for c in clips}
    by_name = {}
    for c in clips:
        by_name.setdefault(os.path.basename(c.source).lower(), []).append(c.clip_id)

    def lookup(entry):
        entry = entry.strip().replace("\\", "/").lower()
        if entry in by_rel:
            return by_rel[entry]
        ids = by_name.get(os.path.basename(entry), [])
        return ids[0] if len(ids) == 1 else None

    splits = {}
    if not list_dir or not os.path.isdir(list_dir):
        return splits
    for fname in sorted(os.listdir(list_dir)):
        path = os.path.join(list_dir, fname)
        m, h = UCF_LIST_RE.match(fname), HMDB_LIST_RE.match(fname)
        if m:
            part, name = m.group(1).lower(), f"split{m.group(2)}"
            with open(path, encoding="utf-8", errors="replace") as fh:
                ids = [lookup(ln.split()[0]) for ln in fh if ln.strip()]
            splits.setdefault(name, {"train": [], "test": []})[part].extend(i for i in ids if i)
        elif h:
            name = f"split{h.group(2)}"
            sp = splits.setdefault(name, {"train": [], "test": []})
            with open(path, encoding="utf-8", errors="replace") as fh:
                for ln in fh:
                    f = ln.split()
                    if len(f) >= 2 and f[1] in ("1", "2"):
                        cid = lookup(f[0])
                        if cid:
                            sp["train" if f[1] == "1" else "test"].append(cid)
    return splits


def read_class_index(path):
    """Class names in label order from a UCF101 `classInd.txt` (lines `<label> <Class>`, labels 1..N)."""
    entries = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[0].isdigit():
                raise IngestError(f"{path}:{n}: expected '<label> <Class>', got {line.strip()!r}")
            entries[int(fields[0])] = fields[1]
    if sorted(entries) != list(range(1, len(entries) + 1)):
        raise IngestError(f"{path}: labels must be 1..{len(entries)} without gaps")
    return [entries[i] for i in range(1, len(entries) + 1)]


def relabel(clips, classes):
    """Set each clip's label to its class folder's position in `classes` (matched ignoring case, as UCF101's
    folders and classInd.txt agree only that way for some tools); raises IngestError for a folder not listed."""
    position = {c.lower(): i for i, c in enumerate(classes)}
    missing = sorted({c.class_name for c in clips if c.class_name.lower() not in position})
    if missing:
        raise IngestError(f"class folders not in the class index: {', '.join(missing[:5])}")
    for c in clips:
        c.label = position[c.class_name.lower()]
        c.class_name = classes[c.label]
    return clips


def build_store(src, out, size=(160, 120), frame_skip=1, fps=None, workers=None, compression=DEFAULT_CODEC,
                limit=None, overwrite=False, progress=True, quality=None, splits_dir=None, dataset="folders"):
    """Preprocess a class-per-folder tree into `out`; split lists from `splits_dir` (default: SRC) are recorded,
    and its classInd.txt, if any, orders the labels. Returns the summary dict (summary["status"]: 0 all stored,
    1 some failed); raises IngestError."""
    clips, classes = scan_classes(src)
    if splits_dir is not None and not os.path.isdir(splits_dir):
        raise IngestError(f"split list folder not found: {splits_dir}")
    list_dir = splits_dir or src
    if os.path.isfile(os.path.join(list_dir, "classInd.txt")):
        classes = read_class_index(os.path.join(list_dir, "classInd.txt"))
        clips = relabel(clips, classes)
    splits = read_split_lists(clips, list_dir)
    return ingest(dataset, clips, classes, out, size=size, frame_skip=frame_skip, fps=fps, workers=workers,
                  compression=compression, limit=limit, overwrite=overwrite, progress=progress, quality=quality,
                  splits=splits or None)


def main(argv=None):
    def extra(ap):
        ap.add_argument("--splits", dest="splits_dir", default=None,
                        help="folder with trainlist01.txt/testlist01.txt (or HMDB51 *_test_split1.txt); default SRC")
    return run_cli(build_store, argv, "python -m preprocess.folders", __doc__.split("\n\n")[0], extra_args=extra)


if __name__ == "__main__":
    sys.exit(main())
