"""The batch feed: what it yields equals the store's clips, bucketing cuts padding, memory does not grow with clips."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import REPO, make_store

from ttrnn.data import BatchFeed, InputSpec, ReaderPool, map_batches, padded_length
from ttrnn.store import FrameStore


def assert_same_batches(got, want):
    """Two sequences of (x, y) batches are equal, batch by batch."""
    assert len(got) == len(want)
    for (xa, ya), (xb, yb) in zip(got, want):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def expected_batches(feed, epoch):
    """The batches a sequence feed's `batches(epoch)` must yield, read clip by clip with `FrameStore.read` and
    pre-padded here: a reference that shares neither the feed's readers nor its buffers."""
    out = []
    for positions, clips in feed.epoch_plan(epoch):
        t = feed.batch_length(positions)
        x = np.zeros((len(clips), t) + feed.frame_shape(), np.uint8)
        for b, clip in enumerate(clips):
            frames = feed.store.read(clip.row, max_len=clip.max_len, frame_skip=clip.frame_skip)[:t]
            x[b, t - len(frames):] = frames
        out.append((x, feed.targets[positions]))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = make_store(tmp_path_factory.mktemp("data") / "s.h5", num_classes=3, groups=2, clips_per_group=4,
                      lengths=(3, 30), size=(16, 12))
    return FrameStore(path)


def test_sequence_batches_are_prepadded_truncated_clips(store):
    spec = InputSpec("sequence", max_len=10, frame_skip=2, pad_multiple=4)
    rows = np.arange(len(store))
    feed = BatchFeed(store, rows, spec, batch_size=5, training=True, seed=3)
    seen = 0
    for x, y in feed.batches(epoch=1):
        assert x.dtype == np.uint8 and x.shape[2:] == (12, 16, 3)
        for b in range(len(x)):
            real = x[b][np.any(x[b] != 0, axis=(1, 2, 3))]
            assert len(real) <= 10
            # real frames sit at the end (pre-padding), zero frames before them
            t = x.shape[1]
            assert not np.any(x[b, :t - len(real)])
        seen += len(x)
    assert seen == len(store)


def test_feed_content_equals_store_read(store):
    spec = InputSpec("sequence", max_len=7, frame_skip=3, pad_multiple=1)
    feed = BatchFeed(store, [0, 5, 9], spec, batch_size=1, training=False, bucket=False)
    for (x, y), row in zip(feed.batches(), [0, 5, 9]):
        clip = store.read(row, max_len=7, frame_skip=3)
        np.testing.assert_array_equal(x[0, x.shape[1] - len(clip):], clip)
        np.testing.assert_array_equal(y[0], store.label_matrix()[row])


def test_worker_processes_give_the_same_batches(store):
    spec = InputSpec("sequence", max_len=20)
    rows = np.arange(len(store))
    local = list(BatchFeed(store, rows, spec, 4, training=True, seed=1).batches(2))
    with ReaderPool(store.path, workers=2) as pool:
        remote = list(BatchFeed(store, rows, spec, 4, training=True, seed=1, reader=pool).batches(2))
    assert_same_batches(local, remote)


def test_map_batches_lets_each_batch_go_so_two_buffers_serve_the_epoch(store):
    """The trainer's loop (`map_batches`) over a feed's tf.data pipeline: fn sees every batch in order, and as each
    batch is released before the next fetch, the reader fills the other of two buffers (a loop that still held the
    previous batch while fetching made a third batch-sized buffer)."""
    spec = InputSpec("sequence", max_len=20, pad_multiple=4)
    rows = np.arange(len(store))
    want = expected_batches(BatchFeed(store, rows, spec, 2, training=True, seed=1), 1)
    assert len(want) >= 6
    with ReaderPool(store.path, workers=0) as reader:
        feed = BatchFeed(store, rows, spec, 2, training=True, seed=1, reader=reader)
        for _ in range(4):   # a `for` loop over the dataset made a third buffer in most such epochs
            got = list(map_batches(feed.dataset(lambda: 1), lambda b: (b[0].numpy().copy(), b[1].numpy())))
        assert reader.buffers.allocated <= 2
    assert_same_batches(got, want)


def test_dataset_gives_the_feeds_batches_without_autotuning(store):
    """`dataset` yields `batches(epoch)`; autotuning is off: with it on, every epoch's iterator teardown waited for
    the tuning thread's next wake-up (period doubling from 10 ms), so demo epochs ended at ~20.5, 41 or 82 s."""
    spec = InputSpec("sequence", max_len=20)
    feed = BatchFeed(store, np.arange(len(store)), spec, 4, training=True, seed=1)
    ds = feed.dataset(lambda: 2)
    assert ds.options().autotune.enabled is False
    got = [(x.numpy(), y.numpy()) for x, y in ds]
    want = list(feed.batches(2))
    assert_same_batches(got, want)


def test_bucketing_cuts_padding(store):
    spec = InputSpec("sequence", max_len=30, pad_multiple=1)
    rows = np.arange(len(store))
    bucketed = BatchFeed(store, rows, spec, 4, training=True, bucket=True).padding_waste()
    plain = BatchFeed(store, rows, spec, 4, training=True, bucket=False).padding_waste()
    assert bucketed < plain
    assert padded_length([5, 9], InputSpec(max_len=30, pad_multiple=8)) == 16
    assert padded_length([29], InputSpec(max_len=30, pad_multiple=8)) == 30


def test_frame_sampling_modes(store):
    rows = np.arange(len(store))
    for mode, n in (("mlp", 6), ("tsn", 3)):
        feed = BatchFeed(store, rows, InputSpec(mode, num_frames=n), 4, training=True, seed=0)
        x, _ = next(iter(feed.batches()))
        assert x.shape[1] == n


PEAK_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from experiments.report import peak_rss_mb  # VmHWM: not the pytest parent's peak, which ru_maxrss keeps
    from ttrnn.data import BatchFeed, InputSpec
    from ttrnn.store import FrameStore
    store = FrameStore(sys.argv[1])
    feed = BatchFeed(store, np.arange(len(store)), InputSpec("sequence", max_len=40), 4, training=True)
    frames = sum(x.shape[0] * x.shape[1] for x, _ in feed.batches())
    print(json.dumps({"rss": peak_rss_mb(), "frames": frames}))
""")


def test_peak_memory_does_not_grow_with_the_number_of_clips(tmp_path):
    """120 clips hold ~5x the bytes of 24 clips; streaming keeps the reader's peak RSS nearly equal."""
    small = make_store(tmp_path / "small.h5", num_classes=4, groups=3, clips_per_group=2, lengths=(40, 40),
                       compression="none")
    large = make_store(tmp_path / "large.h5", num_classes=4, groups=15, clips_per_group=2, lengths=(40, 40),
                       compression="none")
    peaks = {}
    for name, path in (("small", small), ("large", large)):
        out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path)], capture_output=True, text=True,
                             cwd=REPO, check=True)
        peaks[name] = json.loads(out.stdout.strip().splitlines()[-1])
    assert peaks["large"]["frames"] == 5 * peaks["small"]["frames"]
    # the large store is ~276 MB of frames: holding it would more than double the peak
    assert peaks["large"]["rss"] <= 1.15 * peaks["small"]["rss"], peaks


def test_feed_reuses_its_batch_arrays_without_overwriting_held_batches(store):
    """The feed's batches equal the store's clips read one by one; a consumer that drops each batch before asking
    for the next sees two arrays alternate (the one it holds, the one being filled); one that keeps every batch
    (a list) gets intact batches, i.e. no array still referenced is reused."""
    spec = InputSpec("sequence", max_len=20, pad_multiple=4)
    rows = np.arange(len(store))
    plain = expected_batches(BatchFeed(store, rows, spec, 2, training=True, seed=1), 1)
    assert len(plain) >= 3
    with ReaderPool(store.path, workers=0) as reader:
        feed = BatchFeed(store, rows, spec, 2, training=True, seed=1, reader=reader)
        held = list(feed.batches(1))
        made = reader.buffers.allocated
        assert made == len(plain)            # all held at once: one array each
        copies = []
        for x, y in feed.batches(1):
            copies.append((x.copy(), y))
        assert reader.buffers.allocated - made <= 2
    for (xa, ya), (xb, yb), (xc, yc) in zip(plain, held, copies):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(xa, xc)
        np.testing.assert_array_equal(ya, yc)
        assert xb.ctypes.data % 64 == 0       # aligned: tf.data takes it without a copy


def test_a_slice_of_a_batch_keeps_the_batch_from_reuse(store):
    """The ownership rule of `BatchBuffers`: a buffer comes back only when every array viewing its batch is gone, so
    a row kept from a batch whose array was dropped (a slice, a reshape) is never overwritten by a later batch."""
    spec = InputSpec("sequence", max_len=20, pad_multiple=4)
    rows = np.arange(len(store))
    want = expected_batches(BatchFeed(store, rows, spec, 2, training=True, seed=1), 1)
    with ReaderPool(store.path, workers=0) as reader:
        feed = BatchFeed(store, rows, spec, 2, training=True, seed=1, reader=reader)
        kept = []
        for x, _ in feed.batches(1):
            kept.append(x[1:].reshape(-1))   # the batch's own array goes with the loop variable
            del x
        assert reader.buffers.allocated == len(want)          # every batch still viewed: no buffer came back
        for (x, _), row in zip(want, kept):
            np.testing.assert_array_equal(row, x[1:].reshape(-1))
        del kept
        for x, _ in feed.batches(1):                          # they came back: reused, none made
            del x
        assert reader.buffers.allocated == len(want)


@pytest.mark.parametrize("compression", ["none", "lzf"])
def test_clip_extent_is_where_the_read_frames_lie_on_disk(tmp_path, compression):
    """FrameStore.clip_extent, checked on the file itself: for a raw store the bytes at the extent are exactly the
    frames 0..last read (every frame_skip-th of them is what `read` returns); for a chunked (lzf) store the extent
    runs from the first to the end of the last chunk holding a frame read, by h5py's own chunk table."""
    import h5py
    path = make_store(tmp_path / "s.h5", num_classes=2, groups=1, clips_per_group=2, lengths=(9, 14), size=(8, 6),
                      compression=compression)
    store = FrameStore(path)
    for row, max_len, skip in ((0, None, 1), (1, 5, 1), (1, 4, 3), (0, 1, 1)):
        file, offset, nbytes = store.clip_extent(row, max_len, skip)
        frames = store.read(row, max_len, skip)
        if compression == "none":
            with open(file, "rb") as f:
                f.seek(offset)
                raw = np.frombuffer(f.read(nbytes), np.uint8).reshape((-1,) + frames.shape[1:])
            assert len(raw) == (len(frames) - 1) * skip + 1
            np.testing.assert_array_equal(raw[::skip], frames)
        else:
            with h5py.File(file, "r") as f:
                d = f["frames"] if "frames" in f else f["clips"][store.index["clip_id"][row]]
                used = [d.id.get_chunk_info(k) for k in range(d.id.get_num_chunks())]
                used = [c for c in used if c.chunk_offset[0] <= (len(frames) - 1) * skip]
                start = min(c.byte_offset for c in used)
                assert (offset, nbytes) == (start, max(c.byte_offset + c.size for c in used) - start)
    store.close()


def test_cache_hints_read_ahead_every_clip_and_drop_it_after_reading_when_the_store_exceeds_memory(store,
                                                                                                     monkeypatch):
    """Every clip of the epoch is hinted WILLNEED, and with a store larger than memory dropped (DONTNEED) after it
    was read; the hints of batch k + read_ahead are queued before batch k is dropped (one FIFO thread issues them,
    so the recorded order is the queued order); with a store that fits, nothing is dropped."""
    import os
    import threading

    calls, lock = [], threading.Lock()

    names = {}
    real_open = os.open

    def opened(path, flags, *rest):
        fd = real_open(path, flags, *rest)
        names[fd] = path
        return fd

    def record(fd, offset, length, advice):
        with lock:
            calls.append((advice, names[fd], offset, length))
    monkeypatch.setattr(os, "open", opened)
    monkeypatch.setattr(os, "posix_fadvise", record)
    spec = InputSpec("sequence", max_len=12)
    rows = np.arange(len(store))
    buffered = FrameStore(store.path, direct=False)     # O_DIRECT reads get no hints (the test after this one)
    for exceeds in (True, False):
        calls.clear()
        monkeypatch.setattr(buffered, "larger_than_memory", lambda fraction=0.5: exceeds)
        feed = BatchFeed(buffered, rows, spec, 3, training=True, seed=2, read_ahead=2)
        plan = feed.epoch_plan(4)
        assert len(list(feed.batches(4))) == len(plan) >= 4
        extents = [[store.clip_extent(c.row, c.max_len, c.frame_skip) for c in clips] for _, clips in plan]
        will = [tuple(e) for a, *e in calls if a == os.POSIX_FADV_WILLNEED]
        drop = [tuple(e) for a, *e in calls if a == os.POSIX_FADV_DONTNEED]
        assert sorted(will) == sorted(e for batch in extents for e in batch)
        assert sorted(drop) == (sorted(will) if exceeds else [])
        if exceeds:
            at = {call: i for i, call in enumerate(calls)}
            for k in range(len(plan)):
                hinted = max(at[(os.POSIX_FADV_WILLNEED, *e)] for batch in extents[:k + 3] for e in batch)
                assert hinted < min(at[(os.POSIX_FADV_DONTNEED, *e)] for e in extents[k]), k


def test_a_store_read_with_o_direct_gives_the_same_batches_and_no_cache_hints(store, monkeypatch):
    """A store read with O_DIRECT (what a store larger than memory gets, where the file system allows): the same
    batches as through the page cache, in this process and through 2 reader workers, and no posix_fadvise hints
    (its reads do not pass through the page cache)."""
    import os
    direct = FrameStore(store.path, direct=True)
    if not direct.reads_direct:
        pytest.skip(f"the file system of {store.path} has no O_DIRECT")
    hints = []
    monkeypatch.setattr(os, "posix_fadvise", lambda *a: hints.append(a))
    spec, rows = InputSpec("sequence", max_len=12), np.arange(len(store))
    want = list(BatchFeed(FrameStore(store.path, direct=False), rows, spec, 3, training=True, seed=2).batches(1))
    assert hints, "the page-cache feed hints its clips"
    hints.clear()
    assert_same_batches(list(BatchFeed(direct, rows, spec, 3, training=True, seed=2).batches(1)), want)
    with ReaderPool(store.path, workers=2, direct=True) as pool:
        assert_same_batches(list(BatchFeed(direct, rows, spec, 3, training=True, seed=2, reader=pool).batches(1)),
                            want)
    assert hints == []
