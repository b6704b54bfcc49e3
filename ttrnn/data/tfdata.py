"""The tf.data adapter: a feed's batches as a `tf.data.Dataset` (`feed_dataset`), and the loop that consumes one
batch at a time (`map_batches`). TensorFlow is imported inside the functions, so `import ttrnn.data` stays light.
"""


def feed_dataset(feed, epoch_counter):
    """`feed.batches(epoch_counter())` as a `tf.data.Dataset` of (uint8 (B, T, H, W, 3), float32 (B, C)), B and T
    unknown, prefetching one batch; `epoch_counter` is called at the start of every pass (the epoch seeds it).

    The generator's batches are 64-byte aligned (`BatchBuffers`), so tf.data wraps them without a copy."""
    import tensorflow as tf

    signature = (tf.TensorSpec((None, None) + feed.frame_shape(), tf.uint8),
                 tf.TensorSpec((None, feed.targets.shape[1]), tf.float32))
    ds = tf.data.Dataset.from_generator(lambda: feed.batches(epoch_counter()), output_signature=signature)
    options = tf.data.Options()
    # Nothing here is tunable (prefetch(1) is fixed), and with autotuning on each epoch's iterator teardown waits
    # for the tuning thread's next wake-up, whose period doubles from 10 ms: epochs then end on the tuner's
    # schedule, not their work's (docs/performance.md).
    options.autotune.enabled = False
    return ds.prefetch(1).with_options(options)


def map_batches(dataset, fn):
    """Yield `fn(batch)` for each element of `dataset` (a feed's tf.data pipeline), each batch let go before the
    next is fetched.

    Why: the fetch starts the reader on the batch after it, and a batch still referenced then (a `for` loop's
    variable) keeps its buffer lent (`BatchBuffers`), so the reader makes a third batch-sized buffer."""
    batches = iter(dataset)
    while (batch := next(batches, None)) is not None:
        result = fn(batch)
        del batch
        yield result
