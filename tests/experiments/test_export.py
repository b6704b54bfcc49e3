"""Every recurrent model family (TT / TR / BT / CP / HT x GRU / LSTM / SimpleRNN) and the TT-MLP, exported with
Keras's `model.export` to a SavedModel, ONNX and LiteRT, run by TensorFlow, onnxruntime and the standard LiteRT
interpreter (builtin ops only), equal to Keras's outputs to 1e-5; and `python -m experiments.export`.

The normal pass exports the paper's TT-GRU and the TT-MLP to the three formats (and the CLI to each); the whole
matrix (the 15 recurrent layers, the paper's TT-LSTM, x 3 formats: ~5-10 s an export on 2 cores) is in the slow
pass. Skipped with the reason when the
`export` extra is not installed.
"""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO

EXTRA = ("tf2onnx", "onnx", "onnxruntime", "ai_edge_litert")
MISSING = [name for name in EXTRA if importlib.util.find_spec(name) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"the export extra is not installed ({', '.join(MISSING)}): "
                                                      "pip install '.[export]'")
FRAME = (4, 6, 3)                                     # 72 values a frame
FORMATS = ("tt", "tr", "bt", "cp", "ht")
CELLS = ("gru", "lstm", "simple_rnn")
RUNTIMES = ("savedmodel", "onnx", "litert")
TOL = 1e-5


def recurrent_model(fmt, cell, preset="modern"):
    """frames uint8 (B, T, 4, 6, 3) -> PixelScaling -> the `fmt` `cell` layer on the raw frames -> softmax, as
    `ttrnn.models.rnn_classifier` builds them (which has no SimpleRNN: the same graph by hand)."""
    import keras

    from ttrnn.models import rnn_classifier

    if cell != "simple_rnn":
        return rnn_classifier(3, FRAME, cell=cell, tt_input_shape=(4, 6, 3), tt_output_shape=(2, 2, 2),
                              tt_ranks=(1, 2, 2, 1), decomposition=fmt, ranks=2 if fmt != "tt" else None,
                              preset=preset)
    from ttrnn.layers import PixelScaling, layer_class
    frames = keras.Input((None,) + FRAME, dtype="uint8", name="frames")
    pixels = PixelScaling("paper", cast=False, name="pixels")
    scale, shift = pixels.affine()
    ranks = [1, 2, 2, 1] if fmt == "tt" else 2
    layer = layer_class(fmt, "SimpleRNN")([4, 6, 3], [2, 2, 2], ranks, input_scale=scale, input_shift=shift,
                                          preset=preset, bias_initializer="random_normal", name="input_to_hidden")
    return keras.Model(frames, keras.layers.Dense(3, activation="softmax")(layer(pixels(frames))))


def mlp_model():
    from ttrnn.models import tt_mlp_classifier
    return tt_mlp_classifier(3, FRAME, (24, 6, 3), hidden_shape=(2, 2, 2), tt_ranks=(1, 2, 2, 1), num_frames=6)


def check_export(model, fmt, tmp_path):
    """Export `model` to `fmt`, run it on its runtime, compare with Keras; the artifact's size."""
    import keras

    from experiments.export import check_clips, export, runtime, size_bytes

    name = {"savedmodel": "saved_model", "onnx": "model.onnx", "litert": "model.tflite"}[fmt]
    path = export(model, tmp_path / name, fmt)
    x = check_clips(model, clips=3, steps=7)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    got = runtime(path, fmt)(x)                      # LiteRT: the standard interpreter, Flex ops refused
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOL
    if model.inputs[0].shape[1] is None:             # any number of steps, any batch size
        x = check_clips(model, clips=1, steps=12, seed=1)
        assert np.abs(runtime(path, fmt)(x) - keras.ops.convert_to_numpy(model(x))).max() <= TOL
    return size_bytes(path)


@pytest.mark.parametrize("fmt", RUNTIMES)
def test_the_paper_tt_gru_exports_and_runs_equal_to_keras(fmt, tmp_path):
    """The original's TT-GRU ("paper" preset: Keras-1 hard_sigmoid gates, reset_after=False; dropout 0.25)."""
    assert check_export(recurrent_model("tt", "gru", preset="paper"), fmt, tmp_path) > 0


@pytest.mark.parametrize("fmt", RUNTIMES)
def test_tt_mlp_exports_and_runs_equal_to_keras(fmt, tmp_path):
    assert check_export(mlp_model(), fmt, tmp_path) > 0


MATRIX = [(f, c, "modern") for f in FORMATS for c in CELLS] + [("tt", "lstm", "paper")]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", RUNTIMES)
@pytest.mark.parametrize("family, cell, preset", MATRIX, ids=[f"{f}-{c}-{p}" for f, c, p in MATRIX])
def test_every_recurrent_family_exports_and_runs_equal_to_keras(family, cell, preset, fmt, tmp_path):
    assert check_export(recurrent_model(family, cell, preset), fmt, tmp_path) > 0


def test_the_export_path_leaves_training_and_predict_on_the_fast_path():
    """Outside Keras's exporters the layers keep their fast path; inside `plain_ops()` they compute the same."""
    import keras

    from ttrnn.layers.kernel import exporting, plain_ops

    model = recurrent_model("tt", "gru")
    x = np.random.default_rng(0).integers(0, 256, (2, 9) + FRAME, dtype=np.uint8)
    assert not exporting()
    fast = keras.ops.convert_to_numpy(model(x))
    with plain_ops():
        assert exporting()
        plain = keras.ops.convert_to_numpy(model(x))
    assert not exporting()
    assert np.abs(plain - fast).max() <= TOL


# --- the CLI ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory with what the export CLI reads: config.json and model.keras (a TT-GRU)."""
    path = tmp_path_factory.mktemp("run")
    model = recurrent_model("tt", "gru")
    model.save(path / "model.keras")
    (path / "config.json").write_text(json.dumps({"model": "tt_gru"}))
    return path


def export_cli(*args):
    return subprocess.run([sys.executable, "-m", "experiments.export", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=600)


def test_cli_writes_each_format_and_checks_it(run_dir, tmp_path, capsys):
    """The CLI's main in this process (TensorFlow is loaded already); a subprocess below for its errors."""
    from experiments.export import main

    assert main([str(run_dir), "--format", "litert"]) == 0
    assert (run_dir / "model.tflite").is_file()
    assert "the LiteRT interpreter's outputs equal Keras's" in capsys.readouterr().out
    assert main([str(run_dir), "--format", "litert", "--batch", "1", "--frames", "5", "--out",
                 str(tmp_path / "fixed.tflite")]) == 0                # the input fixed to one clip of 5 frames
    assert "on 1 clip of 5 frames" in capsys.readouterr().out
    assert main([str(run_dir), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    assert (tmp_path / "m.onnx").is_file() and "onnxruntime's outputs equal" in capsys.readouterr().out
    for _ in range(2):                                        # the second replaces the first, whole
        assert main([str(run_dir), "--format", "savedmodel", "--out", str(tmp_path / "sm")]) == 0
    assert (tmp_path / "sm" / "saved_model.pb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.tflite", "m.onnx", "sm"]


@pytest.mark.parametrize("args, message", [
    (["--format", "litert", "--out", "{tmp}/model.bin"], "must end in .tflite"),
    (["--format", "onnx", "--out", "{tmp}"], "is a directory"),
    (["--format", "jpeg"], "invalid choice"),
    (["--format", "onnx", "--frames", "0"], "--frames must be >= 1"),
    ([], "required: --format"),
])
def test_cli_bad_input_is_one_line_and_status_2(run_dir, tmp_path, args, message):
    res = export_cli(run_dir, *[a.format(tmp=tmp_path) for a in args])
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1 and message in lines[0], res.stderr


def test_cli_refuses_a_folder_that_is_not_a_finished_run(tmp_path):
    res = export_cli(tmp_path, "--format", "onnx")
    assert res.returncode == 2 and "not a run directory" in res.stderr
    (tmp_path / "config.json").write_text("{}")
    res = export_cli(tmp_path, "--format", "onnx")
    assert res.returncode == 2 and "has no model.keras" in res.stderr
    assert not any(tmp_path.glob("*.onnx"))


def test_cli_names_the_extra_when_a_package_is_missing(run_dir):
    """Without onnxruntime (its import blocked: `sys.modules[name] = None`), --format onnx is refused in one line
    naming the extra, before anything is written."""
    code = ("import sys; sys.modules['onnxruntime'] = None; from experiments.export import main; "
            "sys.exit(main(sys.argv[1:]))")
    res = subprocess.run([sys.executable, "-c", code, str(run_dir), "--format", "onnx", "--out",
                          str(run_dir / "blocked.onnx")], capture_output=True, text=True, cwd=REPO, timeout=300)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "onnxruntime" in lines[0] and "pip install '.[export]'" in lines[0]
    assert not (run_dir / "blocked.onnx").exists()
