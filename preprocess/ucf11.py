"""UCF11 (YouTube Action) layout: SRC/<class>/<group>/<clip>.mpg|.avi -> one frame store.

    python -m preprocess.ucf11 SRC OUT.h5 [--size WxH --frame-skip K --fps F --workers N --codec C
                                           --limit N --overwrite]

Groups come from the pattern v_<name>_<NN> of the group folder (or of the file name), since folder prefixes
differ from class names (basketball/v_shooting_01, walking/v_walk_dog_15). `Annotation` folders are skipped.
Labels are the class folders in sorted order (the 11 UCF11 classes for the real dataset).
"""

from __future__ import annotations

import os
import re
import sys

from preprocess.ingest import Clip, IngestError, assign_ids, check_source, ingest, run_cli, walk_videos
from ttrnn.store import DEFAULT_CODEC

GROUP_RE = re.compile(r"^(v_.+?_\d+)(?:_\d+)?$")
SKIP_DIRS = {"annotation", "annotations"}


def _group_of(parts, stem):
    """Group name from the folder names below the class folder, or from the clip's file name."""
    for p in parts[::-1]:
        if re.match(r"^v_.+_\d+$", p):
            return p
    m = GROUP_RE.match(stem)
    return m.group(1) if m else (parts[-1] if parts else "")


def scan(src):
    """(clips, classes) of a UCF11-layout tree; raises IngestError if it is not one."""
    check_source(src)
    entries = sorted(e for e in os.listdir(src) if not e.startswith("."))
    class_dirs = [e for e in entries if os.path.isdir(os.path.join(src, e)) and e.lower() not in SKIP_DIRS]
    found = {}
    for cls in class_dirs:
        root = os.path.join(src, cls)
        vids = walk_videos(root, SKIP_DIRS)
        if vids:
            found[cls] = vids
    if not found:
        # a single wrapper folder (e.g. UCF11_updated_mpg/) around the class folders
        if len(class_dirs) == 1:
            return scan(os.path.join(src, class_dirs[0]))
        raise IngestError(f"no videos found in {src} (expected the UCF11 layout SRC/<class>/<group>/<clip>.mpg)")
    classes = sorted(found)
    clips = []
    for label, cls in enumerate(classes):
        for path in found[cls]:
            rel = os.path.relpath(path, src)
            parts = rel.split(os.sep)[1:-1]
            stem = os.path.splitext(os.path.basename(path))[0]
            clips.append(Clip(clip_id=stem, path=os.path.abspath(path), source=rel.replace(os.sep, "/"),
                              class_name=cls, label=label, group=_group_of(parts, stem)))
    return assign_ids(clips), classes


def build_store(src, out, size=(160, 120), frame_skip=1, fps=None, workers=None, compression=DEFAULT_CODEC,
                limit=None, overwrite=False, progress=True, quality=None):
    """Preprocess a UCF11 tree into the store `out`; returns the summary dict (summary["status"]: 0 all stored,
    1 some clips failed). Raises preprocess.ingest.IngestError when nothing can be done."""
    clips, classes = scan(src)
    return ingest("ucf11", clips, classes, out, size=size, frame_skip=frame_skip, fps=fps, workers=workers,
                  compression=compression, limit=limit, overwrite=overwrite, progress=progress, quality=quality)


def main(argv=None):
    return run_cli(build_store, argv, "python -m preprocess.ucf11", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
