"""The trainer's options for fully decomposed and integrated recurrent layers (--recurrent-decomposition,
--recurrent-rank, --integrated): their one-line usage errors before TensorFlow, the run labels and what the tables
rebuild from them, config.json and resume, a tiny training run of each, and the compression table of whole-model
parameter counts."""
import json
import shlex

import numpy as np
import pytest
from helpers import make_store, run_cli, run_main, run_side_by_side

from experiments import families, paper, param_counts, tables
from experiments.train import build_parser, identity, model_label, validate
from experiments.ucf11 import SPEC
from ttrnn.cli import UsageError


def parse(*argv):
    parser = build_parser(SPEC)
    args = parser.parse_args(["--data", "x.h5", *argv])
    validate(args, SPEC, parser)
    return args


@pytest.mark.parametrize("argv, message", [
    (["--integrated"], "--integrated applies to a tensorized gru/lstm: add --decomposition FORMAT or --use-tt"),
    (["--model", "lstm", "--recurrent-decomposition", "tt"], "--recurrent-decomposition applies to a tensorized"),
    (["--use-tt", "--recurrent-rank", "4"], "--recurrent-rank applies with --recurrent-decomposition FORMAT"),
    (["--decomposition", "ht", "--integrated", "--recurrent-decomposition", "tt"],
     "--integrated already factorizes the recurrent weights"),
    (["--use-tt", "--recurrent-decomposition", "tt", "--recurrent-rank", "0"], "--recurrent-rank entries must be >= 1"),
    (["--use-tt", "--recurrent-decomposition", "tt", "--recurrent-rank", "a"], "--recurrent-rank must be an int"),
    (["--use-tt", "--recurrent-decomposition", "xx"], "invalid choice"),
    (["--model", "mlp", "--integrated"], "--integrated applies to gru, lstm, not mlp"),
])
def test_bad_combinations_are_one_line_usage_errors_before_tensorflow(tmp_path, argv, message):
    out = tmp_path / "run"
    res = run_main("experiments.ucf11", "--data", tmp_path / "missing.h5", *argv, "--out", out)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert "TENSORFLOW_IMPORTED False" in res.stdout and not out.exists()


@pytest.mark.parametrize("argv, label, model_args", [
    (["--model", "lstm", "--use-tt", "--recurrent-decomposition", "tt"], "tt_lstm_fd",
     {"recurrent_decomposition": "tt"}),
    (["--decomposition", "tt", "--recurrent-decomposition", "ht", "--recurrent-rank", "3"], "tt_gru_fd_ht",
     {"recurrent_decomposition": "ht"}),
    (["--model", "lstm", "--decomposition", "ht", "--integrated"], "ht_lstm_integrated", {"integrated": True}),
    (["--model", "lstm", "--use-tt", "--integrated"], "tt_lstm_integrated", {"integrated": True}),
    (["--model", "lstm", "--decomposition", "bt"], "bt_lstm", {}),
])
def test_labels_say_what_is_factorized_and_the_tables_rebuild_the_model_from_them(argv, label, model_args):
    args = parse(*argv)
    assert model_label(args) == label
    fam = families.of_label(label)
    assert fam is families.rnn
    cell, fmt = label.split("_")[1], label.split("_")[0]
    assert fam.parse_label(label) == {"model": cell, "use_tt": True, "decomposition": fmt, **model_args}


def test_labels_of_no_family_stay_unknown():
    for label in ("tt_lstm_fd_xx", "tt_lstm_integrated_ht", "tt_lstm_fdx", "xx_lstm_fd", "tt_lstm_fd_ht_tt"):
        assert families.rnn.parse_label(label) is None, label


def test_config_records_the_options_and_a_run_recorded_before_them_still_resumes():
    """The new options are in the run's arguments (config.json "args", the resume identity) when given; at their
    defaults they stay out of the identity, so a run recorded before the options existed is still the same run."""
    from experiments.train import family_args
    args = parse("--model", "lstm", "--use-tt", "--recurrent-decomposition", "tt", "--recurrent-rank", "1,2,3,2,1")
    kept = family_args(args, families.family("lstm"))
    assert (kept["recurrent_decomposition"], kept["recurrent_rank"], kept["integrated"]) == ("tt", [1, 2, 3, 2, 1],
                                                                                          False)
    ident = identity(args)
    assert ident["recurrent_decomposition"] == "tt" and ident["recurrent_rank"] == [1, 2, 3, 2, 1]
    assert json.loads(json.dumps(ident)) == ident
    plain = identity(parse("--model", "lstm", "--use-tt"))
    assert not {"recurrent_decomposition", "recurrent_rank", "integrated"} & set(plain)
    assert identity(parse("--model", "lstm", "--use-tt", "--integrated"))["integrated"] is True


def test_parse_rank_names_the_option_it_reads():
    from experiments.families.rnn import parse_rank
    assert parse_rank("4") == 4 and parse_rank("1,4,1", "--recurrent-rank") == [1, 4, 1]
    with pytest.raises(UsageError, match="^--recurrent-rank must be"):
        parse_rank("x", "--recurrent-rank")


# --- the compression table ---------------------------------------------------------------------------------------
def test_compression_table_marks_published_and_measured_whole_model_counts(capsys):
    assert tables.main(["--json"]) == 0
    report = json.loads(capsys.readouterr().out)["compression"]
    measured = {(r["dataset"], r["model"]): r for r in report["measured"]}
    assert {m for _, m in measured} == set(paper.COMPRESSION_MODELS)
    assert {d for d, _ in measured} == set(paper.DATASETS)
    for (dataset, model), row in measured.items():
        assert row["kind"] == "measured"
        if model in ("gru", "lstm"):   # plain: dense kernels, 57,600 or 70,200 inputs per frame
            gates = 3 if model == "gru" else 4
            units = 225 if dataset == "celebfaces" else 256
            assert row["recurrent_kernel"] == units * gates * units
            assert row["times_fewer_than_input_only"] is None
        if model.endswith("_integrated"):
            assert row["recurrent_kernel"] == 0
        if model.endswith("_fd") or model.endswith("_integrated"):   # smaller than the input-only model
            base = measured[(dataset, "tt_" + model.split("_")[1])]
            assert row["whole_model"] < base["whole_model"] / 5
            assert row["times_fewer_than_input_only"] == pytest.approx(base["whole_model"] / row["whole_model"])
    # the input-only rows are the paper tables' whole models
    counts, _ = param_counts.read_cached()
    for dataset in paper.DATASETS:
        for label in ("gru", "lstm", "tt_gru", "tt_lstm"):
            assert measured[(dataset, label)]["whole_model"] == counts[dataset][label][1]
            assert measured[(dataset, label)]["input_kernel"] == counts[dataset][label][0]
    published = {p["model"]: p for p in report["published"]}
    assert published["tt_lstm"]["published_low"] == 268_000 and published["tt_lstm"]["kind"] == "published"
    fdht = published["ht_lstm_integrated"]
    assert (fdht["published_low"], fdht["published_high"]) == (3_132, 8_808) and "2104.05758" in report["fdht_source"]
    assert fdht["ours_whole_model"]["ucf11"] == measured[("ucf11", "ht_lstm_integrated")]["whole_model"]

    assert tables.main([]) == 0
    text = capsys.readouterr().out
    for needle in ("## Whole models", "MEASURED", "PUBLISHED", "3,132–8,808", "268,000", "none found",
                   "we could not read the table itself", "`ht_lstm_integrated`"):
        assert needle in text, needle


def test_cached_compression_counts_equal_fresh_builds():
    """param_counts.json's compression counts (what the tables read) equal the models built now."""
    assert param_counts.read_cached_compression() == param_counts.compression_counts(), \
        "run `python -m experiments.tables --write-counts`"


def test_recurrent_params_of_each_kind_of_layer():
    """The recurrent column: the dense U of a Keras layer, the factors' count of a fully decomposed one (TT cores
    sum r_k n_k m_k r_k+1 on the paper's hidden modes, gates in the first output mode), 0 when integrated."""
    import keras

    from ttrnn.models import PAPER_SHAPES, paper_model
    shapes = PAPER_SHAPES["ucf11"]
    with keras.StatelessScope(initialize_variables=False):
        dense = paper_model("ucf11", "gru", 11, use_tt=False)
        fd = paper_model("ucf11", "lstm", 11, recurrent_decomposition="tt", recurrent_ranks=[1, 2, 3, 2, 1])
        integrated = paper_model("ucf11", "lstm", 11, decomposition="ht", integrated=True)
    assert param_counts.recurrent_params(dense) == 256 * 768
    n, m = shapes["recurrent_input_shape"], list(shapes["recurrent_output_shape"])
    m[0] *= 4
    r = [1, 2, 3, 2, 1]
    assert param_counts.recurrent_params(fd) == sum(r[k] * n[k] * m[k] * r[k + 1] for k in range(len(n)))
    assert param_counts.recurrent_params(integrated) == 0
    keras.backend.clear_session()


# --- end to end ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """3 classes x 2 groups x 2 clips of 3-4 frames at the paper's 160x120 (the UCF11 modes need it)."""
    return make_store(tmp_path_factory.mktemp("fd") / "ucf11.h5", num_classes=3, groups=2, clips_per_group=2,
                      lengths=(3, 4))


TINY_RUNS = {"tt_lstm_fd": ["--use-tt", "--recurrent-decomposition", "tt", "--recurrent-rank", "2"],
             "tt_lstm_integrated": ["--decomposition", "tt", "--integrated"]}


def tiny_command(store, out, argv):
    return ["--data", store, "--model", "lstm", *argv, "--epochs", "1", "--lr", "1e-3", "--max-len", "3",
            "--batch-size", "4", "--protocol", "holdout", "--workers", "0", "--quiet", "--no-tensorboard",
            "--intra-op", "1", "--out", out]


@pytest.fixture(scope="module")
def tiny_runs(store, tmp_path_factory):
    """One epoch of a fully decomposed and of an integrated TT-LSTM, trained side by side: {label: run dir}."""
    root = tmp_path_factory.mktemp("tiny_runs")
    done = run_side_by_side(*[["-m", "experiments.ucf11", *tiny_command(store, root / label, argv)]
                              for label, argv in TINY_RUNS.items()])
    for res in done:
        assert res.returncode == 0, res.stderr[-3000:]
    return {label: root / label for label in TINY_RUNS}


@pytest.mark.parametrize("label", list(TINY_RUNS))
def test_a_tiny_run_trains_resumes_and_loads(store, tiny_runs, label):
    """The run's label, arguments and parameter counts; the same command again returns the finished run; the
    saved model (what experiments.predict loads) loads with its recurrent factors or integrated matrix and gives
    class probabilities."""
    import ttrnn
    from ttrnn.models import PAPER_SHAPES
    from ttrnn.store import FrameStore

    out, argv = tiny_runs[label], TINY_RUNS[label]
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert metrics["model"] == label
    assert config["args"]["integrated"] == ("--integrated" in argv)
    assert config["args"]["recurrent_decomposition"] == ("tt" if "--recurrent-decomposition" in argv else None)
    model = ttrnn.load_model(out / "model.keras")
    layer = model.get_layer("input_to_hidden")
    assert metrics["params_total"] == model.count_params() < 10_000
    if "--integrated" in argv:
        assert layer.integrated and layer.recurrent_param_count == 0
    else:
        modes = PAPER_SHAPES["ucf11"]["recurrent_input_shape"]
        assert layer.recurrent_format == "tt" and layer.recurrent_ranks == [1] + [2] * (len(modes) - 1) + [1]
    again = run_cli("experiments.ucf11", *tiny_command(store, out, argv))
    assert again.returncode == 0 and "already finished" in again.stdout, again.stderr[-2000:]
    with FrameStore(store) as s:
        clip = s.read(0)[:3][None]
    probs = np.asarray(model(clip, training=False))
    assert probs.shape == (1, 3) and np.allclose(probs.sum(), 1, atol=1e-5)


@pytest.mark.parametrize("cell, integrated", [("gru", False), ("lstm", True)])
def test_bench_cases_of_the_decomposed_layers_train_on_the_paper_shapes(cell, integrated):
    """`python -m experiments.bench tt`'s fully decomposed / integrated cases: the UCF11 paper shapes, one train
    step of the trainer's own on 2 frames gives a finite loss and moves the recurrent weights."""
    from experiments.bench import tt as b
    from ttrnn.models import PAPER_SHAPES

    layer = b.decomposed_layer(cell, integrated)
    shapes = PAPER_SHAPES["ucf11"]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(b.BATCH, 2, 57_600), dtype=np.uint8)
    y = rng.integers(0, b.UCF11_CLASSES, size=(b.BATCH,))
    step = b.classifier_step_case(layer, x, y)
    if integrated:
        assert layer.integrated and list(layer.tt_input_shape) == list(shapes["integrated_input_shape"])
    else:
        assert layer.recurrent_format == "tt"
        assert list(layer.recurrent_input_modes) == list(shapes["recurrent_input_shape"])
    before = np.asarray(layer.recurrent_kernel).copy()
    assert np.isfinite(step())
    assert not np.allclose(np.asarray(layer.recurrent_kernel), before)


# --- experiments.tensorize: the recurrent kernel too -----------------------------------------------------------------
def test_tensorize_command_carries_the_recurrent_options():
    from experiments.tensorize import new_command, parse_args
    config = {"command": "python -m experiments.ucf11 --data s.h5 --model lstm --epochs 4 --out dense",
              "args": {"epochs": 4}}
    argv = new_command(config, parse_args(["dense", "--recurrent-decomposition", "ht", "--recurrent-rank", "3",
                                           "--out", "fd"]))
    assert argv == ["--data", "s.h5", "--model", "lstm", "--use-tt", "--decomposition", "tt", "--epochs", "4",
                    "--out", "fd", "--recurrent-decomposition", "ht", "--recurrent-rank", "3"]
    assert "--recurrent-decomposition" not in new_command(config, parse_args(["dense", "--out", "tt"]))


def test_tensorize_recurrent_rank_without_format_is_a_usage_error(tmp_path):
    res = run_cli("experiments.tensorize", tmp_path, "--recurrent-rank", "2", "--out", tmp_path / "new")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "--recurrent-rank applies with --recurrent-decomposition FORMAT" in res.stderr


@pytest.mark.slow
def test_dense_run_tensorized_with_its_recurrent_kernel_then_fine_tuned(store, tmp_path):
    """1 dense LSTM epoch, tensorized with the recurrent kernel in TT at ranks 2, then the printed command: the
    new run is a tt_lstm_fd run that starts from the tensorized weights and trains its epoch."""
    dense, new = tmp_path / "dense", tmp_path / "fd"
    common = ["--data", store, "--model", "lstm", "--batch-size", "4", "--protocol", "holdout", "--max-len", "3",
              "--workers", "0", "--quiet", "--no-tensorboard"]
    res = run_cli("experiments.ucf11", *common, "--epochs", "1", "--out", dense)
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli("experiments.tensorize", dense, "--recurrent-decomposition", "tt", "--recurrent-rank", "2",
                  "--epochs", "1", "--out", new)
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads((new / "tensorized.json").read_text())
    assert record["recurrent_decomposition"] == "tt" and record["recurrent_ranks"] == [1, 2, 2, 2, 1]
    assert 0 < record["recurrent_kernel_relative_error"] < 1
    assert record["params_dense_recurrent_kernel"] == 256 * 1024
    # TT cores r_k n_k m_k r_k+1 over 4x4x4x4 -> (4 gates x 4)x4x4x4
    assert record["params_recurrent_kernel"] == 1 * 4 * 16 * 2 + 2 * 4 * 4 * 2 + 2 * 4 * 4 * 2 + 2 * 4 * 4 * 1
    command = shlex.split(res.stdout.strip().splitlines()[-1])
    assert command[:3] == ["python", "-m", "experiments.ucf11"]
    tuned = run_cli(*command[2:])
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    assert json.loads((new / "metrics.json").read_text())["model"] == "tt_lstm_fd"
