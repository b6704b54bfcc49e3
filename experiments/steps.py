"""The train and predict steps of the trainer (and the bench, which times the trainer's own step), written once.

Why a custom step: Keras 3 ``model.fit`` under MultiWorkerMirroredStrategy is reported broken
(keras-team/keras#20585); ``strategy.run`` over ``strategy.distribute_datasets_from_function`` works, with one
process, several GPUs or several workers alike. The strategy comes from ``tf_config.cluster.make_strategy``.
TensorFlow is imported inside the functions.
"""


def _build_optimizer(strategy, optimizer, model):
    """Create the optimizer's slot variables under the strategy scope (not inside the traced step)."""
    if not getattr(optimizer, "built", False):
        with strategy.scope():
            optimizer.build(model.trainable_variables)


def make_train_step(strategy, model, optimizer, loss_fn, global_batch=None, totals=False):
    """A ``tf.function`` ``step(batch) -> loss`` (``totals=True``: a dict of sums) that trains one step on every
    replica via ``strategy.run``.

    ``batch``: one element of ``strategy.distribute_datasets_from_function(...)`` (or a plain batch under the
    default strategy): ``(x, y)`` or ``(x, y, sample_weight)``. ``loss_fn(y_true, y_pred)`` must return
    per-example losses ``(B,)`` (e.g. ``keras.losses.CategoricalCrossentropy(reduction=None)``). Each replica's
    loss is ``sum(per-example loss) / global_batch + sum(model.losses) / num_replicas``, so gradients summed over
    replicas (what the optimizer's all-reduce does) equal those of one process on the whole global batch.
    ``global_batch=None`` uses the replica's own batch size x replicas instead, so a short last batch weighs a
    full step (the trainer's rule; exact when every replica gets the same number of examples).

    Returns the step's global loss (SUM over replicas), identical on every worker; with ``totals=True`` a dict of
    such sums: ``loss``, ``loss_sum`` (per-example losses), ``hits`` (examples whose top-1 class is a true label:
    accuracy for one-hot ``y``, "top-1 is a positive" for multi-hot) and ``count`` (examples), what the
    trainer's progress bar and history need.
    The model and optimizer must have been created under ``strategy.scope()``.
    """
    import tensorflow as tf

    _build_optimizer(strategy, optimizer, model)
    num_replicas = strategy.num_replicas_in_sync

    def replica_step(batch):
        x, y = batch[0], batch[1]
        weight = batch[2] if len(batch) > 2 else None
        count = tf.cast(tf.shape(y)[0], tf.float32)
        denominator = count * num_replicas if global_batch is None else tf.cast(global_batch, tf.float32)
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            per_example = tf.convert_to_tensor(loss_fn(y, pred))
            if per_example.shape.rank == 0:
                raise ValueError("loss_fn must return per-example losses (use reduction=None)")
            per_example = tf.cast(per_example, tf.float32)
            if weight is not None:
                per_example *= tf.cast(tf.reshape(weight, tf.shape(per_example)), tf.float32)
            loss = tf.reduce_sum(per_example) / denominator
            if model.losses:
                loss += tf.add_n([tf.cast(extra, tf.float32) for extra in model.losses]) / num_replicas
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        hits = tf.reduce_sum(tf.cast(tf.gather(y, tf.argmax(pred, 1), batch_dims=1), tf.float32))
        return {"loss": loss, "loss_sum": tf.reduce_sum(per_example), "hits": hits, "count": count}

    @tf.function(reduce_retracing=True)     # one trace for every padded length, not one each (and no warning)
    def train_step(batch):
        per_replica = strategy.run(replica_step, args=(tuple(batch),))
        summed = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
        return summed if totals else summed["loss"]

    return train_step


def make_predict_step(strategy, model):
    """A ``tf.function`` ``step(batch) -> (pred, *extras)`` gathering predictions of all replicas of all workers.

    ``batch``: ``(x, *extras)`` from a distributed dataset (extras e.g. clip indices or labels, gathered alongside
    so rows can be matched). Outputs are concatenated along axis 0 in replica order; batches of different sizes
    are fine. Every worker receives the same global arrays (use the ``valid`` mask of
    ``tf_config.cluster.shard_indices`` to drop padding repeats).
    """
    import tensorflow as tf

    def replica_step(batch):
        return (model(batch[0], training=False),) + tuple(batch[1:])

    carried = (tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)

    def gather(value):
        # collectives carry only these dtypes: send bool masks / small ints as int32 and cast back
        dtype = value.dtype
        if dtype in carried:
            return strategy.gather(value, axis=0)
        as_int = strategy.run(lambda t: tf.cast(t, tf.int32), args=(value,))
        return tf.cast(strategy.gather(as_int, axis=0), dtype)

    @tf.function(reduce_retracing=True)
    def predict_step(batch):
        per_replica = strategy.run(replica_step, args=(tuple(batch),))
        return tuple(gather(v) for v in per_replica)

    return predict_step


def make_local_predict(model):
    """A tf.function x -> class probabilities (inference mode, this process only: the trainer's evaluation reads
    every evaluated clip on each worker); one trace for every padded length."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def predict(x):
        return model(x, training=False)
    return predict
