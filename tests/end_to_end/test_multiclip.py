"""Multi-clip, multi-crop testing (ttrnn.data.sampling.even_windows / view_crop_boxes, ttrnn.data.MultiViewFeed)."""
import numpy as np
import pytest
from helpers import make_store

from ttrnn.data import InputSpec, MultiViewFeed
from ttrnn.data.sampling import even_windows, view_crop_boxes
from ttrnn.store import FrameStore


def test_even_windows_span_the_clip_from_start_to_end():
    w = even_windows(100, 16, 10)
    assert w.shape == (10, 16)
    starts = w[:, 0]
    assert starts[0] == 0 and starts[-1] == 84 and np.all(np.diff(starts) > 0)
    np.testing.assert_array_equal(w - starts[:, None], np.tile(np.arange(16), (10, 1)))
    assert np.abs(starts - 84 * np.arange(10) / 9).max() <= 0.5  # evenly spaced up to rounding
    np.testing.assert_array_equal(even_windows(5, 8, 3), np.tile([0, 1, 2, 3, 4, 0, 1, 2], (3, 1)))  # loop padding


def test_three_crops_are_left_centre_right_on_landscape_and_top_centre_bottom_on_portrait():
    assert view_crop_boxes(120, 160, 112, 1) == [(4, 24, 112, 112)]
    assert view_crop_boxes(120, 160, 112, 3) == [(4, 0, 112, 112), (4, 24, 112, 112), (4, 48, 112, 112)]
    assert view_crop_boxes(50, 40, 32, 3) == [(0, 4, 32, 32), (9, 4, 32, 32), (18, 4, 32, 32)]
    with pytest.raises(ValueError, match="1 or 3"):
        view_crop_boxes(120, 160, 112, 2)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("multiclip") / "s.h5", num_classes=3, groups=1, clips_per_group=2,
                      lengths=(9, 20), size=(40, 30))


def test_multi_view_feed_reads_every_window_and_crop_of_every_clip(store):
    fs = FrameStore(store)
    rows = np.arange(len(fs))
    feed = MultiViewFeed(fs, rows, InputSpec("c3d", num_frames=4, crop=24), batch_size=5, clips=3, crops=3)
    assert len(feed.rows) == 9 * len(rows) and len(feed) == -(-9 * len(rows) // 5)
    xs, ys = zip(*feed.batches())
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (9 * len(rows), 4, 24, 24, 3)
    labels = fs.label_matrix()
    for v, row in enumerate(rows):
        clip = fs.read(int(row))
        windows = even_windows(len(clip), 4, 3)
        for k in range(9):
            top, left, h, w = view_crop_boxes(30, 40, 24, 3)[k % 3]
            np.testing.assert_array_equal(x[9 * v + k], clip[windows[k // 3], top:top + h, left:left + w])
            np.testing.assert_array_equal(y[9 * v + k], labels[row])
    scores = np.random.default_rng(0).random((len(x), 3))
    np.testing.assert_allclose(feed.video_scores(scores), scores.reshape(len(rows), 9, 3).mean(axis=1))


def test_multi_view_feed_needs_3d_clips(store):
    with pytest.raises(ValueError, match="c3d mode"):
        MultiViewFeed(FrameStore(store), [0], InputSpec("tsn", num_frames=3), 2, clips=2)
