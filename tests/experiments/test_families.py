"""The model families (experiments/families): one interface each, the trainer's parser built from them, labels the
tables read back, and the options of one family refused for another. Parser-level: no TensorFlow, no training."""
import pytest

from experiments import families
from experiments.train import build_parser, family_args, model_label, validate
from experiments.ucf11 import SPEC
from ttrnn.cli import UsageError

INTERFACE = ("MODELS", "OPTIONS", "TABLE", "add_args", "validate", "label", "parse_label", "input_spec", "build",
             "freeze", "test_views", "check_store")


def parse(*argv):
    parser = build_parser(SPEC)
    args = parser.parse_args(["--data", "x.h5", *argv])
    validate(args, SPEC, parser)
    return args


def test_every_family_has_the_whole_interface_and_every_model_one_family():
    for name, fam in families.FAMILIES.items():
        missing = [a for a in INTERFACE if not hasattr(fam, a)]
        assert not missing, (name, missing)
        assert fam.TABLE in ("paper", "baselines")
    models = [m for fam in families.FAMILIES.values() for m in fam.MODELS]
    assert len(models) == len(set(models)) == len(families.MODEL_CHOICES)


def test_the_cli_format_list_is_ttrnn_formats(capsys):
    from ttrnn import formats
    assert formats.FORMAT_NAMES == tuple(formats.FORMATS)
    assert all(cls.NAME == name for name, cls in formats.FORMATS.items())
    with pytest.raises(SystemExit):
        build_parser(SPEC).parse_args(["--help"])
    assert f"--decomposition {{{','.join(formats.FORMAT_NAMES)}}}" in capsys.readouterr().out
    for name in formats.FORMAT_NAMES:
        assert model_label(parse("--decomposition", name)) == f"{name}_gru"


@pytest.mark.parametrize("argv, label", [
    ([], "gru"), (["--model", "lstm", "--use-tt"], "tt_lstm"), (["--decomposition", "tr"], "tr_gru"),
    (["--model", "lstm", "--decomposition", "bt", "--blocks", "3"], "bt_lstm"), (["--model", "mlp"], "tt_mlp"),
    (["--model", "tsn", "--backbone", "mobilenet_v2"], "tsn_mobilenet_v2"), (["--model", "c3d"], "c3d"),
    (["--model", "r3d", "--width", "0.25"], "r3d18_w0.25"), (["--model", "i3d_nl", "--nonlocal-blocks", "0"],
                                                              "i3d_nl0"),
])
def test_labels_and_the_family_the_tables_find_for_them(argv, label):
    args = parse(*argv)
    assert model_label(args) == label
    assert families.of_label(label) is families.family(args.model)


@pytest.mark.parametrize("argv, message", [
    (["--segments", "7"], "--segments applies to tsn, not gru"),
    (["--model", "tsn", "--decomposition", "tr"], "--decomposition applies to gru, lstm, not tsn"),
    (["--model", "mlp", "--use-tt"], "--use-tt applies to gru, lstm, not mlp"),
    (["--depth", "18"], "--depth applies to r3d, r2plus1d, ..., not gru"),
    (["--model", "c3d", "--weights", "imagenet"], "--weights applies to tsn, r3d, ..., not c3d"),
    (["--model", "tsn", "--clip-len", "8"], "--clip-len applies to c3d, r3d, ..., not tsn"),
    (["--model", "r3d", "--depth", "11"], "--depth 11 is not offered for r3d"),
    (["--model", "gpt"], "unknown model 'gpt'"),
])
def test_an_option_of_another_family_is_a_usage_error(argv, message):
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        parse(*argv)


def test_config_args_hold_only_the_runs_family_options():
    args = parse("--decomposition", "tr")
    kept = family_args(args, families.family(args.model))
    assert {"decomposition", "rank", "dropout", "epochs", "data"} <= set(kept)
    assert not {"backbone", "nonlocal_blocks", "crop", "segments", "weights"} & set(kept)
    r3d = parse("--model", "r3d")
    kept = family_args(r3d, families.family("r3d"))
    assert {"crop", "nonlocal_blocks", "weights"} <= set(kept) and "decomposition" not in kept


def test_help_is_grouped_per_family_with_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser(SPEC).parse_args(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for group in ("data and run:", "training:", "TT-RNN, GRU, LSTM (--model gru|lstm):", "TSN (--model tsn):",
                  "3D CNNs (--model r3d|", "3D clips (--model c3d and the 3D CNNs):"):
        assert group in text
    assert "training epochs (default 100" in text and "(default 0)" in text  # --epochs, --fold
    # what --demo sets
    assert "sets --model gru --use-tt --epochs 30 --lr 0.001 --scaling unit (options given win)" in text
