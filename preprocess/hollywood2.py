"""Hollywood2 actions layout -> one multi-label frame store (default 234x100) with the standard split.

    python -m preprocess.hollywood2 SRC OUT.h5 [common options]

SRC holds `AVIClips/<clip>.avi` and `ClipSets/<Action>_{train,test}.txt` with lines `<clip>  1|-1` (1: the
clip shows the action). The 12 actions are the classes; a clip may have several. The train/test lists give
the standard split, stored as `FrameStore.splits["standard"]`. Clips listed in no train/test file
(e.g. the `autotrain` set) are not stored.
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np

from preprocess.ingest import Clip, IngestError, check_source, ingest, run_cli
from ttrnn.store import DEFAULT_CODEC

ACTIONS = ["AnswerPhone", "DriveCar", "Eat", "FightPerson", "GetOutCar", "HandShake", "HugPerson", "Kiss", "Run",
           "SitDown", "SitUp", "StandUp"]
LIST_RE = re.compile(r"^(.+)_(train|test)\.txt$")


def _root(src):
    check_source(src)
    for cand in (src, os.path.join(src, "Hollywood2")):
        if os.path.isdir(os.path.join(cand, "ClipSets")) and os.path.isdir(os.path.join(cand, "AVIClips")):
            return cand
    raise IngestError(f"{src} is not a Hollywood2 layout (expected AVIClips/ and ClipSets/ folders)")


def scan(src):
    """(clips, classes, splits) of a Hollywood2 tree; labels are multi-hot over the actions."""
    root = _root(src)
    lists = {}
    for fname in sorted(os.listdir(os.path.join(root, "ClipSets"))):
        m = LIST_RE.match(fname)
        if m and m.group(1) != "actions":
            lists.setdefault(m.group(1), {})[m.group(2)] = os.path.join(root, "ClipSets", fname)
    classes = [a for a in ACTIONS if a in lists] or sorted(a for a, v in lists.items() if len(v) == 2)
    if not classes:
        raise IngestError(f"no <Action>_train.txt / <Action>_test.txt lists in {os.path.join(root, 'ClipSets')}")
    positive, split_of = {}, {}
    for c, action in enumerate(classes):
        for part, path in sorted(lists[action].items()):
            with open(path, encoding="utf-8", errors="replace") as fh:
                for ln in fh:
                    f = ln.split()
                    if len(f) < 2:
                        continue
                    name = os.path.splitext(f[0])[0]
                    split_of[name] = part
                    labs = positive.setdefault(name, set())
                    if f[1] == "1":
                        labs.add(c)
    clips = []
    for name in sorted(positive):
        labs = sorted(positive[name])
        hot = np.zeros(len(classes), np.uint8)
        hot[labs] = 1
        rel = f"AVIClips/{name}.avi"
        clips.append(Clip(clip_id=name, path=os.path.abspath(os.path.join(root, rel)), source=rel,
                          class_name="+".join(classes[i] for i in labs), label=labs[0] if labs else -1,
                          group="", labels=tuple(int(x) for x in hot)))
    splits = {"standard": {p: [c.clip_id for c in clips if split_of[c.clip_id] == p] for p in ("train", "test")}}
    return clips, classes, splits


def build_store(src, out, size=(234, 100), frame_skip=1, fps=None, workers=None, compression=DEFAULT_CODEC,
                limit=None, overwrite=False, progress=True, quality=None):
    """Preprocess Hollywood2 into the multi-label store `out`; returns the summary dict; raises IngestError."""
    clips, classes, splits = scan(src)
    return ingest("hollywood2", clips, classes, out, size=size, frame_skip=frame_skip, fps=fps, workers=workers,
                  compression=compression, limit=limit, overwrite=overwrite, progress=progress, quality=quality,
                  multilabel=True, splits=splits)


def main(argv=None):
    return run_cli(build_store, argv, "python -m preprocess.hollywood2", __doc__.split("\n\n")[0],
                   default_size=(234, 100))


if __name__ == "__main__":
    sys.exit(main())
