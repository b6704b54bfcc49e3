"""FrameStore / StoreWriter behaviour on hand-made clips (no video decoding)."""

import multiprocessing as mp
import os

import h5py
import numpy as np
import pytest

from ttrnn.store import FrameStore, StoreError, StoreWriter, store_params

H, W = 6, 8


def _clip(seed, T):
    return np.random.default_rng(seed).integers(0, 256, (T, H, W, 3), dtype=np.uint8)


@pytest.fixture
def store_path(tmp_path):
    p = tmp_path / "s.h5"
    params = store_params("test", W, H, classes=["a", "b", "c"])
    with StoreWriter(p, params) as w:
        # written out of order: the reader sorts by clip id
        for cid, T, lab in [("c2", 9, 2), ("a1", 5, 0), ("b1", 13, 1), ("a2", 1, 0)]:
            w.add_clip(cid, _clip(hash(cid) % 1000, T), ["a", "b", "c"][lab], lab, "g" + cid[0], f"x/{cid}.avi", 25.0)
        w.set_failed([("x/bad.avi", "no decodable frames")])
        w.set_splits({"s1": {"train": ["a1", "b1", "gone"], "test": ["c2"]}})
    return p


def test_index_sorted_and_metadata(store_path):
    with FrameStore(store_path) as s:
        assert len(s) == 4
        assert list(s.index["clip_id"]) == ["a1", "a2", "b1", "c2"]
        assert list(s.index["length"]) == [5, 1, 13, 9]
        assert list(s.index["label"]) == [0, 0, 1, 2]
        assert list(s.index["group"]) == ["ga", "ga", "gb", "gc"]
        assert s.index["source"][3] == "x/c2.avi" and s.index["fps"][0] == 25.0
        assert s.classes == ["a", "b", "c"] and not s.multilabel
        np.testing.assert_array_equal(s.label_matrix(), np.eye(3, dtype=np.uint8)[[0, 0, 1, 2]])
        assert s.attrs["width"] == W and s.attrs["height"] == H and s.attrs["frame_skip"] == 1
        assert s.attrs["compression"] == "none" and s.attrs["fps"] is None and s.attrs["dataset"] == "test"
        assert s.failed == [("x/bad.avi", "no decodable frames")]
        assert s.splits["s1"]["train"].tolist() == [0, 2]  # unknown ids dropped, rows of the sorted index
        assert s.splits["s1"]["test"].tolist() == [3]


def test_read_into_writes_the_read_slice_at_the_end(store_path):
    with FrameStore(store_path) as s:
        for max_len, skip, room in [(None, 1, 13), (4, 1, 6), (3, 2, 3), (100, 5, 5), (None, 1, 5)]:
            out = np.full((room, H, W, 3), 7, np.uint8)
            n = s.read_into(2, out, max_len=max_len, frame_skip=skip)
            expected = s.read(2, max_len=min(room, max_len or room), frame_skip=skip)
            assert n == len(expected)
            np.testing.assert_array_equal(out[room - n:], expected)
            assert np.all(out[:room - n] == 7)          # untouched before the frames


def test_read_slices(store_path):
    full = _clip(hash("b1") % 1000, 13)
    with FrameStore(store_path) as s:
        i = 2
        np.testing.assert_array_equal(s.read(i), full)
        np.testing.assert_array_equal(s.read(i, max_len=4), full[:4])
        np.testing.assert_array_equal(s.read(i, frame_skip=3), full[::3])
        np.testing.assert_array_equal(s.read(i, max_len=3, frame_skip=2), full[0:6:2])
        np.testing.assert_array_equal(s.read(i, max_len=100, frame_skip=5), full[::5])
        assert s.read(i).dtype == np.uint8 and s.read(i).shape == (13, H, W, 3)
        np.testing.assert_array_equal(s.read_frames(i, [0, 4, 4, 12]), full[[0, 4, 4, 12]])
        with pytest.raises(IndexError):
            s.read_frames(i, [13])
        with pytest.raises(IndexError):
            s.read(4)



def _child_reads(store, n, q):
    q.put([int(store.read(i).astype(np.int64).sum()) for i in range(n)])


def test_lazy_handles_work_in_forked_workers(store_path):
    s = FrameStore(store_path)
    expected = [int(s.read(i).astype(np.int64).sum()) for i in range(len(s))]  # the parent's handle is open
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_child_reads, args=(s, len(s), q)) for _ in range(2)]  # inherit `s` (no pickle)
    for p in procs:
        p.start()
    got = [q.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert got == [expected, expected]
    np.testing.assert_array_equal(s.read(0), FrameStore(store_path).read(0))  # parent handle still fine
    s.close()


def test_store_errors(tmp_path):
    with pytest.raises(StoreError, match="not found"):
        FrameStore(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(StoreError):
        FrameStore(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(StoreError, match="not a ttrnn"):
        FrameStore(tmp_path / "other.h5")
    assert issubclass(StoreError, ValueError)


def test_parameter_mismatch_and_overwrite(store_path):
    other = store_params("test", W * 2, H, classes=["a", "b", "c"])
    with pytest.raises(StoreError, match="different parameters"):
        StoreWriter(store_path, other)
    assert len(FrameStore(store_path)) == 4  # untouched
    with StoreWriter(store_path, other, overwrite=True) as w:
        assert w.done_ids == set()
    assert len(FrameStore(store_path)) == 0


def test_uncommitted_leftover_is_ignored_and_discarded(store_path):
    # a clip dataset without an index row, as a kill between writing frames and committing would leave
    with h5py.File(store_path, "a") as f:
        f["clips"].create_dataset("zz", data=_clip(0, 3))
    with FrameStore(store_path) as s:
        assert "zz" not in s.index["clip_id"] and len(s) == 4
    params = store_params("test", W, H, classes=["a", "b", "c"])
    with StoreWriter(store_path, params) as w:
        assert w.done_ids == {"a1", "a2", "b1", "c2"}
        w.add_clip("zz", _clip(1, 2), "a", 0, "g", "x/zz.avi", 25.0)
        with pytest.raises(ValueError, match="already stored"):
            w.add_clip("zz", _clip(1, 2), "a", 0, "g", "x/zz.avi", 25.0)
    with FrameStore(store_path) as s:
        np.testing.assert_array_equal(s.read(int(np.where(s.index["clip_id"] == "zz")[0][0])), _clip(1, 2))


def test_multilabel_and_compression_options(tmp_path):
    for comp in ("gzip", "none"):
        p = tmp_path / f"{comp}.h5"
        with StoreWriter(p, store_params("h", W, H, compression=comp, classes=["x", "y", "z"],
                                         multilabel=True)) as w:
            w.add_clip("c1", _clip(5, 3), "x+z", 0, "", "c1.avi", 12.0, labels=[1, 0, 1])
        with FrameStore(p) as s:
            assert s.multilabel and s.attrs["compression"] == comp
            np.testing.assert_array_equal(s.label_matrix(), [[1, 0, 1]])
            np.testing.assert_array_equal(s.read(0), _clip(5, 3))
    with pytest.raises(StoreError, match="compression"):
        store_params("h", W, H, compression="zstd")


def test_wrong_frames_rejected(tmp_path):
    with StoreWriter(tmp_path / "w.h5", store_params("t", W, H, classes=["a"])) as w:
        with pytest.raises(ValueError):
            w.add_clip("c", np.zeros((3, H + 1, W, 3), np.uint8), "a", 0, "", "c.avi", 25.0)
        with pytest.raises(ValueError):
            w.add_clip("c", np.zeros((0, H, W, 3), np.uint8), "a", 0, "", "c.avi", 25.0)
