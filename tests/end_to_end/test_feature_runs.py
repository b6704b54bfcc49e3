"""The trainer and predict on feature stores (per-frame CNN features): the rnn family's formats and cells train on
one and record the backbone; `--input-scale auto` is measured on the training clips and recorded; the frame-only
families and bad --input-modes / --input-scale are one-line errors (exit 2); predict
classifies a video of a feature run as the backbone's own predict and the model's give it; a run whose backbone
weights file is gone is a one-line error."""
import json

import numpy as np
import pytest
from helpers import make_store, run_cli

from experiments.bench.features import write_synthetic_features
from ttrnn.formats import FORMAT_NAMES


@pytest.fixture(scope="module")
def feature_store(tmp_path_factory):
    """11 classes x 4 clips of 4-8 steps of 64 float16 values, written through the store writer."""
    return write_synthetic_features(tmp_path_factory.mktemp("features") / "features.h5", clips=44, steps=(4, 8),
                                    width=64, groups=4, signal=2.0)


def train(store, out, *args, epochs=1):
    return run_cli("experiments.ucf11", "--data", store, *args, "--epochs", str(epochs), "--lr", "1e-2", "--out",
                   out, "--workers", "0", "--quiet", "--no-tensorboard", "--intra-op", "2")


def test_tt_lstm_trains_on_features_and_records_the_backbone(feature_store, tmp_path):
    out = tmp_path / "run"
    res = train(feature_store, out, "--model", "lstm", "--use-tt", "--input-modes", "2,2,4,4", epochs=4)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "tt_lstm"
    assert metrics["features"]["backbone"] == "inceptionv3" and metrics["features"]["width"] == 64
    # TT: sum_k r_{k-1} n_k m_k r_k, input modes 2x2x4x4, hidden 4x4x4x4 with the 4 gates in the first mode
    n, m, r = (2, 2, 4, 4), (16, 4, 4, 4), (1, 4, 4, 4, 1)
    assert metrics["params_input_to_hidden"] == sum(r[k] * n[k] * m[k] * r[k + 1] for k in range(4))
    config = json.loads((out / "config.json").read_text())
    assert config["store"]["features"]["width"] == 64 and config["args"]["input_modes"] == [2, 2, 4, 4]
    lines = (out / "history.csv").read_text().splitlines()
    head = lines[0].split(",")
    losses = [float(row.split(",")[head.index("train_loss")]) for row in lines[1:]]
    assert losses[-1] < losses[0]


@pytest.mark.slow   # ten trainer runs
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_every_format_and_cell_trains_on_features(feature_store, tmp_path, fmt, cell):
    out = tmp_path / "run"
    res = train(feature_store, out, "--model", cell, "--decomposition", fmt)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == f"{fmt}_{cell}" and metrics["features"]["width"] == 64
    assert np.isfinite(metrics["test_loss"])


def test_plain_gru_trains_on_features(feature_store, tmp_path):
    out = tmp_path / "run"
    res = train(feature_store, out, "--model", "gru", "--max-len", "5")
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["params_input_to_hidden"] == 64 * 3 * 256     # Keras's GRU kernel (F, 3 units)
    assert json.loads((out / "config.json").read_text())["input"]["max_len"] == 5


def test_input_scale_auto_is_measured_on_the_training_clips_and_recorded(feature_store, tmp_path):
    """`--input-scale auto` (the default): 1 / RMS of the training clips' features (all of them: fewer than 64), in
    config.json's args and in the saved model's input kernel."""
    from ttrnn.store import FrameStore
    out = tmp_path / "run"
    res = train(feature_store, out, "--model", "lstm", "--decomposition", "tr")
    assert res.returncode == 0, res.stderr[-2000:]
    train_ids = set(json.loads((out / "data.json").read_text())["splits"]["train"])
    with FrameStore(feature_store) as store:
        x = np.concatenate([store.read(i).astype(np.float64).ravel() for i in range(len(store))
                            if str(store.index["clip_id"][i]) in train_ids])
    scale = json.loads((out / "config.json").read_text())["args"]["input_scale"]
    assert 0 < len(train_ids) < 44 and scale == pytest.approx(1 / np.sqrt(np.mean(x ** 2)), rel=1e-9)
    assert _saved_input_scale(out / "model.keras") == pytest.approx(scale)


def _saved_input_scale(path):
    """The `input_scale` of the saved model's input-to-hidden layer."""
    import zipfile
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    layer = next(x for x in config["config"]["layers"] if x["config"]["name"] == "input_to_hidden")
    return layer["config"]["input_scale"]


@pytest.mark.parametrize("args, message", [
    (["--model", "mlp"], "is a feature store (inceptionv3 features); --model mlp trains on frames"),
    (["--model", "tsn"], "--model tsn trains on frames"),
    (["--model", "c3d"], "--model c3d trains on frames"),
    (["--model", "r3d"], "--model r3d trains on frames"),
    (["--model", "lstm", "--use-tt", "--input-modes", "4,4,4,4"], "multiply to 256, not the feature width 64"),
    (["--model", "lstm", "--use-tt", "--input-modes", "4,4,4"], "--input-modes needs 4 modes"),
    (["--model", "lstm", "--input-modes", "2,2,4,4"], "--input-modes applies to a tensorized gru/lstm"),
    (["--model", "lstm", "--use-tt", "--scaling", "unit"], "--scaling applies to frame stores"),
    (["--model", "lstm", "--use-tt", "--input-scale", "0"], "--input-scale must be auto or a number > 0, got 0.0"),
    (["--model", "lstm", "--use-tt", "--input-scale", "big"], "--input-scale must be auto or a number > 0"),
])
def test_feature_store_usage_errors_are_one_line(feature_store, tmp_path, args, message):
    out = tmp_path / "run"
    res = run_cli("experiments.ucf11", "--data", feature_store, *args, "--out", out)
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("option, value", [("--input-modes", "2,2,4,4"), ("--input-scale", "1")])
def test_feature_options_on_a_frame_store_are_usage_errors(tmp_path, option, value):
    store = make_store(tmp_path / "frames.h5", num_classes=11, groups=1, clips_per_group=1, lengths=(3, 4))
    res = run_cli("experiments.ucf11", "--data", store, "--model", "lstm", "--use-tt", option, value,
                  "--out", tmp_path / "run")
    assert res.returncode == 2 and f"{option} applies to feature stores" in res.stderr


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory):
    """A frame store -> ResNet50 features (random weights saved to a file, 32x32 input: features not all zero, which
    a random MobileNetV2's are) -> a 1-epoch TT-GRU."""
    from ttrnn.features import backbone_model, extract_store
    root = tmp_path_factory.mktemp("feature-run")
    frames = make_store(root / "frames.h5", num_classes=11, groups=1, clips_per_group=2, lengths=(4, 6),
                        size=(64, 48))
    weights = root / "backbone.weights.h5"
    backbone_model("resnet50", image_size=32).get_layer("resnet50").save_weights(weights)
    summary = extract_store(str(frames), str(root / "features.h5"), "resnet50", weights=str(weights),
                            image_size=32, batch=8, workers=0)
    assert summary["status"] == 0
    out = root / "run"
    res = train(root / "features.h5", out, "--model", "gru", "--use-tt")
    assert res.returncode == 0, res.stderr[-2000:]
    return out, weights


def test_predict_on_a_feature_run_equals_backbone_then_model(feature_run, tmp_path):
    import keras

    import ttrnn
    from preprocess.synthetic import write_video
    from preprocess.video import decode
    from ttrnn.features import backbone_model
    run, weights = feature_run
    rng = np.random.default_rng(5)
    video = tmp_path / "clip.avi"
    write_video(str(video), rng.integers(0, 255, (9, 48, 64, 3), dtype=np.uint8))
    res = run_cli("experiments.predict", run, video, "--json", "--top", "11")
    assert res.returncode == 0, res.stderr[-2000:]
    answer = json.loads(res.stdout.strip().splitlines()[-1])
    got = {e["class"]: e["probability"] for e in answer["top"]}
    # reference: the decoded frames through the backbone's own predict, then the trained model
    frames, _ = decode(video, size=(64, 48))
    feats = backbone_model("resnet50", weights=str(weights), image_size=32).predict(frames, verbose=0)
    assert (feats != 0).any(axis=1).all()      # no step the model would mask as padding
    model = ttrnn.load_model(run / "model.keras")
    probs = keras.ops.convert_to_numpy(model(feats[None].astype(np.float16), training=False))[0]
    classes = json.loads((run / "config.json").read_text())["store"]["classes"]
    assert answer["frames"] == len(frames)
    np.testing.assert_allclose([got[c] for c in classes], probs, atol=2e-3)   # float16 features: ~1e-3


def test_predict_with_the_backbone_weights_gone_is_one_line(feature_run, tmp_path):
    import shutil
    run, _ = feature_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["store"]["features"]["weights"] = str(tmp_path / "moved.weights.h5")
    (copy / "config.json").write_text(json.dumps(config))
    res = run_cli("experiments.predict", copy, tmp_path / "any.avi")
    assert res.returncode == 2, res.stderr[-2000:]
    assert "its backbone cannot be loaded" in res.stderr and "moved.weights.h5" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run_cli("experiments.predict", run, tmp_path / "any.avi", "--stream")
    assert res.returncode == 2 and "--stream classifies frame-store runs only" in res.stderr
