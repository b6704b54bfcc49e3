"""Preprocessing CLIs and layouts on generated video trees, checked against an independent OpenCV decode."""

import os
import shutil
import subprocess
import sys

import cv2
import h5py
import helpers
import numpy as np
import pytest

from preprocess import celebfaces, hollywood2, ucf11
from preprocess.ingest import IngestError
from preprocess.synthetic import render_clip, write_video
from preprocess.video import VideoError, decode
from ttrnn.store import FrameStore

SIZE = (32, 24)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def reference_frames(path, size=SIZE):
    """Independent decode: every frame, BGR -> RGB, cv2.resize with INTER_AREA."""
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2RGB), size, interpolation=cv2.INTER_AREA))
    cap.release()
    return np.stack(out)


def videos_in(tree):
    out = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if d != "Annotation"]
        out += [os.path.join(dirpath, f) for f in filenames if f.endswith((".mpg", ".avi"))]
    return sorted(out)


def run_cli(module, *args, env=None):
    return helpers.run_cli(module, *args, env=env, timeout=120)


@pytest.fixture(scope="module")
def ucf11_store(ucf11_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("st") / "ucf11.h5"
    summary = ucf11.build_store(ucf11_tree, out, size=SIZE, workers=2, compression="raw", progress=False)
    return out, summary


def test_frames_labels_groups_match_independent_decode(ucf11_tree, ucf11_store):
    out, summary = ucf11_store
    vids = videos_in(ucf11_tree)
    assert summary["status"] == 0 and summary["stored"] == len(vids) == 12 and not summary["failed"]
    assert {os.path.splitext(v)[1] for v in vids} == {".mpg", ".avi"}
    with FrameStore(out) as s:
        assert s.classes == sorted(d for d in os.listdir(ucf11_tree) if not d.startswith(".")) == \
            ["basketball", "biking", "diving"]
        assert s.attrs["dataset"] == "ucf11" and (s.attrs["width"], s.attrs["height"]) == SIZE
        assert s.attrs["synthetic"] is True  # made from preprocess.synthetic's videos (its marker in the tree)
        assert len(s) == len(vids)
        by_source = {src: i for i, src in enumerate(s.index["source"])}
        for v in vids:
            rel = os.path.relpath(v, ucf11_tree).replace(os.sep, "/")
            cls, group, fname = rel.split("/")
            row = s.index[by_source[rel]]
            ref = reference_frames(v)
            got = s.read(by_source[rel])
            assert got.dtype == np.uint8 and got.shape == ref.shape == (row["length"], SIZE[1], SIZE[0], 3)
            np.testing.assert_array_equal(got, ref)
            assert row["class_name"] == cls and s.classes[row["label"]] == cls
            assert row["group"] == group and row["clip_id"] == os.path.splitext(fname)[0]
            assert abs(row["fps"] - 29.97) < 0.01


def test_frame_skip_and_fps_resampling(ucf11_tree, tmp_path):
    vids = videos_in(ucf11_tree)[:4]
    s2 = ucf11.build_store(ucf11_tree, tmp_path / "skip.h5", size=SIZE, frame_skip=2, limit=4, compression="raw",
                           progress=False)
    assert s2["stored"] == 4
    with FrameStore(tmp_path / "skip.h5") as s:
        assert s.attrs["frame_skip"] == 2
        for i, src in enumerate(s.index["source"]):
            np.testing.assert_array_equal(s.read(i), reference_frames(os.path.join(ucf11_tree, src))[::2])
    ucf11.build_store(ucf11_tree, tmp_path / "fps.h5", size=SIZE, fps=10, limit=4, compression="raw", progress=False)
    with FrameStore(tmp_path / "fps.h5") as s:
        assert s.attrs["fps"] == 10.0
        for i, src in enumerate(s.index["source"]):
            ref = reference_frames(os.path.join(ucf11_tree, src))
            assert s.index["fps"][i] == pytest.approx(29.97, abs=1e-3)
            # 29.97 -> 10 fps, worked out by hand: output frame j shows the source frame on screen at j / 10 s,
            # the one that started at or before it: j * 2.997 = 0, 2.997, 5.994, 8.991, 11.988 -> frames 0, 2, 5,
            # 8, 11 (the generated clips have 8-12 frames)
            idx = [k for k in (0, 2, 5, 8, 11) if k < len(ref)]
            np.testing.assert_array_equal(s.read(i), ref[idx])
    assert len(vids) == 4


def test_jpeg_codec_cli_reads_close_to_the_decode(ucf11_tree, ucf11_store, tmp_path):
    """--codec jpeg --quality 90: the store says so, frames are the raw store's within a few levels."""
    out = tmp_path / "j.h5"
    r = run_cli("preprocess.ucf11", ucf11_tree, out, "--size", "32x24", "--codec", "jpeg", "--quality", "90",
                "--limit", "4", "--quiet")
    assert r.returncode == 0, r.stderr
    with FrameStore(out) as s, FrameStore(ucf11_store[0]) as raw:
        assert s.codec == "jpeg" and s.quality == 90 and s.attrs["quality"] == 90 and len(s) == 4
        rows = {c: i for i, c in enumerate(raw.index["clip_id"])}
        for i, cid in enumerate(s.index["clip_id"]):
            ref = raw.read(rows[cid]).astype(int)
            assert s.read(i).shape == ref.shape and np.abs(s.read(i) - ref).mean() < 6
    r = run_cli("preprocess.ucf11", ucf11_tree, out, "--size", "32x24", "--codec", "raw", "--quality", "90",
                "--quiet")
    assert r.returncode == 2 and "jpeg only" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_rerun_decodes_nothing(ucf11_tree, ucf11_store):
    out, first = ucf11_store
    again = ucf11.build_store(ucf11_tree, out, size=SIZE, workers=2, compression="raw", progress=False)
    assert first["decoded"] == 12
    assert again["decoded"] == 0 and again["new"] == 0 and again["stored"] == 12 and again["status"] == 0


def test_parameter_mismatch_refused_unless_overwrite(ucf11_tree, tmp_path):
    out = tmp_path / "m.h5"
    assert ucf11.build_store(ucf11_tree, out, size=SIZE, limit=2, progress=False)["stored"] == 2
    r = run_cli("preprocess.ucf11", ucf11_tree, out, "--size", "16x12", "--limit", "2", "--quiet")
    assert r.returncode == 2 and "different parameters" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert FrameStore(out).attrs["width"] == SIZE[0]  # untouched
    r = run_cli("preprocess.ucf11", ucf11_tree, out, "--size", "16x12", "--limit", "2", "--quiet", "--overwrite")
    assert r.returncode == 0, r.stderr
    with FrameStore(out) as s:
        assert (s.attrs["width"], s.attrs["height"]) == (16, 12) and len(s) == 2


def test_cli_errors_are_one_line(ucf11_tree, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    cases = [(tmp_path / "nope", tmp_path / "o.h5", "not found"),
             (tmp_path / "empty", tmp_path / "o.h5", "no videos"),
             (tmp_path / "a_file", tmp_path / "o.h5", "not a folder")]
    for src, out, msg in cases:
        r = run_cli("preprocess.ucf11", src, out, "--quiet")
        assert r.returncode == 2 and msg in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    for opts in (["--frame-skip", "0"], ["--size", "0x5"], ["--compression", "zstd"]):
        r = run_cli("preprocess.ucf11", ucf11_tree, tmp_path / "o.h5", "--quiet", *opts)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o.h5").exists()
    (tmp_path / "not_store.h5").write_text("not hdf5")
    r = run_cli("preprocess.ucf11", ucf11_tree, tmp_path / "not_store.h5", "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (tmp_path / "not_store.h5").read_text() == "not hdf5"  # nothing lost
    r = run_cli("preprocess.ucf11", ucf11_tree, tmp_path / "new" / "dir" / "o.h5", "--quiet", "--limit", "1")
    assert r.returncode == 0 and (tmp_path / "new" / "dir" / "o.h5").is_file(), r.stderr  # the folder is made


def test_bad_files_reported_good_ones_stored(ucf11_tree, tmp_path):
    src = tmp_path / "UCF11"
    shutil.copytree(ucf11_tree, src)
    gdir = src / "biking" / "v_biking_01"
    rng = np.random.default_rng(0)
    long_clip = tmp_path / "long.mpg"
    write_video(str(long_clip), render_clip([1], 40, (64, 48), rng))
    data = long_clip.read_bytes()
    assert len(data) > 4096
    (gdir / "v_biking_01_90.mpg").write_bytes(data[:2048] + rng.integers(0, 256, len(data), np.uint8).tobytes())
    (gdir / "v_biking_01_91.mpg").write_bytes(b"")
    (gdir / "v_biking_01_92.mpg").write_bytes(data[:2048 + 1001])  # cut inside the second packet
    (gdir / "v_biking_01_93.mpg").write_text("this is a text file, not a video\n" * 20)
    bad = {f"biking/v_biking_01/v_biking_01_{k}.mpg" for k in (90, 91, 92, 93)}
    out = tmp_path / "bad.h5"
    r = run_cli("preprocess.ucf11", src, out, "--size", "32x24", "--workers", "2", "--quiet")
    assert r.returncode == 1, r.stderr
    for b in bad:
        assert b in r.stdout
    with FrameStore(out) as s:
        assert s.codec == "jpeg" and s.quality == 95            # the CLI's default codec
        assert len(s) == 12 and {f for f, _ in s.failed} == bad
        assert all(reason for _, reason in s.failed)
        assert set(s.index["source"]) == {os.path.relpath(v, ucf11_tree).replace(os.sep, "/")
                                          for v in videos_in(ucf11_tree)}
        assert all(s.read(i).shape[0] == s.index["length"][i] for i in range(len(s)))
    # a re-run retries only the failed ones and still reports them
    again = ucf11.build_store(src, out, size=SIZE, progress=False)
    assert again["decoded"] == 4 and again["status"] == 1 and len(again["failed"]) == 4


def test_decode_reasons(tmp_path):
    rng = np.random.default_rng(1)
    avi = tmp_path / "a.avi"
    write_video(str(avi), render_clip([2], 30, (64, 48), rng))
    frames, fps = decode(avi, size=(64, 48))
    assert frames.shape == (30, 48, 64, 3) and abs(fps - 29.97) < 0.01
    data = avi.read_bytes()
    (tmp_path / "t.avi").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="truncated"):
        decode(tmp_path / "t.avi")
    (tmp_path / "e.avi").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        decode(tmp_path / "e.avi")
    ok, png = cv2.imencode(".png", np.zeros((24, 32, 3), np.uint8))
    (tmp_path / "p.mpg").write_bytes(png.tobytes())
    with pytest.raises(VideoError, match="PNG image file, not a video"):
        decode(tmp_path / "p.mpg")
    with pytest.raises(VideoError):
        decode(tmp_path / "missing.avi")


def test_hollywood2_layout(hollywood2_tree, tmp_path):
    out = tmp_path / "h2.h5"
    summary = hollywood2.build_store(hollywood2_tree, out, size=SIZE, compression="raw", progress=False)
    assert summary["status"] == 0 and summary["stored"] == 24
    # independent read of the label files
    sets = os.path.join(hollywood2_tree, "ClipSets")
    actions = sorted({f.rsplit("_", 1)[0] for f in os.listdir(sets)})
    truth = {}
    for a, action in enumerate(actions):
        for part in ("train", "test"):
            for ln in open(os.path.join(sets, f"{action}_{part}.txt")):
                name, flag = ln.split()
                truth.setdefault(name, np.zeros(len(actions), np.uint8))[a] = flag == "1"
    with FrameStore(out) as s:
        assert s.multilabel and s.classes == actions and len(actions) == 12
        Y = s.label_matrix()
        assert Y.shape == (24, 12) and (Y.sum(1) >= 2).any()
        for i, cid in enumerate(s.index["clip_id"]):
            np.testing.assert_array_equal(Y[i], truth[cid])
            assert Y[i, s.index["label"][i]] == 1
        train, test = s.splits["standard"]["train"], s.splits["standard"]["test"]
        assert sorted(s.index["clip_id"][train]) == sorted(c for c in truth if "train" in c)
        assert sorted(s.index["clip_id"][test]) == sorted(c for c in truth if "test" in c)
        i = int(test[0])
        np.testing.assert_array_equal(s.read(i), reference_frames(os.path.join(hollywood2_tree, s.index["source"][i])))
    ucf11_like = hollywood2.build_store(hollywood2_tree, tmp_path / "h2d.h5", limit=1, progress=False)
    assert ucf11_like["stored"] == 1
    attrs = FrameStore(tmp_path / "h2d.h5").attrs
    assert (attrs["width"], attrs["height"]) == (234, 100)
    with pytest.raises(IngestError, match="not a Hollywood2"):
        hollywood2.build_store(tmp_path, tmp_path / "x.h5", progress=False)


def test_celebfaces_layout(celebfaces_tree, tmp_path):
    out = tmp_path / "c.h5"
    summary = celebfaces.build_store(celebfaces_tree, out, size=SIZE, progress=False)
    people = sorted(d for d in os.listdir(celebfaces_tree) if not d.startswith("."))
    assert summary["status"] == 0 and summary["stored"] == 8
    with FrameStore(out) as s:
        assert s.classes == people and s.attrs["dataset"] == "celebfaces"
        for i, src in enumerate(s.index["source"]):
            assert s.classes[s.index["label"][i]] == src.split("/")[0]
            assert s.index["length"][i] == len(reference_frames(os.path.join(celebfaces_tree, src)))


def test_folders_layout_with_split_lists(ucf11_tree, tmp_path):
    src = tmp_path / "tree"
    shutil.copytree(ucf11_tree, src)
    vids = [os.path.relpath(v, src).replace(os.sep, "/") for v in videos_in(src)]
    train, test = vids[::2], vids[1::2]
    (src / "trainlist01.txt").write_text("".join(f"{v} 1\n" for v in train))
    (src / "testlist01.txt").write_text("".join(f"{v}\n" for v in test))
    r = run_cli("preprocess.folders", src, tmp_path / "f.h5", "--size", "32x24", "--quiet", "--limit", "100")
    assert r.returncode == 0, r.stderr
    with FrameStore(tmp_path / "f.h5") as s:
        assert s.attrs["dataset"] == "folders" and len(s) == 12
        assert sorted(s.index["source"][s.splits["split01"]["train"]]) == sorted(train)
        assert sorted(s.index["source"][s.splits["split01"]["test"]]) == sorted(test)
        for i, source in enumerate(s.index["source"]):
            assert s.index["class_name"][i] == source.split("/")[0]
    r = run_cli("preprocess.folders", src, tmp_path / "g.h5", "--size", "32x24", "--quiet", "--limit", "3")
    assert r.returncode == 0 and len(FrameStore(tmp_path / "g.h5")) == 3


def test_synthetic_is_deterministic(tmp_path):
    from preprocess.synthetic import make_dataset
    a = make_dataset(tmp_path / "a", classes=2, groups=1, clips_per_group=2, frames=(5, 9), size=(32, 24), seed=7)
    b = make_dataset(tmp_path / "b", classes=2, groups=1, clips_per_group=2, frames=(5, 9), size=(32, 24), seed=7)
    va, vb = videos_in(a), videos_in(b)
    assert [os.path.relpath(v, a) for v in va] == [os.path.relpath(v, b) for v in vb] and len(va) == 4
    for x, y in zip(va, vb):
        np.testing.assert_array_equal(reference_frames(x, (32, 24)), reference_frames(y, (32, 24)))


def test_preprocess_does_not_import_tensorflow():
    code = ("import sys, preprocess.ucf11, preprocess.folders, preprocess.hollywood2, preprocess.celebfaces, "
            "preprocess.synthetic, ttrnn.store; "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr


def test_check_lists_a_damaged_clip_and_repair_makes_preprocess_redo_it(ucf11_tree, tmp_path):
    out = tmp_path / "c.h5"
    ucf11.build_store(ucf11_tree, out, size=SIZE, limit=3, workers=1, compression="raw", progress=False)
    with FrameStore(out) as s:
        victim, shard = str(s.index["clip_id"][1]), s.shard_path(1)
    with h5py.File(shard, "r") as f:
        offset = f["frames"].id.get_offset() + 100
    with open(shard, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 1]))
    r = run_cli("preprocess.check", out, "--quiet")
    assert r.returncode == 1 and "1 damaged" in r.stdout and victim in r.stdout and "checksum" in r.stdout, r.stdout
    r = run_cli("preprocess.check", out, "--quiet", "--repair")
    assert r.returncode == 0 and "dropped 1" in r.stdout, r.stdout + r.stderr
    assert victim not in FrameStore(out).index["clip_id"]
    assert run_cli("preprocess.check", out, "--quiet").returncode == 0
    again = ucf11.build_store(ucf11_tree, out, size=SIZE, limit=3, workers=1, compression="raw", progress=False)
    assert again["decoded"] == 1 and again["stored"] == 3
    with FrameStore(out) as s:
        for i, src in enumerate(s.index["source"]):
            np.testing.assert_array_equal(s.read(i), reference_frames(os.path.join(ucf11_tree, src)))
    (tmp_path / "t.h5").write_bytes(out.read_bytes()[:1000])
    r = run_cli("preprocess.check", tmp_path / "t.h5", "--quiet")
    assert r.returncode == 2 and "truncated" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
