"""FrameStore / StoreWriter behaviour on hand-made clips (no video decoding)."""

import json
import multiprocessing as mp
import os

import cv2
import h5py
import numpy as np
import pytest

from ttrnn.store import CorruptClipError, FrameStore, StoreError, StoreLockedError, StoreWriter, as_stored, store_params

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


def test_second_writer_is_refused_while_the_first_holds_the_lock(store_path):
    params = store_params("test", W, H, classes=["a", "b", "c"])
    with StoreWriter(store_path, params) as w:
        with pytest.raises(StoreLockedError, match="another process"):
            StoreWriter(store_path, params)
        w.add_clip("zz", _clip(1, 2), "a", 0, "g", "x/zz.avi", 25.0)
        with pytest.raises(ValueError, match="already stored"):
            w.add_clip("zz", _clip(1, 2), "a", 0, "g", "x/zz.avi", 25.0)
    with StoreWriter(store_path, params) as w:  # released at close
        assert "zz" in w.done_ids and len(w.done_ids) == 5
    with FrameStore(store_path) as s:
        np.testing.assert_array_equal(s.read(int(np.where(s.index["clip_id"] == "zz")[0][0])), _clip(1, 2))


def write_schema1_store(path, clips):
    """A store in the layout of schema 1 (one HDF5 file, clips under /clips, no checksums), written by hand."""
    s = h5py.string_dtype("utf-8")
    dt = np.dtype([("clip_id", s), ("class_name", s), ("label", "<i4"), ("group", s), ("length", "<i8"),
                   ("source", s), ("fps", "<f8"), ("labels", "u1", (2,))])
    with h5py.File(path, "w") as f:
        f.attrs["ttrnn_store"] = 1
        f.attrs["params_json"] = json.dumps(dict(dataset="old", width=W, height=H, frame_skip=1, fps=None,
                                                 compression="lzf", classes=["a", "b"], multilabel=False,
                                                 schema_version=1))
        rows = np.zeros(len(clips), dt)
        for j, (cid, frames) in enumerate(clips.items()):
            f.create_dataset(f"clips/{cid}", data=frames, chunks=(2, H, W, 3), compression="lzf")
            rows[j] = (cid, "a", 0, "g", len(frames), f"{cid}.avi", 25.0, [1, 0])
        f.create_dataset("index", data=rows)
        f.create_dataset("failed", shape=(0, 2), dtype=s)
        f.create_group("splits")


def test_schema1_stores_still_read_but_are_not_written_into(tmp_path):
    clips = {"b": _clip(3, 5), "a": _clip(4, 7)}
    write_schema1_store(tmp_path / "old.h5", clips)
    with FrameStore(tmp_path / "old.h5") as s:
        assert s.schema == 1 and s.codec == "lzf" and list(s.index["clip_id"]) == ["a", "b"]
        np.testing.assert_array_equal(s.read(0), clips["a"])
        np.testing.assert_array_equal(s.read(1, frame_skip=2), clips["b"][::2])
        np.testing.assert_array_equal(s.read_frames(0, [1, 1, 6]), clips["a"][[1, 1, 6]])
        out = np.zeros((4, H, W, 3), np.uint8)
        assert s.read_into(1, out, max_len=3) == 3
        np.testing.assert_array_equal(out[1:], clips["b"][:3])
    params = store_params("old", W, H, compression="lzf", classes=["a", "b"])
    with pytest.raises(StoreError, match="schema-1 store"):
        StoreWriter(tmp_path / "old.h5", params)


def direct_store(path, direct):
    """FrameStore(path, direct=direct); with direct=True the test is skipped where the file system has no
    O_DIRECT (tmpfs)."""
    s = FrameStore(path, direct=direct)
    if direct and not s.reads_direct:
        pytest.skip(f"the file system of {path} has no O_DIRECT")
    return s


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
@pytest.mark.parametrize("codec", ["raw", "lzf", "gzip", "jpeg"])
def test_every_codec_reads_the_same_way(tmp_path, codec, direct):
    """read / read_into / read_frames agree whatever the codec and whether spans are read with O_DIRECT; lossless
    codecs are exact, JPEG-95 is close and decodes exactly as an independent cv2.imdecode of the stored bytes."""
    p = tmp_path / f"{codec}.h5"
    frames = smooth_clip(9)
    with StoreWriter(p, store_params("t", W * 4, H * 4, compression=codec, classes=["a"])) as w:
        w.add_clip("c", frames, "a", 0, "", "c.avi", 25.0)
    with direct_store(p, direct) as s:
        assert s.codec == codec and s.quality == (95 if codec == "jpeg" else None)
        got = s.read(0)
        assert got.dtype == np.uint8 and got.shape == frames.shape
        if codec == "jpeg":
            assert np.abs(got.astype(int) - frames).mean() < 3
            with h5py.File(s.shard_path(0), "r") as f:
                data, off = f["bytes"][:], f["offsets"][:]
            ref = np.stack([cv2.cvtColor(cv2.imdecode(data[off[t]:off[t + 1]], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                            for t in range(len(frames))])
            np.testing.assert_array_equal(got, ref)
        else:
            np.testing.assert_array_equal(got, frames)
        np.testing.assert_array_equal(s.read(0, max_len=3, frame_skip=2), got[0:6:2])
        np.testing.assert_array_equal(s.read_frames(0, [0, 3, 3, 8]), got[[0, 3, 3, 8]])
        out = np.full((12,) + frames.shape[1:], 7, np.uint8)
        assert s.read_into(0, out, frame_skip=3) == 3
        np.testing.assert_array_equal(out[9:], got[::3])
        assert np.all(out[:9] == 7)


def smooth_clip(T):
    """A clip with image-like structure (gradients and a moving square), 4x the unit size: JPEG's home ground."""
    y, x = np.mgrid[0:H * 4, 0:W * 4]
    out = np.empty((T, H * 4, W * 4, 3), np.uint8)
    for t in range(T):
        base = (x * 120 // (W * 4 - 1) + y * 60 // (H * 4 - 1) + 3 * t)
        out[t] = np.stack([base + 40, base * 4 // 5 + 50, base * 3 // 5 + 60], -1)
        out[t, 4:12, 2 + t:10 + t] = 230
    return out


def _flip(path, offset):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x5A]))


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
@pytest.mark.parametrize("codec", ["raw", "lzf", "jpeg"])
def test_a_flipped_byte_in_a_frame_names_the_clip_and_the_store(tmp_path, codec, direct):
    p = tmp_path / f"{codec}.h5"
    with StoreWriter(p, store_params("t", W * 4, H * 4, compression=codec, classes=["a"])) as w:
        w.add_clip("good", smooth_clip(6), "a", 0, "", "g.avi", 25.0)
        w.add_clip("bad", smooth_clip(6), "a", 0, "", "b.avi", 25.0)
    with FrameStore(p) as s:
        bad = int(np.where(s.index["clip_id"] == "bad")[0][0])
        with h5py.File(s.shard_path(bad), "r") as f:
            d = f["bytes" if codec == "jpeg" else "frames"]
            start = d.id.get_offset() if codec != "lzf" else d.id.get_chunk_info(1).byte_offset
            where = start + (int(f["offsets"][3]) + 40 if codec == "jpeg" else 17)
    _flip(s.shard_path(bad), where)
    with direct_store(p, direct) as s:
        s.read(1 - bad)  # the other clip is fine
        with pytest.raises(CorruptClipError) as e:
            s.read(bad)
        assert "bad" in str(e.value) and str(p) in str(e.value) and len(str(e.value).splitlines()) == 1
        if codec != "lzf":  # the frame that was hit, by its number in the clip (lzf: a chunk's frames)
            assert f"frame {3 if codec == 'jpeg' else 0} " in str(e.value)
        if codec == "jpeg":  # a pick reads only what it needs: frames other than 3 still read
            s.read_frames(bad, [0, 1, 5])
            with pytest.raises(CorruptClipError, match="frame 3 fails its checksum"):
                s.read_frames(bad, [1, 3])
    assert issubclass(CorruptClipError, StoreError)


@pytest.mark.parametrize("codec", ["raw", "jpeg"])
def test_direct_reads_are_used_for_runs_of_frames(tmp_path, codec, monkeypatch):
    """With O_DIRECT on, a run of frames (read, a truncated read) is one direct span read, the same frames as
    through HDF5; a frame-skipping slice of raw frames goes through HDF5 (JPEG: the run of bytes between)."""
    from ttrnn.store import direct_io
    p = tmp_path / f"{codec}.h5"
    with StoreWriter(p, store_params("t", W * 4, H * 4, compression=codec, classes=["a"])) as w:
        w.add_clip("c", smooth_clip(9), "a", 0, "", "c.avi", 25.0)
    spans, real = [], direct_io.read_span
    monkeypatch.setattr(direct_io, "read_span",
                        lambda path, offset, out: spans.append(offset) or real(path, offset, out))
    with direct_store(p, True) as s:
        want = FrameStore(p, direct=False).read(0)
        np.testing.assert_array_equal(s.read(0), want)
        np.testing.assert_array_equal(s.read(0, max_len=4), want[:4])
        assert len(spans) == 2
        np.testing.assert_array_equal(s.read(0, frame_skip=2), want[::2])
        assert len(spans) == (3 if codec == "jpeg" else 2)      # JPEG: the span of the bytes between, still a run


def test_direct_read_span_is_the_files_bytes_at_any_offset_and_length(tmp_path, monkeypatch):
    """`direct_io.read_span` against the file's own bytes: unaligned offsets and lengths, spans of several
    blocks (the block cut to 8 KB here), the last byte of the file; a span past its end is an OSError."""
    from ttrnn.store import direct_io
    path = tmp_path / "bytes.bin"
    data = np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8)
    path.write_bytes(data.tobytes())
    if not direct_io.supported(str(path)):
        pytest.skip(f"the file system of {tmp_path} has no O_DIRECT")
    monkeypatch.setattr(direct_io, "BLOCK", 8192)                             # each thread's buffer follows it
    for offset, n in [(0, 1), (1, 4095), (4095, 2), (4096, 8192), (1400, 57_600), (12_345, 60_001),
                      (0, 100_000), (99_999, 1)]:
        np.testing.assert_array_equal(direct_io.read_span(str(path), offset, np.empty(n, np.uint8)),
                                      data[offset:offset + n])
    with pytest.raises(OSError, match="ends at 100000 bytes"):
        direct_io.read_span(str(path), 99_000, np.empty(2_000, np.uint8))


def test_direct_reads_on_a_file_system_without_o_direct_fall_back(store_path, monkeypatch):
    """A file system that refuses O_DIRECT (EINVAL at open, as tmpfs before Linux 6.6 and some network file
    systems do): a store asked for direct reads reads through HDF5, the same frames."""
    import errno
    real_open = os.open

    def no_direct(path, flags, *rest):
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument", path)
        return real_open(path, flags, *rest)
    want = [FrameStore(store_path, direct=False).read(i) for i in range(4)]
    monkeypatch.setattr(os, "open", no_direct)
    with FrameStore(store_path, direct=True) as s:
        assert not s.reads_direct
        for i in range(len(s)):
            np.testing.assert_array_equal(s.read(i), want[i])


def test_truncated_store_is_named_truncated(store_path):
    data = store_path.read_bytes()
    store_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="truncated"):
        FrameStore(store_path)


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
    with pytest.raises(StoreError, match="codec"):
        store_params("h", W, H, compression="zstd")
    with pytest.raises(StoreError, match="quality"):
        store_params("h", W, H, compression="jpeg", quality=101)
    with pytest.raises(StoreError, match="jpeg only"):
        store_params("h", W, H, compression="raw", quality=90)


def test_wrong_frames_rejected(tmp_path):
    with StoreWriter(tmp_path / "w.h5", store_params("t", W, H, classes=["a"])) as w:
        with pytest.raises(ValueError):
            w.add_clip("c", np.zeros((3, H + 1, W, 3), np.uint8), "a", 0, "", "c.avi", 25.0)
        with pytest.raises(ValueError):
            w.add_clip("c", np.zeros((0, H, W, 3), np.uint8), "a", 0, "", "c.avi", 25.0)


def test_as_stored_is_what_a_store_of_that_codec_returns(tmp_path):
    """experiments.predict feeds decoded videos through `as_stored`: equal to writing and reading a store."""
    frames = smooth_clip(4)
    for codec, quality in (("jpeg", 80), ("lzf", None)):
        p = tmp_path / f"{codec}.h5"
        with StoreWriter(p, store_params("t", W * 4, H * 4, compression=codec, quality=quality,
                                         classes=["a"])) as w:
            w.add_clip("c", frames, "a", 0, "", "c.avi", 25.0)
        with FrameStore(p) as s:
            np.testing.assert_array_equal(as_stored(frames, codec, quality), s.read(0))
    assert not np.array_equal(as_stored(frames, "jpeg", 80), frames)


def test_a_missing_shard_is_named(store_path):
    with FrameStore(store_path) as s:
        os.remove(s.shard_path(0))
        with pytest.raises(CorruptClipError, match="missing"):
            s.read(0)


def _snapshot(path):
    with FrameStore(path) as s:
        return (s.index.tolist(), s.label_matrix().tolist(), s.failed, {k: {p: v.tolist() for p, v in d.items()}
                for k, d in s.splits.items()}, [s.read(i) for i in range(len(s))])


def test_random_byte_flips_anywhere_in_a_store_are_caught_or_harmless(store_path):
    """40 flips at random offsets of the store's files (index and shards): each either raises StoreError (a
    damaged clip: CorruptClipError naming it) or changes nothing a reader sees; never a silent change."""
    clean = _snapshot(store_path)
    with FrameStore(store_path) as s:
        files = [str(store_path)] + [s.shard_path(i) for i in range(len(s))]
    sizes = [os.path.getsize(f) for f in files]
    rng = np.random.default_rng(40)
    caught = 0
    for k in range(40):
        j = int(rng.choice(len(files), p=np.array(sizes) / sum(sizes)))
        offset = int(rng.integers(0, sizes[j]))
        _flip(files[j], offset)
        try:
            got = _snapshot(store_path)
        except StoreError:
            caught += 1
        else:
            assert all(np.array_equal(a, b) for a, b in zip(got[4], clean[4])) and got[:4] == clean[:4], \
                (files[j], offset)
        finally:
            _flip(files[j], offset)  # the same xor restores the byte
    assert caught >= 2  # many bytes of a store matter (the rest: HDF5 padding, unused header space)
    assert _snapshot(store_path)[:4] == clean[:4]
