"""`python -m experiments.tensorize`: a trained dense GRU run -> a TT-GRU run directory that the trainer resumes
(fine-tunes) from the tensorized weights; its one-line errors."""
import json

import numpy as np
import pytest
from helpers import make_store, run_cli, run_spied, spied_epochs

TRAIN = ["--model", "gru", "--batch-size", "4", "--protocol", "holdout", "--workers", "0", "--quiet"]


def test_not_a_dense_recurrent_run_is_a_usage_error(tmp_path):
    res = run_cli("experiments.tensorize", tmp_path, "--out", tmp_path / "new")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "not a run directory" in res.stderr
    (tmp_path / "config.json").write_text(json.dumps({"model": "tt_gru", "args": {"model": "gru", "use_tt": True}}))
    res = run_cli("experiments.tensorize", tmp_path, "--out", tmp_path / "new")
    assert res.returncode == 2 and "dense gru / lstm run" in res.stderr and not (tmp_path / "new").exists()


def test_fine_tuning_command_takes_lr_epochs_and_format_and_keeps_the_rest():
    """The printed fine-tuning command: the source's options kept, its --lr (either spelling) replaced only when
    --lr is given, --epochs / --out / the format replaced; --lr 0 is a usage error."""
    from experiments.tensorize import new_command, parse_args

    config = {"command": "python -m experiments.ucf11 --data s.h5 --model gru --lr=1e-05 --max-len 6 --epochs 4 "
                         "--out dense", "args": {"epochs": 4}}
    argv = new_command(config, parse_args(["dense", "--rank", "4", "--epochs", "2", "--lr", "1e-3", "--out", "tt"]))
    assert argv == ["--data", "s.h5", "--model", "gru", "--max-len", "6", "--use-tt", "--decomposition", "tt",
                    "--epochs", "2", "--out", "tt", "--rank", "4", "--lr", "0.001"]
    kept = new_command(config, parse_args(["dense", "--out", "tt"]))
    assert "--lr=1e-05" in kept and "--lr" not in kept and kept[kept.index("--epochs") + 1] == "4"


def test_bad_lr_is_a_usage_error(tmp_path):
    res = run_cli("experiments.tensorize", tmp_path, "--lr", "0", "--out", tmp_path / "new")
    assert res.returncode == 2 and "--lr must be > 0" in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_dense_gru_run_tensorized_then_fine_tuned(tmp_path):
    """1 dense epoch on a 3-class store at the UCF11 frame size, TT-SVD at ranks 4, then the printed command: the
    fine-tuning run starts from exactly the tensorized cores and the dense run's recurrent and classifier
    weights, and trains its epochs."""
    import ttrnn

    store = make_store(tmp_path / "s.h5", num_classes=3, groups=2, clips_per_group=2, lengths=(4, 6))
    dense, new = tmp_path / "dense", tmp_path / "tt"
    res = run_cli("experiments.ucf11", "--data", store, *TRAIN, "--epochs", "1", "--out", dense, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli("experiments.tensorize", dense, "--decomposition", "tt", "--rank", "4", "--epochs", "2",
                  "--out", new, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads((new / "tensorized.json").read_text())
    assert record["params_kernel"] == 3232 and 0 < record["kernel_relative_error"] <= 1
    assert 0 <= record["before_fine_tuning"]["accuracy"] <= 1
    command = res.stdout.strip().splitlines()[-1].split("experiments.ucf11 ", 1)[1].split()
    res = run_spied(*command, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    spy, epochs = spied_epochs(new)
    assert len(epochs) == 3                                   # the start and 2 epochs: resumed, not refused
    source = ttrnn.load_model(dense / "model.keras")
    layer = ttrnn.tensorize(source.get_layer("input_to_hidden"), "tt", (8, 20, 20, 18), (4, 4, 4, 4), ranks=4)
    expected = layer.get_weights() + source.get_layer("classifier").get_weights()
    start = [epochs[0][f"w{i}"] for i, p in enumerate(spy["paths"])
             if p.startswith(("input_to_hidden/", "classifier/"))]
    assert len(start) == len(expected)
    for a, b in zip(start, expected):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
