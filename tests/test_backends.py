"""Every layer on every Keras 3 backend: TensorFlow, JAX and PyTorch compute the same outputs and gradients.

Each backend runs in its own process (`KERAS_BACKEND` is read when Keras is first imported), all side by side:
tests/backend_worker.py builds the layers with the same NumPy weights and writes its results; the tests compare
them. Oracles: TensorFlow's results (the backend the rest of the suite tests against Keras's own layers and
TensorLy), Keras's own GRU / LSTM / SimpleRNN given `full_kernel()` on each backend, and the outputs a `.keras`
file had on the backend that saved it.

The normal pass runs TensorFlow and JAX on one recurrent cell per format and every format's Dense ("quick"); the
slow pass runs every format x cell on all three, PyTorch included (skipped where torch is not installed: see
tests/README.md for the CPU wheel).
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ttrnn.format_names import FORMAT_NAMES as FORMATS

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "backend_worker.py"
TOL = 1e-5                                   # relative to the largest magnitude of the TensorFlow array


def run_workers(folder, backends, cases):
    """Run one worker per backend side by side; {backend: {name: array}}."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    procs = {}
    for backend in backends:
        others = [b for b in backends if b != backend]
        procs[backend] = subprocess.Popen([sys.executable, str(WORKER), str(folder), cases, *others],
                                          env=dict(env, KERAS_BACKEND=backend), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
    for backend, proc in procs.items():
        _, err = proc.communicate(timeout=1200)
        assert proc.returncode == 0, f"{backend} worker failed:\n{err[-3000:]}"
    return {b: dict(np.load(folder / f"{b}.npz")) for b in backends}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return run_workers(tmp_path_factory.mktemp("backends_quick"), ("tensorflow", "jax"), "quick")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (pip install torch==2.13.0+cpu: tests/README.md)")
    return run_workers(tmp_path_factory.mktemp("backends_full"), ("tensorflow", "jax", "torch"), "full")


RUNS = [("quick", "jax"), pytest.param("full", "jax", marks=pytest.mark.slow),
        pytest.param("full", "torch", marks=pytest.mark.slow)]


def results(request, run):
    return request.getfixturevalue(run)


def relative_error(a, b):
    return np.abs(a - b).max() / max(1e-12, np.abs(b).max())


@pytest.mark.parametrize("run, backend", RUNS)
def test_outputs_and_gradients_equal_tensorflows(request, run, backend):
    res = results(request, run)
    layers = [k for k in res["tensorflow"] if k.split("_")[0] in FORMATS and "_keras" not in k]
    assert any(k.endswith("_Dense_out") for k in layers) and sum(k.endswith("_GRU_out") for k in layers) >= 1
    for key in layers:
        assert res[backend][key].shape == res["tensorflow"][key].shape, key
        assert relative_error(res[backend][key], res["tensorflow"][key]) <= TOL, key


@pytest.mark.parametrize("run, backend", [("quick", "tensorflow")] + RUNS)
def test_keras_layers_given_full_kernel_agree(request, run, backend):
    res = results(request, run)[backend]
    cells = [k[:-len("_keras")] for k in res if k.endswith("_keras")]
    assert {c.split("_")[1] for c in cells} == {"SimpleRNN", "GRU", "LSTM"}
    for case in cells:
        assert relative_error(res[f"{case}_out"], res[f"{case}_keras"]) <= TOL, case


@pytest.mark.parametrize("run, backend", [("quick", "tensorflow")] + RUNS)
def test_fit_dropout_and_bfloat16_projection(request, run, backend):
    res = results(request, run)[backend]
    assert np.all(np.isfinite(res["fit_loss"])) and res["fit_loss"][-1] < res["fit_loss"][0]
    assert np.all(np.isfinite(res["dropout_train"])) and not np.allclose(res["dropout_train"], res["dropout_infer"])
    assert 0 < relative_error(res["bf16"], res["f32"]) <= 3e-2


@pytest.mark.parametrize("run, backend", [("quick", "tensorflow")] + RUNS)
def test_bounded_projection_equals_whole_batch(request, run, backend):
    res = results(request, run)[backend]
    keys = [k[len("block0"):] for k in res if k.startswith("block0")]
    assert len(keys) >= 4
    for key in keys:
        assert relative_error(res[f"block{2 * 3}{key}"], res[f"block0{key}"]) <= TOL, key


@pytest.mark.parametrize("run", ["quick", pytest.param("full", marks=pytest.mark.slow)])
def test_keras_file_saved_on_one_backend_loads_on_the_others(request, run):
    res = results(request, run)
    for loader, values in res.items():
        for saver in res:
            if saver != loader:
                np.testing.assert_allclose(values[f"loaded_{saver}"], res[saver]["model_out"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("run, backend", RUNS)
def test_models_of_keras_layers_give_tensorflows_scores(request, run, backend):
    """The paper's TT-GRU and the pure-Keras 3D CNNs (R3D, R(2+1)D, DenseNet, C3D) on this backend."""
    res = results(request, run)
    names = sorted(k for k in res["tensorflow"] if k.startswith("net_"))
    assert names == ["net_c3d", "net_densenet121", "net_r2plus1d18", "net_r3d18", "net_tt_gru"]
    for key in names:
        assert np.isfinite(res["tensorflow"][key]).all() and np.abs(res["tensorflow"][key]).max() > 0, key
        assert relative_error(res[backend][key], res["tensorflow"][key]) <= TOL, key
