"""The fully decomposed paper models: `paper_model(..., recurrent_decomposition=...)` and `integrated=True` on the
datasets' shapes (`PAPER_SHAPES`), their whole-model parameter counts against the sum of their parts, and the
one-line errors for combinations that cannot be built."""

import math

import numpy as np
import pytest

from ttrnn.formats import make
from ttrnn.models import PAPER_SHAPES, input_to_hidden_params, paper_model


def head_params(units, classes):
    return units * classes + classes


@pytest.mark.parametrize("dataset", sorted(PAPER_SHAPES))
def test_shapes_cover_the_frames_and_the_state(dataset):
    shapes = PAPER_SHAPES[dataset]
    width, height = shapes["frame_size"]
    rows = width * height * 3 + math.prod(shapes["tt_output_shape"])
    assert rows <= math.prod(shapes["integrated_input_shape"]) <= 1.01 * rows
    assert math.prod(shapes["recurrent_input_shape"]) == math.prod(shapes["recurrent_output_shape"]) == 256


def test_fully_decomposed_lstm_counts_its_parts():
    model = paper_model("ucf11", "lstm", 11, recurrent_decomposition="tt")
    layer = model.get_layer("input_to_hidden")
    recurrent = make("tt", (4, 4, 4, 4), (16, 4, 4, 4), 4).param_count()
    assert layer.recurrent_param_count == recurrent
    assert model.count_params() == input_to_hidden_params(model) + recurrent + 4 * 256 + head_params(256, 11)
    assert model.name == "tt_lstm_fd"


@pytest.mark.parametrize("decomposition", ["ht", "tt"])
def test_integrated_gru_is_one_matrix_and_runs(decomposition):
    model = paper_model("ucf11", "gru", 11, decomposition=decomposition, integrated=True, frame_shape=None)
    layer = model.get_layer("input_to_hidden")
    assert layer.integrated and layer.recurrent_param_count == 0
    one = layer.kernel_format.param_count()
    assert model.count_params() == one + 2 * 3 * 256 + head_params(256, 11)
    frames = np.random.default_rng(0).integers(0, 256, (1, 2, 120, 160, 3), dtype=np.uint8)
    assert model(frames).shape == (1, 11)


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="mlp", integrated=True), "the TT-MLP has no recurrent kernel"),
    (dict(model="gru", integrated=True, recurrent_decomposition="tt"), "no recurrent_decomposition"),
    (dict(model="gru", use_tt=False, recurrent_decomposition="tt"), "apply to the tensorized models"),
    (dict(model="gru", recurrent_decomposition="xx"), "unknown recurrent_decomposition"),
    (dict(model="lstm", recurrent_ranks=2), "recurrent_ranks needs recurrent_decomposition"),
])
def test_bad_combinations_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        paper_model("ucf11", num_classes=11, **kwargs)
    assert "\n" not in str(info.value)
