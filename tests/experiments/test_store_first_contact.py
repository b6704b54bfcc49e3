"""First contact with a store, through the CLIs that read one: a store copied without its shard folder is refused
before TensorFlow starts (one line, exit 2) by training and the bench; a clip found damaged while training ends
the run with one line and exit 1, and nothing else on stderr (no TensorFlow traceback, no C++ log lines: the
whole stderr is read, with TensorFlow's own log level left as a user has it)."""

import os
import shutil
import subprocess
import sys

import h5py
import helpers
import numpy as np
import pytest

from ttrnn.store import FrameStore, shard_dir


def run_main(module, *args):
    return helpers.run_main(module, *args, timeout=300)


def small_store(path):
    return helpers.make_store(path, num_classes=11, groups=3, clips_per_group=1, lengths=(2, 3), size=(16, 12))


def flip_first_chunk(store, row):
    """Flip one byte inside the first compressed chunk of clip `row` (helpers.make_store writes lzf)."""
    with FrameStore(store) as s:
        shard, cid = s.shard_path(row), str(s.index["clip_id"][row])
    with h5py.File(shard, "r") as f:
        offset = f["frames"].id.get_offset() if f["frames"].chunks is None else \
            f["frames"].id.get_chunk_info(0).byte_offset
    with open(shard, "r+b") as fh:
        fh.seek(offset + 10)
        b = fh.read(1)
        fh.seek(offset + 10)
        fh.write(bytes([b[0] ^ 1]))
    return cid


@pytest.fixture
def store(tmp_path):
    return small_store(tmp_path / "ucf11.h5")


def test_training_on_a_store_without_its_shard_folder_stops_before_tensorflow(store, tmp_path):
    shutil.move(shard_dir(store), tmp_path / "left-behind")
    res = run_main("experiments.ucf11", "--data", store, "--epochs", "1", "--out", tmp_path / "run")
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [
        f"python -m experiments.ucf11: error: {store}: its shard folder {store}.clips/ is missing: copy it with the "
        f"index (both ucf11.h5 and ucf11.h5.clips/)"], res.stderr
    assert "TENSORFLOW_IMPORTED False" in res.stdout and not (tmp_path / "run").exists()


def test_training_on_a_damaged_index_says_how_to_rebuild_it_before_tensorflow(store, tmp_path):
    os.remove(store)
    res = run_main("experiments.ucf11", "--data", store, "--epochs", "1", "--out", tmp_path / "run")
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
    assert f"python -m preprocess.check {store} --repair" in res.stderr and "TENSORFLOW_IMPORTED False" in res.stdout


def test_the_bench_refuses_a_store_without_its_shard_folder_before_tensorflow(store, tmp_path):
    shutil.move(shard_dir(store), tmp_path / "left-behind")
    res = run_main("experiments.bench", "epoch", "--quick", "--store", store)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and f"its shard folder {store}.clips/ is missing" in lines[0], res.stderr
    assert "TENSORFLOW_IMPORTED False" in res.stdout


@pytest.mark.parametrize("workers", [0, 2])
def test_a_damaged_clip_while_training_is_the_whole_stderr(tmp_path, workers):
    """The run meets the damaged clip in its first epoch: stderr is that one line (with TensorFlow's C++ logging
    at its default level), exit 1; read in this process (workers 0) or in reader processes."""
    store = small_store(tmp_path / "ucf11.h5")
    cid = flip_first_chunk(store, 5)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TTRNN_VERBOSE")}
    env["PYTHONPATH"] = str(helpers.REPO)
    res = subprocess.run([sys.executable, "-m", "experiments.ucf11", "--data", str(store), "--epochs", "1",
                          "--max-len", "3", "--workers", str(workers), "--out", str(tmp_path / "run"), "--quiet",
                          "--no-tensorboard"], capture_output=True, text=True, env=env, timeout=600,
                         cwd=helpers.REPO)
    assert res.returncode == 1, res.stderr[-3000:]
    assert res.stderr.splitlines() == [
        f"python -m experiments.ucf11: error: clip {cid} in {store} is damaged: frame 0 fails its checksum "
        f"(python -m preprocess.check {store} --repair, then preprocess again)"], res.stderr[-3000:]


def test_map_batches_raises_the_feeds_own_error_and_a_plain_loop_is_never_short(tmp_path):
    """Under `map_batches` a damaged clip arrives as the reader's CorruptClipError itself, after the batches before
    it; a dataset iterated without `map_batches` still fails (TensorFlow's error), never ends short in silence."""
    import tensorflow as tf

    from ttrnn.data import BatchFeed, InputSpec, map_batches
    from ttrnn.store import CorruptClipError
    store = small_store(tmp_path / "s.h5")
    with FrameStore(store) as s:
        feed = BatchFeed(s, np.arange(len(s)), InputSpec("sequence", max_len=3), 4, training=False)
        plan = feed.epoch_plan(0)
        k = len(plan) // 2                                 # a batch in the middle of the pass
        flip_first_chunk(store, plan[k][1][0].row)
        seen = []
        with pytest.raises(CorruptClipError, match=r"clip \S+ in .* is damaged"):
            for x in map_batches(feed.dataset(lambda: 0), lambda b: b[0].shape[0]):
                seen.append(x)
        assert seen == [len(positions) for positions, _ in plan[:k]]
        with pytest.raises(tf.errors.OpError, match="CorruptClipError"):
            for _ in feed.dataset(lambda: 0):
                pass
        assert list(map_batches(tf.data.Dataset.range(3), int)) == [0, 1, 2]   # no error left over
