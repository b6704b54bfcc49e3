"""Our parameter counts beside the paper's: the paper models at the paper's frame sizes, the successors' formats
on UCF11, and the whole-model counts of the compression table (input-only vs fully decomposed vs integrated),
computed from the models and kept in param_counts.json.

The tables read the JSON file, so without run directories they need no TensorFlow; `tests/experiments/
test_tables.py` rebuilds both counts from the models and compares, so the file cannot drift from them. After a
model change regenerate it with `python -m experiments.tables --write-counts`.
"""
import json
import math
import os
from pathlib import Path

from experiments import families, paper

COUNTS_FILE = Path(__file__).with_name("param_counts.json")


def model_args(label):
    """Run-directory model label -> paper_model's arguments (model, use_tt[, decomposition]), from its family."""
    return families.of_label(label).parse_label(label)


def paper_model_counts(datasets=tuple(paper.DATASETS)):
    """{dataset: {label: (input-to-hidden params, total params)}} of our paper models at the paper's frame sizes.

    Built in `keras.StatelessScope(initialize_variables=False)`: variables get shapes but no values, so the
    44M-72M-weight plain GRU / LSTM cost no memory or time.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from ttrnn.models import input_to_hidden_params, paper_model
    counts = {}
    for name in datasets:
        ds = paper.DATASETS[name]
        counts[name] = {}
        for label in paper.MODELS:
            with keras.StatelessScope(initialize_variables=False):
                m = paper_model(name, num_classes=ds.num_classes, multilabel=ds.metric == "map", **model_args(label))
            counts[name][label] = (input_to_hidden_params(m), int(m.count_params()))
            del m
    keras.backend.clear_session()  # forget the never-initialized variables
    return counts


def recurrent_params(model):
    """Weights of the hidden-to-hidden map of a paper model: the tensorized layer's `recurrent_param_count` (its
    recurrent factors, the dense kernel, or 0 for an integrated layer, whose one matrix, counted as the input
    kernel, holds them), else the Keras layer's dense recurrent kernel."""
    layer = model.get_layer("input_to_hidden")
    if hasattr(layer, "recurrent_param_count"):
        return int(layer.recurrent_param_count)
    return int(math.prod(layer.cell.recurrent_kernel.shape))


def compression_counts(datasets=tuple(paper.DATASETS), labels=paper.COMPRESSION_MODELS):
    """{dataset: {label: (input kernel params, recurrent kernel params, whole model params)}} of the compression
    table's models (`paper.COMPRESSION_MODELS`) at the paper's frame sizes, from `model.count_params()`; built as
    `paper_model_counts` builds (variables without values)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from ttrnn.models import input_to_hidden_params, paper_model
    counts = {}
    for name in datasets:
        ds = paper.DATASETS[name]
        counts[name] = {}
        for label in labels:
            with keras.StatelessScope(initialize_variables=False):
                m = paper_model(name, num_classes=ds.num_classes, multilabel=ds.metric == "map", **model_args(label))
            counts[name][label] = (input_to_hidden_params(m), recurrent_params(m), int(m.count_params()))
            del m
    keras.backend.clear_session()
    return counts


def successor_counts():
    """{label: input-to-hidden params} of `paper.SUCCESSORS` at the UCF11 LSTM shapes (ttrnn.models.shapes
    PAPER_SHAPES, the 4 gates folded into the first output mode): TT at the paper's ranks 4, the others at
    `ttrnn.formats.DEFAULT_RANKS` (bt 2 blocks), which is what `--decomposition X` trains."""
    from ttrnn import formats
    from ttrnn.models.shapes import PAPER_SHAPES
    n, m = PAPER_SHAPES["ucf11"]["tt_input_shape"], PAPER_SHAPES["ucf11"]["tt_output_shape"]
    return {label: formats.make(label.split("_")[0], n, (4 * m[0],) + tuple(m[1:])).param_count()
            for label, *_ in paper.SUCCESSORS}


def feature_counts(width=2048):
    """{label: input-to-hidden params} of `paper.FEATURE_SUCCESSORS`' labels over `width` CNN features at our
    defaults (`ttrnn.models.feature_classifier`: input modes `feature_input_modes(width)`, hidden 4x4x4x4 with the
    gates in the first output mode, the format's default ranks; a plain cell's dense (F, gates * 256) kernel)."""
    from ttrnn import formats
    from ttrnn.models.shapes import FEATURE_OUTPUT_SHAPE, feature_input_modes
    counts = {}
    for _, label, *_ in paper.FEATURE_SUCCESSORS:
        fmt, _, cell = label.rpartition("_")
        gates = 4 if cell == "lstm" else 3
        out = (gates * FEATURE_OUTPUT_SHAPE[0],) + tuple(FEATURE_OUTPUT_SHAPE[1:])
        counts[label] = formats.make(fmt, feature_input_modes(width), out).param_count() if fmt else \
            width * gates * math.prod(FEATURE_OUTPUT_SHAPE)
    return counts


def read_cached_features():
    """feature_counts() as stored in param_counts.json."""
    return dict(json.loads(COUNTS_FILE.read_text())["features"])


def read_cached():
    """(paper_model_counts(), successor_counts()) as stored in param_counts.json."""
    data = json.loads(COUNTS_FILE.read_text())
    return ({d: {label: tuple(v) for label, v in m.items()} for d, m in data["paper"].items()},
            dict(data["successors"]))


def read_cached_compression():
    """compression_counts() as stored in param_counts.json."""
    data = json.loads(COUNTS_FILE.read_text())
    return {d: {label: tuple(v) for label, v in m.items()} for d, m in data["compression"].items()}


def write_cached():
    """Rebuild param_counts.json from the models (needs TensorFlow)."""
    counts, successors, compression = paper_model_counts(), successor_counts(), compression_counts()
    data = {"paper": {d: {label: list(v) for label, v in m.items()} for d, m in counts.items()},
            "successors": successors, "features": feature_counts(),
            "compression": {d: {label: list(v) for label, v in m.items()} for d, m in compression.items()}}
    COUNTS_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
