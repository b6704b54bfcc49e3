"""3D-ResNets-PyTorch checkpoints without PyTorch (ttrnn.baselines.load_torch_checkpoint): files written by the
reference's own code (tests/fixtures/make_torch_checkpoints.py) load and give the reference's logits on the same uint8
clip; prefixes, mismatches, class counts, legacy and hostile files; --ft-begin-module through the trainer."""
import json
import pickle
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import make_store, run_cli

from ttrnn.baselines import (
    CheckpointError,
    freeze_before,
    load_torch_checkpoint,
    r2plus1d,
    read_torch_file,
    reference_normalization,
    resnet3d,
)
from ttrnn.baselines.torch_checkpoint import torch_key_to_weight

DATA = Path(__file__).resolve().parents[1] / "fixtures"
R3D = DATA / "torch_r3d10.pth"              # reference save_checkpoint: {epoch, arch, state_dict, optimizer, ...}
R2P1D = DATA / "torch_r2p1d10_module.pth"   # {arch, state_dict} of a DataParallel model: `module.` prefixes


def tiny_r3d(classes=4, depth=10, width=0.0625, **kw):
    return resnet3d(depth, classes, widen_factor=width, input_shape=(4, 16, 16, 3), activation=None,
                    normalization=reference_normalization(), **kw)


def reference_case(name):
    return np.load(DATA / f"{name}_clip.npy"), np.load(DATA / f"{name}_logits.npy")


def relative(ours, ref):
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def test_reference_checkpoint_gives_the_reference_logits():
    model = load_torch_checkpoint(tiny_r3d(), R3D)
    clip, ref = reference_case("torch_r3d10")
    assert relative(model(clip, training=False).numpy(), ref) < 1e-4


def test_dataparallel_prefixed_r2plus1d_gives_the_reference_logits():
    sd = read_torch_file(R2P1D)["state_dict"]
    assert all(k.startswith("module.") for k in sd)
    model = r2plus1d(10, 4, widen_factor=0.03125, input_shape=(4, 16, 16, 3), activation=None,
                     normalization=reference_normalization())
    load_torch_checkpoint(model, R2P1D)
    clip, ref = reference_case("torch_r2p1d10_module")
    assert relative(model(clip, training=False).numpy(), ref) < 1e-4


def test_the_file_reads_as_numpy_with_the_reference_layouts():
    obj = read_torch_file(R3D)
    assert obj["arch"] == "resnet-10" and {"epoch", "optimizer", "scheduler"} <= set(obj)
    sd = obj["state_dict"]
    assert sd["conv1.weight"].shape == (4, 3, 7, 7, 7) and sd["conv1.weight"].dtype == np.float32
    assert torch_key_to_weight("layer2.0.downsample.1.running_var", "resnet") == ("layer2_0_down_bn", "running_var")
    assert torch_key_to_weight("features.denseblock3.denselayer7.norm2.weight", "densenet") == \
        ("block3_7_conv2_bn", "weight")


def test_other_depth_fails_with_one_line_naming_the_key():
    model = tiny_r3d(depth=18)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(CheckpointError, match="arch 'resnet-10'.*resnet-18"):
        load_torch_checkpoint(model, R3D)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))   # nothing assigned


def test_other_width_names_the_first_tensor_that_does_not_fit():
    with pytest.raises(CheckpointError) as err:
        load_torch_checkpoint(tiny_r3d(width=0.125), R3D)
    assert "conv1.weight" in str(err.value) and "\n" not in str(err.value)


def test_other_class_count_replaces_the_classifier_and_says_so():
    said = []
    model = load_torch_checkpoint(tiny_r3d(classes=6), R3D, log=said.append)
    assert any("4 classes" in s and "6" in s for s in said)
    sd = read_torch_file(R3D)["state_dict"]
    np.testing.assert_array_equal(model.get_layer("layer4_0_conv2").kernel.numpy(),
                                  sd["layer4.0.conv2.weight"].transpose(2, 3, 4, 1, 0))
    assert model.get_layer("classifier").kernel.shape == (32, 6)


def test_shortcut_a_model_refuses_the_b_checkpoint():
    with pytest.raises(CheckpointError, match="downsample"):
        load_torch_checkpoint(tiny_r3d(shortcut="A"), R3D)


def test_legacy_and_foreign_files_give_clear_errors(tmp_path):
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))   # how a pre-1.6 file starts
    with pytest.raises(CheckpointError, match="legacy.*re-save"):
        read_torch_file(legacy)
    (tmp_path / "x.pth").write_text("hello")
    with pytest.raises(CheckpointError, match="not a torch.save file"):
        read_torch_file(tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="not found"):
        read_torch_file(tmp_path / "missing.pth")


class _Evil:
    def __reduce__(self):
        import os
        return os.system, ("touch pwned",)


def test_a_pickle_calling_anything_else_is_refused_before_it_runs(tmp_path):
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"state_dict": _Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match="posix.system|os.system"):
        read_torch_file(path)
    assert not (Path.cwd() / "pwned").exists()


def test_unit_scaled_model_is_told_about_the_normalization():
    said = []
    load_torch_checkpoint(resnet3d(10, 4, widen_factor=0.0625, input_shape=(4, 16, 16, 3)), R3D, log=said.append)
    assert any("reference_normalization" in s for s in said)


def test_ft_begin_module_layer4_trains_only_layer4_and_fc(tmp_path):
    """The trainer with --weights tiny.pth --ft-begin-module layer4, 1 epoch: every weight before layer4 (BatchNorm
    moving statistics included) is the checkpoint's, every layer4 and classifier weight moved; config.json records
    the input normalization."""
    store = make_store(tmp_path / "s.h5", num_classes=4, groups=2, clips_per_group=1, lengths=(4, 6), size=(24, 16))
    out = tmp_path / "run"
    res = run_cli("experiments.ucf11", "--data", store, "--model", "r3d", "--depth", "10", "--width", "0.0625",
                  "--clip-len", "4", "--crop", "16", "--weights", R3D, "--ft-begin-module", "layer4", "--epochs",
                  "1", "--batch-size", "4", "--lr", "0.01", "--protocol", "holdout", "--test-clips", "1",
                  "--workers", "0", "--quiet", "--out", out)
    assert res.returncode == 0, res.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["args"]["input_norm"] == "kinetics" and config["args"]["ft_begin_module"] == "layer4"
    trained = keras.saving.load_model(out / "model.keras", compile=False)
    loaded = load_torch_checkpoint(resnet3d(10, 4, widen_factor=0.0625, input_shape=(4, 16, 16, 3),
                                            normalization=reference_normalization()), R3D)
    fresh = {w.path: w.numpy() for w in loaded.weights}
    late = [w for w in trained.weights if w.path.startswith(("layer4_", "classifier/"))]
    early = [w for w in trained.weights if not w.path.startswith(("layer4_", "classifier/"))]
    assert len(early) > 40 and any("moving_mean" in w.path for w in early)
    assert [w.path for w in early if not np.array_equal(w.numpy(), fresh[w.path])] == []
    assert [w.path for w in late if np.array_equal(w.numpy(), fresh[w.path])] == []


def test_unknown_ft_begin_module_is_one_line():
    with pytest.raises(ValueError, match="'layer9' is not a module.*layer4, fc"):
        freeze_before(tiny_r3d(), "layer9")
