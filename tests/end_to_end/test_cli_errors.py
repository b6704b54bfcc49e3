"""Bad input fails before TensorFlow: one line on stderr, the documented exit status, nothing written, and
`tensorflow` never imported on that path (checked in the CLI's own process)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, make_store, run_main


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_errors")
    text = tmp / "notes.h5"
    text.write_text("not an HDF5 file\n")
    return {
        "{store}": make_store(tmp / "ucf11.h5", num_classes=11, groups=3, clips_per_group=1, lengths=(2, 3),
                              size=(16, 12)),
        "{celeb}": make_store(tmp / "celeb.h5", num_classes=2, groups=1, clips_per_group=1, lengths=(2, 2),
                              size=(16, 12), dataset="celebfaces"),
        "{text}": text,
        "{missing}": tmp / "missing.h5",
        "{folder}": tmp,
    }


def finished_run(path, identity):
    """A run directory as a finished run leaves it (config.json with its identity, metrics.json)."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"args_identity": identity}))
    (path / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))
    return {p.name: p.read_bytes() for p in path.iterdir()}


def assert_one_line_before_tensorflow(res, message, status=2):
    assert res.returncode == status, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert "TENSORFLOW_IMPORTED False" in res.stdout, res.stdout


@pytest.mark.parametrize("args, message", [
    (["--data", "{missing}"], "no store at"),
    (["--data", "{folder}"], "is a directory; give the store file"),
    (["--data", "{text}"], "not a ttrnn frame store"),
    (["--data", "{celeb}"], "'celebfaces' store"),
    (["--data", "{store}", "--max-len", "0"], "--max-len must be >= 1"),
    (["--data", "{store}", "--model", "transformer"], "unknown model"),
    (["--data", "{store}", "--protocol", "logo", "--fold", "7"], "out of range"),
    (["--data", "{store}", "--threads-preset", "nope"], "nope"),
    (["--data", "{store}", "--cluster", "slurm"], "SLURM_PROCID"),
    (["--data", "{store}", "--epochs", "x"], "invalid int value"),
])
def test_dataset_cli_rejects_bad_input_before_tensorflow(stores, tmp_path, args, message):
    out = tmp_path / "out"
    res = run_main("experiments.ucf11", *[stores.get(a, a) for a in args], "--out", out)
    assert_one_line_before_tensorflow(res, message)
    assert not out.exists()


def test_finished_run_of_another_command_is_refused_and_kept(stores, tmp_path):
    out = tmp_path / "run"
    before = finished_run(out, {"data": "some/other.h5", "model": "lstm"})
    res = run_main("experiments.ucf11", "--data", stores["{store}"], "--out", out)
    assert_one_line_before_tensorflow(res, "finished run of a different command")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_finished_run_of_the_same_command_reports_without_tensorflow(stores, tmp_path):
    from experiments.train import build_parser, identity
    from experiments.ucf11 import SPEC
    out = tmp_path / "run"
    argv = ["--data", str(stores["{store}"]), "--out", str(out)]
    finished_run(out, identity(build_parser(SPEC).parse_args(argv)))
    res = run_main("experiments.ucf11", *argv)
    assert res.returncode == 0, res.stderr
    assert f"{out} is already finished" in res.stdout and "TENSORFLOW_IMPORTED False" in res.stdout


def test_the_same_command_again_returns_its_result_and_fresh_trains_anew(stores, tmp_path, monkeypatch):
    """docs/training.md "The same command again": without --out, a finished run of the same arguments is returned
    (the newest of them; no training, no TensorFlow, nothing written); --fresh picks a new directory and trains."""
    from experiments import train
    from experiments.ucf11 import SPEC
    argv = ["--data", str(stores["{store}"]), "--epochs", "1", "--quiet", "--no-tensorboard"]
    ident = train.identity(train.build_parser(SPEC).parse_args(argv))
    runs = tmp_path / "runs"
    runs.mkdir()
    older, newer = runs / "ucf11-gru-20250101-000000", runs / "ucf11-gru-20250102-000000"
    finished_run(older, ident)
    finished_run(newer, ident)
    finished_run(runs / "ucf11-gru-20250103-000000", {**ident, "seed": 5})   # another command's: not this one's
    again = run_main("experiments.ucf11", *argv, "--workers", "2", cwd=tmp_path)   # --workers: not identity
    assert again.returncode == 0 and f"{newer.relative_to(tmp_path)} is already finished" in again.stdout
    assert "TENSORFLOW_IMPORTED False" in again.stdout and len(list(runs.iterdir())) == 3
    monkeypatch.chdir(tmp_path)
    parser = train.build_parser(SPEC)
    fresh = parser.parse_args(argv + ["--fresh"])
    finished, lock = train.preflight(fresh, SPEC, parser)   # nothing finished there: it trains, in a directory
    assert finished is None                                   # fixed (args.out) and locked before TensorFlow
    run_dir = Path(fresh.out)
    assert run_dir.parent == Path("runs") and run_dir.name.startswith("ucf11-gru-")
    assert [p.name for p in run_dir.iterdir()] == ["run.lock"]
    lock.release(cleanup=True)                                # nothing written: the new directory goes again
    assert not run_dir.exists()
    refused = run_main("experiments.ucf11", *argv, "--fresh", "--out", tmp_path / "x", cwd=tmp_path)
    assert_one_line_before_tensorflow(refused, "--fresh picks a new runs/ directory")


def test_a_file_where_the_run_directory_should_be(stores, tmp_path):
    out = tmp_path / "run"
    out.write_text("keep me")
    res = run_main("experiments.ucf11", "--data", stores["{store}"], "--out", out)
    assert_one_line_before_tensorflow(res, "not a run directory")
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("module, args, message", [
    ("experiments.predict", ["{missing}", "clip.avi"], "no run directory"),
    ("experiments.tables", ["{missing}"], "no such run directory"),
    ("experiments.bench", ["nosuchsection"], "invalid choice"),
    ("experiments.sweep", ["{missing}"], "missing.h5"),
])
def test_other_clis_reject_bad_input_before_tensorflow(stores, module, args, message):
    res = run_main(module, *[stores.get(a, a) for a in args])
    assert_one_line_before_tensorflow(res, message)


# --- the run directory's one writer, its data, damaged files, what can be checked before TensorFlow -------------
def test_a_run_directory_in_use_is_refused_naming_its_holder(stores, tmp_path):
    """A lock held by another live process (this test's) refuses the CLI before TensorFlow, naming PID and host;
    the holder's directory is untouched. Released, the lock of a process that died (its record left in the file)
    does not refuse anyone."""
    import os
    import socket

    from experiments.run_dir import RunLock
    out = tmp_path / "run"
    lock = RunLock(out).acquire()
    try:
        res = run_main("experiments.ucf11", "--data", stores["{store}"], "--out", out, "--epochs", "1")
        assert_one_line_before_tensorflow(res, f"is in use by PID {os.getpid()} on {socket.gethostname()}")
        assert [p.name for p in out.iterdir()] == ["run.lock"]
    finally:
        lock.release()
    dead = subprocess.run([sys.executable, "-c", f"from experiments.run_dir import RunLock; RunLock({str(out)!r})"
                           ".acquire(); import os; os._exit(0)"], cwd=REPO, env={"PYTHONPATH": str(REPO)})
    assert dead.returncode == 0 and '"pid"' in (out / "run.lock").read_text()
    assert RunLock(out).acquire()  # the dead holder's record is stale: taken over


def test_run_directory_whose_parent_is_not_writable_is_refused_before_tensorflow(stores, tmp_path):
    parent = tmp_path / "a-file"
    parent.write_text("not a directory")
    res = run_main("experiments.ucf11", "--data", stores["{store}"], "--out", parent / "run")
    assert_one_line_before_tensorflow(res, f"cannot create the run directory {parent / 'run'}")
    assert parent.read_text() == "not a directory"


def test_invalid_config_json_is_named_not_called_another_command(stores, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"args_identity": {"data": ')
    res = run_main("experiments.ucf11", "--data", stores["{store}"], "--out", out)
    assert_one_line_before_tensorflow(res, f"{out / 'config.json'} is not valid JSON")
    assert "different command" not in res.stderr


def test_store_too_small_for_the_tt_shapes_is_refused_before_tensorflow(stores, tmp_path):
    """An 80x60 store for a TT-GRU: the frame size is named, not --decomposition/--rank/--blocks (not given)."""
    small = make_store(tmp_path / "small.h5", num_classes=11, groups=3, clips_per_group=1, lengths=(2, 3),
                       size=(80, 60))
    res = run_main("experiments.ucf11", "--data", small, "--use-tt", "--out", tmp_path / "out")
    assert_one_line_before_tensorflow(res, "holds 80x60 frames, but tt_gru on ucf11 needs 160x120")
    assert "--rank" not in res.stderr and not (tmp_path / "out").exists()


def test_unwritable_demo_cache_hints_at_ttrnn_cache(tmp_path):
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    res = run_main("experiments.ucf11", "--demo", "--out", tmp_path / "out", env={"HOME": str(home)})
    assert_one_line_before_tensorflow(res, "set TTRNN_CACHE to a writable directory")
    assert "cannot write the demo cache" in res.stderr


def test_damaged_checkpoint_is_named_before_tensorflow(stores, tmp_path):
    """A truncated checkpoint.npz: one line naming the file, exit status 1, the file kept for inspection."""
    import numpy as np

    from experiments.train import build_parser, identity
    from experiments.ucf11 import SPEC
    out = tmp_path / "run"
    out.mkdir()
    argv = ["--data", str(stores["{store}"]), "--out", str(out)]
    (out / "config.json").write_text(json.dumps({"args_identity": identity(build_parser(SPEC).parse_args(argv))}))
    np.savez(out / "checkpoint.npz", w0=np.arange(1000.0), state=np.frombuffer(b'{"history": []}', np.uint8))
    data = (out / "checkpoint.npz").read_bytes()
    (out / "checkpoint.npz").write_bytes(data[:len(data) // 2])
    res = run_main("experiments.ucf11", *argv)
    assert_one_line_before_tensorflow(res, f"cannot read the checkpoint {out / 'checkpoint.npz'}", status=1)
    assert (out / "checkpoint.npz").stat().st_size == len(data) // 2


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_damaged_model_keras_is_named_by_predict(tmp_path, damage):
    """predict on a run whose model.keras is empty or truncated: the file and what is wrong with it, before
    TensorFlow (Keras itself said "File not found")."""
    import zipfile
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"store": {"attrs": {"width": 16, "height": 12}, "classes": ["a"]},
                                                 "input": {}}))
    with zipfile.ZipFile(run / "model.keras", "w") as archive:
        archive.writestr("model.weights.h5", bytes(range(256)) * 64)
    data = (run / "model.keras").read_bytes()
    (run / "model.keras").write_bytes(b"" if damage == "empty" else data[:len(data) // 2])
    res = run_main("experiments.predict", run, "clip.avi")
    assert_one_line_before_tensorflow(res, f"{run / 'model.keras'} is {'empty' if damage == 'empty' else 'damaged'}")
