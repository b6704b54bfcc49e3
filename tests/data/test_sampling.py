"""Frame-index samplers (ttrnn.data.sampling): ranges, ordering, one frame per segment, determinism, seeding."""

import subprocess
import sys

import numpy as np
import pytest

from ttrnn.data.sampling import c3d_window, crop_box, mlp_indices, tsn_indices

LENGTHS = [1, 2, 3, 5, 7, 16, 17, 100, 1492]


@pytest.mark.parametrize("segments", [1, 3, 7])
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("training", [False, True])
def test_tsn_indices_one_per_equal_segment(length, segments, training):
    idx = tsn_indices(length, segments, training=training, rng=0)
    assert idx.shape == (segments,) and idx.dtype.kind == "i"
    assert np.all(idx >= 0) and np.all(idx < length)
    assert np.all(np.diff(idx) >= 0)
    if length >= segments:
        assert np.all(np.diff(idx) > 0)  # distinct frames when there are enough
        for k, i in enumerate(idx):  # frame i overlaps the k-th equal slice [k L/S, (k+1) L/S)
            assert i + 1 > k * length / segments and i < (k + 1) * length / segments


def test_tsn_eval_takes_segment_centres_and_is_deterministic():
    idx = tsn_indices(90, 3, training=False)
    np.testing.assert_array_equal(idx, [15, 45, 75])
    np.testing.assert_array_equal(tsn_indices(90, 3, rng=1), tsn_indices(90, 3, rng=2))
    np.testing.assert_array_equal(tsn_indices(2, 4), [0, 0, 1, 1])  # short clip: frames repeat evenly


def test_tsn_training_random_but_seeded_and_covers_segments():
    np.testing.assert_array_equal(tsn_indices(300, 3, True, np.random.default_rng(5)),
                                  tsn_indices(300, 3, True, np.random.default_rng(5)))
    gen = np.random.default_rng(0)
    draws = np.stack([tsn_indices(30, 3, training=True, rng=gen) for _ in range(2000)])
    for k in range(3):  # every frame of every segment is reachable, nothing else
        assert set(draws[:, k]) == set(range(10 * k, 10 * k + 10))


@pytest.mark.parametrize("length", LENGTHS)
def test_c3d_window_is_consecutive_and_in_range(length):
    for training in (False, True):
        idx = c3d_window(length, 16, training=training, rng=3)
        assert idx.shape == (16,)
        assert np.all((idx >= 0) & (idx < length))
        if length >= 16:
            np.testing.assert_array_equal(np.diff(idx), np.ones(15))


def test_c3d_window_centre_random_and_padding():
    np.testing.assert_array_equal(c3d_window(40, 16), np.arange(12, 28))
    gen = np.random.default_rng(0)
    starts = {int(c3d_window(20, 16, training=True, rng=gen)[0]) for _ in range(300)}
    assert starts == set(range(5))
    np.testing.assert_array_equal(c3d_window(5, 8), [0, 1, 2, 3, 4, 0, 1, 2])
    np.testing.assert_array_equal(c3d_window(5, 8, pad="edge"), [0, 1, 2, 3, 4, 4, 4, 4])
    with pytest.raises(ValueError):
        c3d_window(5, 8, pad="zeros")


def test_crop_box_centre_random_and_small_frames():
    assert crop_box(120, 160, 112) == (4, 24, 112, 112)
    gen = np.random.default_rng(0)
    boxes = [crop_box(120, 160, 112, training=True, rng=gen) for _ in range(500)]
    tops = {b[0] for b in boxes}
    lefts = {b[1] for b in boxes}
    assert tops == set(range(9)) and lefts == set(range(49))
    assert crop_box(120, 160, 112, True, 7) == crop_box(120, 160, 112, True, 7)
    top, left, h, w = crop_box(60, 80, 112)  # smaller than the crop: largest square, to be resized
    assert (h, w) == (60, 60) and top == 0 and left == 10


@pytest.mark.parametrize("length", LENGTHS)
def test_mlp_indices_ascending(length):
    for training in (False, True):
        idx = mlp_indices(length, 6, training=training, rng=4)
        assert idx.shape == (6,)
        assert np.all((idx >= 0) & (idx < length)) and np.all(np.diff(idx) >= 0)
        if length >= 6:
            assert len(set(idx.tolist())) == 6


def test_mlp_eval_evenly_spaced_training_seeded_and_uniform():
    np.testing.assert_array_equal(mlp_indices(60), [5, 15, 25, 35, 45, 55])
    np.testing.assert_array_equal(mlp_indices(60, rng=1), mlp_indices(60, rng=9))
    np.testing.assert_array_equal(mlp_indices(60, training=True, rng=3), mlp_indices(60, training=True, rng=3))
    gen = np.random.default_rng(0)
    counts = np.bincount(np.concatenate([mlp_indices(12, 6, True, gen) for _ in range(3000)]), minlength=12)
    assert counts.min() > 0.8 * counts.mean()  # every frame equally likely (expected 1500 each)


@pytest.mark.parametrize("call", [lambda: tsn_indices(0, 3), lambda: tsn_indices(10, 0),
                                  lambda: c3d_window(-1), lambda: mlp_indices(10, 2.5),
                                  lambda: crop_box(0, 10)])
def test_invalid_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_sampling_does_not_import_tensorflow():
    code = "import sys, ttrnn.data.sampling; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
