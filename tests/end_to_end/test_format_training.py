"""experiments.ucf11 with another tensor format: --decomposition / --rank / --blocks, the successors' protocol
(--protocol holdout, --sample-frames), and their usage errors (one line, status 2, before TensorFlow)."""
import json

import numpy as np
import pytest
from helpers import make_store, run_cli


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """11 classes x 2 groups x 2 clips of 5-9 frames at the paper's 160x120 (the UCF11 modes need it)."""
    return make_store(tmp_path_factory.mktemp("formats") / "ucf11.h5", num_classes=11, groups=2, clips_per_group=2,
                      lengths=(5, 9))


@pytest.mark.slow   # multi-process / slow-format end to end: .ci/run runs it in its slow pass
def test_bt_lstm_run_on_the_successors_protocol(store, tmp_path):
    out = tmp_path / "run"
    res = run_cli("experiments.ucf11", "--data", store, "--model", "lstm", "--decomposition", "bt", "--rank", "2",
                  "--blocks", "3", "--protocol", "holdout", "--sample-frames", "3", "--epochs", "1", "--lr", "1e-3",
                  "--out", out, "--workers", "0", "--quiet", "--intra-op", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "bt_lstm"
    # BT: N (sum_k n_k m_k R_k + prod R) with the 4 LSTM gates in the first output mode
    n, m = (8, 20, 20, 18), (16, 4, 4, 4)
    assert metrics["params_input_to_hidden"] == 3 * (sum(a * b * 2 for a, b in zip(n, m)) + 2 ** 4)
    assert metrics["num_test"] == round(0.2 * 44) and metrics["num_train"] == 44 - metrics["num_test"]
    config = json.loads((out / "config.json").read_text())
    args = config["args"]
    assert (args["decomposition"], args["rank"], args["blocks"], args["sample_frames"], args["protocol"]) == \
        ("bt", 2, 3, 3, "holdout")


def test_holdout_split_is_seeded_20_percent():
    from ttrnn.data.splits import holdout_split

    a, b = holdout_split(50, 0), holdout_split(50, 0)
    assert len(a.test) == 10 and np.array_equal(a.test, b.test) and np.array_equal(a.train, b.train)
    assert sorted(np.concatenate([a.train, a.test]).tolist()) == list(range(50))
    assert not np.array_equal(holdout_split(50, 1).test, a.test)


@pytest.mark.parametrize("args, message", [
    (["--decomposition", "tr", "--blocks", "2"], "--blocks N (N >= 1) applies to --decomposition bt only"),
    (["--decomposition", "xx"], "invalid choice"),
    (["--rank", "4"], "--rank applies to a tensorized gru/lstm"),
    (["--decomposition", "cp", "--rank", "a,b"], "--rank must be an int or a comma list"),
    (["--model", "mlp", "--sample-frames", "6"], "--sample-frames applies to gru, lstm, not mlp"),
])
def test_usage_errors_are_one_line(store, tmp_path, args, message):
    out = tmp_path / "run"
    res = run_cli("experiments.ucf11", "--data", store, *args, "--out", out)
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()
