"""Verify a frame store: its shard folder first, then every frame of every listed clip against its checksum.

    python -m preprocess.check STORE [--repair] [--quiet]

A store is two things, STORE and STORE.clips/. A shard folder that is missing, empty or another store's is one
line and exit 2 (copy both). Damaged clips are listed (one line each, with the reason), exit 1; `--repair` drops
them from the index (and deletes their shard files), so that the next `preprocess` run of the same command
decodes them again, and exits 0.

An index that is damaged, truncated or missing while its shard folder is there is one line and exit 2, and
`--repair` rebuilds it from the shards (`ttrnn.store.repair`: every shard's checksums read, nothing decoded
again), lists the damaged shards it left out, and exits 0. Schema-1 stores carry no checksums: they are read
through (HDF5 errors still show) but cannot be repaired in place (transcode them).
"""

from __future__ import annotations

import sys

from preprocess.progress import progress as progress_bar
from ttrnn.cli import OK, RUN_ERROR, USAGE, OneLineParser
from ttrnn.store import (
    CorruptClipError,
    FrameStore,
    StoreError,
    StoreLockedError,
    StoreWriter,
    rebuild_index,
    shard_dir,
)
from ttrnn.store.schema import rebuild_hint


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


def rebuild(path, progress=False):
    """Rebuild the index of store `path` from its shards (`ttrnn.store.rebuild_index`), printing what was done;
    returns the exit status (0)."""
    from ttrnn.store.schema import shard_files
    bar = progress_bar(len(shard_files(path)), f"rebuild {path}") if progress else None
    try:
        r = rebuild_index(path, progress=None if bar is None else bar.update)
    finally:
        if bar is not None:
            bar.close()
    for note in r["notes"]:
        print(f"note: {note}")
    splits = f" ({', '.join(r['splits'])})" if r["splits"] else ""
    print(f"rebuilt the index of {path} from {shard_dir(path)}/ in {r['seconds']:.1f} s: {r['clips']} clips, "
          f"{len(r['damaged'])} damaged shards left out (parameters: {r['params_from']}; splits{splits} and "
          f"failures: {r['splits_from']})")
    for name, reason in r["damaged"]:
        print(f"  {name}: {reason}")
    if r["damaged"]:
        print("run the same preprocess command to decode the clips of the damaged shards again")
    if r["foreign"] or r["duplicates"]:
        print(f"left alone: {r['foreign']} shards of other stores, {r['duplicates']} second copies of a clip "
              f"(the next preprocess run of this store deletes them)")
    return OK


def main(argv=None):
    ap = OneLineParser(prog="python -m preprocess.check", description=__doc__.split("\n\n")[0])
    ap.add_argument("store", help="a frame store (.h5)")
    ap.add_argument("--repair", action="store_true",
                    help="drop damaged clips so that preprocess redoes them; rebuild a damaged or lost index from "
                         "the shards")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    try:
        try:
            store = FrameStore(a.store)
        except StoreError:
            if a.repair and rebuild_hint(a.store):   # the index is unreadable, its shards are there
                return rebuild(a.store, progress=not a.quiet)
            raise
        with store:
            store.check_shards(partial=False)   # a whole folder missing or another store's: one line, not per clip
            n = len(store)
        bad = damaged_clips(a.store, progress=not a.quiet)
        print(f"checked {n} clips of {a.store}: {len(bad)} damaged")
        for cid, reason in bad:
            print(f"  {cid}: {reason}")
        if bad and a.repair:
            repair(a.store, [cid for cid, _ in bad])
            print(f"dropped {len(bad)} damaged clips from the index: run the same preprocess command to redo them")
            return OK
    except StoreLockedError as e:  # another process is writing the store: a runtime condition
        print(f"error: {e}", file=sys.stderr)
        return RUN_ERROR
    except StoreError as e:  # not a store, truncated, no shards: bad input, the usage status of every CLI
        print(f"error: {e}", file=sys.stderr)
        return USAGE
    return RUN_ERROR if bad else OK


if __name__ == "__main__":
    sys.exit(main())
