"""HMDB51 (51 actions, 6,766 clips, three official splits): SRC/<class>/<video>.avi + the split files
(testTrainMulti_7030_splits/) -> one frame store with the three splits.

    python -m preprocess.hmdb51 hmdb51_org hmdb51.h5 --splits testTrainMulti_7030_splits [--size WxH ...]

Labels are the class folders in sorted order. The split files `<class>_test_split{1,2,3}.txt` list each video of
the class with an id: 1 = train, 2 = test, 0 = not used (70 train and 30 test clips per class and split); they become
the store splits "split01" … "split03" (`python -m experiments.hmdb51 --split 1|2|3`, as UCF101's), and a clip with
id 0 is on neither side of that split. A split file that is missing for a class, names a video that is not in its
class folder, lists a video twice or has a line that is not `<video>.avi <0|1|2>` is one line and exit 2. Groups
(HMDB51 defines none): the source video's title, the file name before the action and its six tags
(`April_09_brush_hair_u_nm_np1_ba_goo_0.avi` -> `April_09`), so the clips cut from one movie or YouTube video
share a group (`--protocol logo`); the official splits keep a source video on one side too.
"""

from __future__ import annotations

import os
import re
import sys

from preprocess import folders
from preprocess.ingest import IngestError, ingest, run_cli
from ttrnn.store import DEFAULT_CODEC

LIST_DIR = "testTrainMulti_7030_splits"
SPLIT_FILE_RE = re.compile(r"^(.+)_test_split(\d+)\.txt$")
USES = {"0": None, "1": "train", "2": "test"}
# The six tags after the action in a file name: visible body part, camera motion, people, viewpoint, quality, number
TAGS_RE = re.compile(r"_[a-z]+_(?:cm|nm)_np\d+_[a-z]+_(?:bad|med|goo)_\d+$")


def group_of(stem, class_name):
    """The source title of an HMDB51 clip: its file stem without the six tags and the action (`module docstring`);
    the stem itself when it does not follow the pattern."""
    title = TAGS_RE.sub("", stem)
    if title != stem and title.lower().endswith(f"_{class_name.lower()}"):
        return title[:-len(class_name) - 1] or stem
    return title


def find_list_dir(src, splits_dir=None):
    """The folder of the split files: `splits_dir`, else SRC/testTrainMulti_7030_splits, SRC/.. beside SRC, or SRC."""
    if splits_dir is not None:
        if not os.path.isdir(splits_dir):
            raise IngestError(f"split folder not found: {splits_dir}")
        return splits_dir
    for folder in (os.path.join(src, LIST_DIR), os.path.join(src, "..", LIST_DIR), src):
        if os.path.isdir(folder) and any(SPLIT_FILE_RE.match(n) for n in os.listdir(folder)):
            return folder
    raise IngestError(f"no HMDB51 split files (<class>_test_split1.txt) in {src}/{LIST_DIR}, beside {src} or in it; "
                      f"give the official ones with --splits {LIST_DIR}")


def read_splits(list_dir, clips, classes):
    """The store splits {"split01": {"train": [clip_id], "test": [clip_id]}, ...} from the split files in
    `list_dir` (module docstring); IngestError (one line: file, line and what is wrong) for a bad file."""
    files = {}
    for name in sorted(os.listdir(list_dir)):
        m = SPLIT_FILE_RE.match(name)
        if m:
            files[(m.group(1), int(m.group(2)))] = os.path.join(list_dir, name)
    if not files:
        raise IngestError(f"no HMDB51 split files (<class>_test_split1.txt) in {list_dir}")
    known = {c.lower(): c for c in classes}
    strangers = sorted({cls for cls, _ in files if cls.lower() not in known})
    if strangers:
        raise IngestError(f"{files[next(k for k in files if k[0] == strangers[0])]}: class {strangers[0]!r} has no "
                          f"folder in the source")
    numbers = sorted({n for _, n in files})
    by_class = {}
    for c in clips:
        by_class.setdefault(c.class_name, {})[os.path.basename(c.source).lower()] = c.clip_id
    splits = {}
    for n in numbers:
        parts = splits.setdefault(f"split{n:02d}", {"train": [], "test": []})
        for cls in classes:
            path = next((p for (c, k), p in files.items() if k == n and c.lower() == cls.lower()), None)
            if path is None:
                raise IngestError(f"{list_dir}: no {cls}_test_split{n}.txt (every class needs its file for split {n})")
            for side, ids in _read_split_file(path, cls, by_class.get(cls, {})).items():
                parts[side].extend(ids)
    return splits


def _read_split_file(path, cls, videos):
    """{"train": [clip_id], "test": [clip_id]} of one split file of class `cls`, whose clips are `videos`
    {file name lower-cased: clip id}."""
    out, seen = {"train": [], "test": []}, set()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{number}"
            if len(fields) != 2 or fields[1] not in USES:
                raise IngestError(f"{where}: expected '<video>.avi <id>' with id 0 (not used), 1 (train) or 2 "
                                  f"(test), got {line.strip()!r}")
            video = fields[0].lower()
            if video in seen:
                raise IngestError(f"{where}: {fields[0]} is listed twice")
            seen.add(video)
            if video not in videos:
                raise IngestError(f"{where}: {fields[0]} is not in the class folder {cls}/ of the source")
            if USES[fields[1]] is not None:
                out[USES[fields[1]]].append(videos[video])
    return out


def build_store(src, out, size=(160, 120), frame_skip=1, fps=None, workers=None, compression=DEFAULT_CODEC,
                limit=None, overwrite=False, progress=True, quality=None, splits_dir=None):
    """Preprocess an HMDB51 tree with its official split files into `out`; returns the ingest summary
    (summary["status"]: 0 all stored, 1 some clips failed). Raises IngestError when nothing can be done."""
    clips, classes = folders.scan_classes(src, "the HMDB51 layout SRC/<class>/<video>.avi")
    for c in clips:
        c.group = group_of(os.path.splitext(os.path.basename(c.source))[0], c.class_name)
    splits = read_splits(find_list_dir(src, splits_dir), clips, classes)
    return ingest("hmdb51", clips, classes, out, size=size, frame_skip=frame_skip, fps=fps, workers=workers,
                  compression=compression, limit=limit, overwrite=overwrite, progress=progress, quality=quality,
                  splits=splits)


def main(argv=None):
    def extra(ap):
        ap.add_argument("--splits", dest="splits_dir", default=None,
                        help=f"folder with <class>_test_split{{1,2,3}}.txt (default SRC/{LIST_DIR} or beside SRC)")
    return run_cli(build_store, argv, "python -m preprocess.hmdb51", __doc__.split("\n\n")[0], extra_args=extra)


if __name__ == "__main__":
    sys.exit(main())
