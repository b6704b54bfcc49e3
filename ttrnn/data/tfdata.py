"""The tf.data adapter: a feed's batches as a `tf.data.Dataset` (`feed_dataset`), and the loop that consumes one
batch at a time (`map_batches`). TensorFlow is imported inside the functions, so `import ttrnn.data` stays light.

An error inside a feed's generator (a damaged clip: `ttrnn.store.CorruptClipError`) would cross TensorFlow's
PyFunc: TensorFlow logs it from C++ with the Python traceback, twice (op_kernel.cc, local_rendezvous.cc), and
raises it again as an InvalidArgumentError whose text holds that traceback. Under `map_batches` the generator
keeps the error instead and ends its pass; `map_batches` raises the very exception once the pass has ended, so
the caller sees the reader's own error (one line for a damaged clip) and TensorFlow prints nothing. A dataset
iterated without `map_batches` still fails the TensorFlow way, never silently short.
"""

_consuming = [0]   # map_batches loops running in this process: while > 0, feed generators keep their errors
_failures = []     # errors kept by feed generators, raised by the map_batches loop consuming them


def feed_dataset(feed, epoch_counter):
    """`feed.batches(epoch_counter())` as a `tf.data.Dataset` of (uint8 (B, T, H, W, 3), float32 (B, C)), B and T
    unknown, prefetching one batch; `epoch_counter` is called at the start of every pass (the epoch seeds it). A
    feature store's feed gives (B, T, F) in its dtype (`feed.dtype`, float16 by default) instead of frames.

    The generator's batches are 64-byte aligned (`BatchBuffers`), so tf.data wraps them without a copy."""
    import tensorflow as tf

    def batches():
        try:
            yield from feed.batches(epoch_counter())
        except Exception as exc:   # noqa: BLE001 (any error: raised by map_batches, else the TensorFlow way)
            if not _consuming[0]:
                raise
            _failures.append(exc)

    signature = (tf.TensorSpec((None, None) + feed.frame_shape(), tf.as_dtype(feed.dtype)),
                 tf.TensorSpec((None, feed.targets.shape[1]), tf.float32))
    ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    options = tf.data.Options()
    # Nothing here is tunable (prefetch(1) is fixed), and with autotuning on each epoch's iterator teardown waits
    # for the tuning thread's next wake-up, whose period doubles from 10 ms: epochs then end on the tuner's
    # schedule, not their work's (docs/performance.md).
    options.autotune.enabled = False
    return ds.prefetch(1).with_options(options)


def map_batches(dataset, fn):
    """Yield `fn(batch)` for each element of `dataset` (a feed's tf.data pipeline), each batch let go before the
    next is fetched. An error of the feed's generator (a damaged clip) is raised here, as itself, once the batches
    before it were yielded (module docstring).

    Why one batch at a time: the fetch starts the reader on the batch after it, and a batch still referenced then
    (a `for` loop's variable) keeps its buffer lent (`BatchBuffers`), so the reader makes a third batch-sized
    buffer."""
    _failures.clear()   # left by a pass that was abandoned
    _consuming[0] += 1
    try:
        batches = iter(dataset)
        while (batch := next(batches, None)) is not None:
            result = fn(batch)
            del batch
            yield result
        if _failures:
            exc = _failures[0]
            _failures.clear()
            raise exc
    finally:
        _consuming[0] -= 1
