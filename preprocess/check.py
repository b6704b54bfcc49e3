"""Verify a frame store: every frame of every listed clip read and checked against its checksum.

    python -m preprocess.check STORE [--repair] [--quiet]

Lists the damaged clips (one line each, with the reason) and exits 1 if there are any; `--repair` drops them
from the index (and deletes their shard files), so that the next `preprocess` run of the same command decodes
them again, and exits 0. Schema-1 stores carry no checksums: they are read through (HDF5 errors still show)
but cannot be repaired in place (transcode them).
"""

from __future__ import annotations

import sys

from preprocess.progress import progress as progress_bar
from ttrnn.cli import OK, RUN_ERROR, USAGE, OneLineParser
from ttrnn.store import CorruptClipError, FrameStore, StoreError, StoreWriter


def damaged_clips(path, progress=False):
    """[(clip_id, reason)] of the clips of store `path` that fail to read or fail their checksums."""
    bad = []
    with FrameStore(path) as store:
        bar = progress_bar(len(store), f"check {path}") if progress else None
        for i in range(len(store)):
            try:
                store.read(i)
            except CorruptClipError as e:
                bad.append((str(store.index["clip_id"][i]), str(e)))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    return bad


def repair(path, clip_ids):
    """Drop `clip_ids` from the store's index (atomic commit under the writer lock), delete their shards."""
    with StoreWriter.reopen(path) as writer:
        writer.drop(clip_ids)


def main(argv=None):
    ap = OneLineParser(prog="python -m preprocess.check", description=__doc__.split("\n\n")[0])
    ap.add_argument("store", help="a frame store (.h5)")
    ap.add_argument("--repair", action="store_true", help="drop damaged clips so that preprocess redoes them")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    try:
        bad = damaged_clips(a.store, progress=not a.quiet)
        n = len(FrameStore(a.store))
        print(f"checked {n} clips of {a.store}: {len(bad)} damaged")
        for cid, reason in bad:
            print(f"  {cid}: {reason}")
        if bad and a.repair:
            repair(a.store, [cid for cid, _ in bad])
            print(f"dropped {len(bad)} damaged clips from the index: run the same preprocess command to redo them")
            return OK
    except StoreError as e:  # not a store, truncated: bad input, the usage status of every CLI
        print(f"error: {e}", file=sys.stderr)
        return USAGE
    return RUN_ERROR if bad else OK


if __name__ == "__main__":
    sys.exit(main())
