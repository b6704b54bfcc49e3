"""The data feed: a frame store's clips as training and evaluation batches.

- `splits`: train/test splits and protocols (the paper's random folds, leave-one-group-out, the store's lists);
- `sampling`: which frames of a clip a model sees (TSN segments, C3D windows and crops, TT-MLP frames);
- `plans`: `InputSpec`, per-clip `ClipPlan`s, length bucketing (`plan_batches`) and `padded_length`;
- `readers`: `ReaderPool`, the reader processes;
- `buffers`: `BatchBuffers`, batch arrays reused across batches;
- `cache_hints`: page-cache read-ahead and drop hints;
- `feed`: `BatchFeed` and `MultiViewFeed`, the batches;
- `tfdata`: the tf.data adapter and `map_batches`.

Data flow: `FrameStore` rows -> `ClipPlan`s (chosen in the parent with a seeded RNG) -> `ReaderPool` -> batches
assembled in reused buffers, pre-padded -> `tf.data`. Nothing here holds the dataset, and `import ttrnn.data`
does not import TensorFlow.
"""
from ttrnn.data import sampling, splits
from ttrnn.data.buffers import BatchBuffers, aligned_empty
from ttrnn.data.cache_hints import CacheHints
from ttrnn.data.feed import BatchFeed, MultiViewFeed
from ttrnn.data.plans import MODES, ClipPlan, InputSpec, padded_length, plan_batches, plan_clip
from ttrnn.data.readers import ReaderError, ReaderPool, default_workers, read_plan
from ttrnn.data.splits import PROTOCOLS
from ttrnn.data.tfdata import feed_dataset, map_batches

__all__ = [
    "MODES", "PROTOCOLS", "BatchBuffers", "BatchFeed", "CacheHints", "ClipPlan", "InputSpec", "MultiViewFeed",
    "ReaderError", "ReaderPool", "aligned_empty", "default_workers", "feed_dataset", "map_batches", "padded_length",
    "plan_batches", "plan_clip", "read_plan", "sampling", "splits",
]
