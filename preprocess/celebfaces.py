"""YouTube Celebrities (47 people) layout: SRC/<person>/<clip>.avi -> one frame store (default 160x120).

    python -m preprocess.celebfaces SRC OUT.h5 [common options]

One folder per person; the class is the person. A flat folder of clips named `NNNN_..._<person>.avi` is also
accepted: then the person is the file name without its leading numeric fields.
"""

from __future__ import annotations

import os
import re
import sys

from preprocess.folders import scan_classes
from preprocess.ingest import Clip, IngestError, assign_ids, check_source, ingest, run_cli, walk_videos
from ttrnn.store import DEFAULT_CODEC

NUM_PEOPLE = 47
LEADING_NUMBERS = re.compile(r"^(?:\d+_)+")


def scan(src):
    """(clips, classes): one class per person folder, or per person name in flat file names."""
    check_source(src)
    try:
        return scan_classes(src, "SRC/<person>/<clip>.avi, one folder per person")
    except IngestError:
        top = os.path.abspath(src)
        flat = [p for p in walk_videos(src) if os.path.dirname(os.path.abspath(p)) == top]
        if not flat:
            raise
    names = {p: LEADING_NUMBERS.sub("", os.path.splitext(os.path.basename(p))[0]) for p in flat}
    classes = sorted(set(names.values()))
    clips = [Clip(clip_id="", path=os.path.abspath(p), source=os.path.basename(p), class_name=names[p],
                  label=classes.index(names[p])) for p in flat]
    return assign_ids(clips), classes


def build_store(src, out, size=(160, 120), frame_skip=1, fps=None, workers=None, compression=DEFAULT_CODEC,
                limit=None, overwrite=False, progress=True, quality=None):
    """Preprocess a YouTube Celebrities tree into `out`; returns the summary dict; raises IngestError."""
    clips, classes = scan(src)
    if len(classes) != NUM_PEOPLE:
        print(f"note: {len(classes)} people found (the YouTube Celebrities dataset has {NUM_PEOPLE})",
              file=sys.stderr)
    return ingest("celebfaces", clips, classes, out, size=size, frame_skip=frame_skip, fps=fps, workers=workers,
                  compression=compression, limit=limit, overwrite=overwrite, progress=progress, quality=quality)


def main(argv=None):
    return run_cli(build_store, argv, "python -m preprocess.celebfaces", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
