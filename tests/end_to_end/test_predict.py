"""experiments.predict on raw generated videos equals evaluating the same clips from the store the run used."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO

from preprocess import celebfaces
from ttrnn.store import FrameStore


@pytest.fixture(scope="module")
def runs(celebfaces_tree, tmp_path_factory):
    """A celebfaces store of the generated tree and two 1-epoch runs on it: TT-GRU (sequence input, max-len 5 with
    frame skip 2, so truncation and skipping matter) and TT-MLP (6 evaluation frames), trained side by side."""
    root = tmp_path_factory.mktemp("predict")
    store = root / "celebfaces.h5"
    assert celebfaces.build_store(celebfaces_tree, store, workers=1, progress=False)["status"] == 0
    common = ["--data", str(store), "--epochs", "1", "--workers", "0", "--quiet", "--intra-op", "1"]
    argv = {"tt_gru": ["--use-tt", "--max-len", "3", "--frame-skip", "2"], "tt_mlp": ["--model", "mlp"]}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    procs = {name: subprocess.Popen([sys.executable, "-m", "experiments.celebfaces", *common, *extra,
                                     "--out", str(root / name)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for name, extra in argv.items()}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    return store, {name: root / name for name in procs}


def model_frames(frames, model):
    """The clip a run's evaluation feeds its model, chosen here by hand from the docs and the samplers'
    definitions (not through ttrnn.data): TT-GRU run = every 2nd frame, the first 3 of those; TT-MLP = the 6
    evenly spaced centre frames floor((k + 1/2) * T / 6)."""
    if model == "tt_gru":
        return frames[::2][:3]
    return frames[[int((k + 0.5) * len(frames) / 6) for k in range(6)]]


def store_probabilities(store_path, run_dir, rows, model_name):
    """Probabilities of store rows: the saved model on frames picked by hand from the stored clip, unpadded."""
    import ttrnn
    model = ttrnn.load_model(run_dir / "model.keras")
    out = {}
    with FrameStore(store_path) as store:
        for row in rows:
            x = model_frames(store.read(row), model_name)[None]
            out[row] = np.asarray(model(x, training=False))[0]
    return out


@pytest.mark.parametrize("model", ["tt_gru", "tt_mlp"])
def test_predict_equals_store_evaluation(runs, celebfaces_tree, capsys, model):
    from experiments import predict
    store_path, run_dirs = runs
    with FrameStore(store_path) as store:
        sources = list(store.index["source"])
        classes = list(store.classes)
    rows = [0, len(sources) - 1]
    files = [os.path.join(celebfaces_tree, sources[r]) for r in rows]
    code = predict.main([str(run_dirs[model]), *files, "--json", "--top", "3"])
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert code == 0 and [ln["file"] for ln in lines] == files
    reference = store_probabilities(store_path, run_dirs[model], rows, model)
    for row, line in zip(rows, lines):
        probs = reference[row]
        order = np.argsort(-probs, kind="stable")[:3]
        assert [t["class"] for t in line["top"]] == [classes[i] for i in order]
        np.testing.assert_allclose([t["probability"] for t in line["top"]], probs[order], atol=1e-5)


def test_missing_and_unreadable_files_are_one_line_errors_others_predicted(runs, celebfaces_tree, tmp_path,
                                                                            capsys):
    from experiments import predict
    store_path, run_dirs = runs
    with FrameStore(store_path) as store:
        good = os.path.join(celebfaces_tree, store.index["source"][1])
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video at all" * 10)
    missing = tmp_path / "missing.avi"
    folder = tmp_path / "a-folder.avi"
    folder.mkdir()
    code = predict.main([str(run_dirs["tt_gru"]), str(missing), good, str(broken), str(folder)])
    out, err = capsys.readouterr()
    assert code == 2
    errors = err.strip().splitlines()
    assert len(errors) == 3 and str(missing) in errors[0] and str(broken) in errors[1]
    assert errors[2].endswith(f"{folder}: is a directory; give video files")
    assert all("error:" in e for e in errors)
    assert out.startswith(good) and len([ln for ln in out.splitlines() if ln.startswith("  ")]) == 4  # 4 classes
    code = predict.main([str(run_dirs["tt_gru"]), str(missing), "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and json.loads(out)["file"] == str(missing) and "error" in json.loads(out)


def test_bad_run_directory_is_a_one_line_error(tmp_path, celebfaces_tree):
    res = subprocess.run([sys.executable, "-m", "experiments.predict", str(tmp_path), "x.avi"], capture_output=True,
                         text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not a run directory" in res.stderr
    assert res.stdout == ""
