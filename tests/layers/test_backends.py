"""Every layer on every Keras 3 backend: TensorFlow, JAX and PyTorch compute the same outputs and gradients.

Each backend runs in its own process (`KERAS_BACKEND` is read when Keras is first imported), all side by side:
tests/backend_worker.py builds the layers with the same NumPy weights and writes its results; the tests compare
them. Oracles: TensorFlow's results (the backend the rest of the suite tests against Keras's own layers and
TensorLy), Keras's own GRU / LSTM / SimpleRNN given `full_kernel()` on each backend, and the outputs a `.keras`
file had on the backend that saved it.

All of it is in the slow pass (~80-150 s on 2 cores, most of it JAX compiling every layer): every format x cell on
all three backends, PyTorch skipped where torch is not installed (tests/README.md names the CPU wheel). The normal
pass had a subset of the same checks (one cell per format, TensorFlow + JAX), which the slow pass already covers.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ttrnn.formats import FORMAT_NAMES as FORMATS

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "backend_worker.py"
TOL = 1e-5                                   # relative to the largest magnitude of the TensorFlow array
pytestmark = pytest.mark.slow


def run_workers(folder, backends):
    """Run one worker per backend side by side; {backend: {name: array}}."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    procs = {}
    for backend in backends:
        others = [b for b in backends if b != backend]
        procs[backend] = subprocess.Popen([sys.executable, str(WORKER), str(folder), *others],
                                          env=dict(env, KERAS_BACKEND=backend), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
    for backend, proc in procs.items():
        _, err = proc.communicate(timeout=1200)
        assert proc.returncode == 0, f"{backend} worker failed:\n{err[-3000:]}"
    return {b: dict(np.load(folder / f"{b}.npz")) for b in backends}


TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    backends = ("tensorflow", "jax") + (("torch",) if TORCH else ())
    return run_workers(tmp_path_factory.mktemp("backends_full"), backends)


NO_TORCH = pytest.mark.skipif(not TORCH,
                              reason="torch is not installed (pip install torch==2.13.0+cpu: tests/README.md)")
BACKENDS = ["tensorflow", "jax", pytest.param("torch", marks=NO_TORCH)]
OTHERS = BACKENDS[1:]


def relative_error(a, b):
    return np.abs(a - b).max() / max(1e-12, np.abs(b).max())


@pytest.mark.parametrize("backend", OTHERS)
def test_outputs_and_gradients_equal_tensorflows(full, backend):
    res = full
    layers = [k for k in res["tensorflow"] if k.split("_")[0] in FORMATS and "_keras" not in k]
    assert any(k.endswith("_Dense_out") for k in layers) and sum(k.endswith("_GRU_out") for k in layers) >= 1
    for key in layers:
        assert res[backend][key].shape == res["tensorflow"][key].shape, key
        assert relative_error(res[backend][key], res["tensorflow"][key]) <= TOL, key


@pytest.mark.parametrize("backend", BACKENDS)
def test_keras_layers_given_full_kernel_agree(full, backend):
    res = full[backend]
    cells = [k[:-len("_keras")] for k in res if k.endswith("_keras")]
    assert {c.split("_")[1] for c in cells} == {"SimpleRNN", "GRU", "LSTM"}
    for case in cells:
        assert relative_error(res[f"{case}_out"], res[f"{case}_keras"]) <= TOL, case


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_dropout_and_bfloat16_projection(full, backend):
    res = full[backend]
    assert np.all(np.isfinite(res["fit_loss"])) and res["fit_loss"][-1] < res["fit_loss"][0]
    assert np.all(np.isfinite(res["dropout_train"])) and not np.allclose(res["dropout_train"], res["dropout_infer"])
    assert 0 < relative_error(res["bf16"], res["f32"]) <= 3e-2


@pytest.mark.parametrize("backend", BACKENDS)
def test_bounded_projection_equals_whole_batch(full, backend):
    res = full[backend]
    keys = [k[len("block0"):] for k in res if k.startswith("block0")]
    assert len(keys) >= 4
    for key in keys:
        assert relative_error(res[f"block{2 * 3}{key}"], res[f"block0{key}"]) <= TOL, key


def test_keras_file_saved_on_one_backend_loads_on_the_others(full):
    res = full
    for loader, values in res.items():
        for saver in res:
            if saver != loader:
                np.testing.assert_allclose(values[f"loaded_{saver}"], res[saver]["model_out"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", OTHERS)
def test_models_of_keras_layers_give_tensorflows_scores(full, backend):
    """The paper's TT-GRU and the pure-Keras 3D CNNs (R3D, R(2+1)D, DenseNet, C3D) on this backend."""
    res = full
    names = sorted(k for k in res["tensorflow"] if k.startswith("net_"))
    assert names == ["net_c3d", "net_densenet121", "net_r2plus1d18", "net_r3d18", "net_tt_gru"]
    for key in names:
        assert np.isfinite(res["tensorflow"][key]).all() and np.abs(res["tensorflow"][key]).max() > 0, key
        assert relative_error(res[backend][key], res["tensorflow"][key]) <= TOL, key
