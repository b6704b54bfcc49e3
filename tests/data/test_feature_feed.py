"""The data feed over a feature store: batches (B, T, F) in the store's dtype, pre-padded with zeros like frames,
the same bucketing and reads in and out of reader processes, and the tf.data signature."""
import numpy as np
import pytest

from tests.store.test_feature_store import WIDTH, write
from ttrnn.data import BatchFeed, InputSpec, ReaderPool
from ttrnn.store import FrameStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("feat") / "f.h5"
    write(path, clips=7)
    return path


def test_batches_are_the_stored_features_prepadded(store):
    with FrameStore(store) as s:
        feed = BatchFeed(s, np.arange(len(s)), InputSpec("sequence", max_len=5, pad_multiple=4), 3, training=True,
                         seed=1)
        assert feed.frame_shape() == (WIDTH,) and feed.dtype == np.float16
        seen = []
        for positions, _ in feed.epoch_plan(0):
            seen.extend(positions.tolist())
        batches = [(x.copy(), y.copy()) for x, y in feed.batches(0)]
        with ReaderPool(store, workers=1) as pool:     # reader processes give the same batches
            remote = [(x.copy(), y.copy()) for x, y in
                      BatchFeed(s, np.arange(len(s)), feed.spec, 3, training=True, seed=1, reader=pool).batches(0)]
        for (x, y), (xr, yr), (positions, _) in zip(batches, remote, feed.epoch_plan(0)):
            assert x.dtype == np.float16 and x.shape[2:] == (WIDTH,) and np.array_equal(x, xr)
            assert np.array_equal(y, s.label_matrix()[positions])
            for b, p in enumerate(positions):
                clip = s.read(p, max_len=5)
                assert np.array_equal(x[b, x.shape[1] - len(clip):], clip) and not x[b, :x.shape[1] - len(clip)].any()
        assert sorted(seen) == list(range(len(s)))


def test_tf_dataset_and_c3d(store):
    pytest.importorskip("tensorflow")
    from ttrnn.data import feed_dataset, map_batches
    with FrameStore(store) as s:
        feed = BatchFeed(s, np.arange(len(s)), InputSpec("sequence", max_len=8), 4, training=False)
        ds = feed_dataset(feed, lambda: 0)
        assert ds.element_spec[0].dtype.name == "float16" and ds.element_spec[0].shape[2:] == (WIDTH,)
        shapes = list(map_batches(ds, lambda b: (b[0].dtype.name, tuple(b[0].shape))))
        assert [d for d, _ in shapes] == ["float16", "float16"]
        with pytest.raises(ValueError, match="is a feature store"):
            BatchFeed(s, [0], InputSpec("c3d", num_frames=2, crop=2), 1, training=False)
