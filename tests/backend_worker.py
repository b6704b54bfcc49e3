"""One process per Keras backend for tests/layers/test_backends.py:
`KERAS_BACKEND=<b> python tests/backend_worker.py OUT OTHER_BACKEND...`.

Builds the layers on tiny shapes with the same NumPy weights on every backend and writes to OUT/<backend>.npz:
each layer's outputs and the gradients of `sum(sin(outputs))` w.r.t. its weights on masked uint8 clips (input
scaling, `return_sequences`, `go_backwards`), the Keras GRU / LSTM / SimpleRNN's outputs on the same frames given
`full_kernel()`, `recurrent_kernel`, `bias`, and the losses of `model.fit` of a small model, for every format x
SimpleRNN / GRU / LSTM / Dense. It saves that model as OUT/<backend>.keras (its outputs in <backend>.npz), then
loads the files of the other backends named, waiting for them (the workers run side by side): their outputs here
are `loaded_<backend>`.
It also runs the models built from Keras layers alone (the paper's TT-GRU, narrow R3D-18, R(2+1)D-18,
DenseNet-121 and C3D) on one uint8 clip with the same NumPy weights: `net_<name>`.
"""

import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
from keras import ops

import ttrnn
from ttrnn.cli import exit_now
from ttrnn.formats import FORMAT_NAMES
from ttrnn.layers import layer_class
from ttrnn.layers.cells import CELLS

BACKEND = keras.backend.backend()
N, M, T, B = (4, 3), (2, 3), 5, 3            # frames of 12 values, 6 units
RANKS = {fmt: [1, 2, 1] if fmt == "tt" else 2 for fmt in FORMAT_NAMES}
SCALE, SHIFT = 1 / 255, -0.5
CELL_NAMES = tuple(cell.NAME for cell in CELLS)


def frames():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, (B, T, 12), dtype=np.uint8)
    x[0, 3:] = 0                                # padded tail
    x[1, 1:3] = 0                               # masked steps in the middle
    return x, np.any(x != 0, axis=-1)


def make(fmt, kind, **kwargs):
    cls = layer_class(fmt, kind)
    args = (N, M, RANKS[fmt]) if kind != "Dense" else ((4, 3), (3, 2), RANKS[fmt])
    return cls(*args, **kwargs)


def set_numpy_weights(layer, seed):
    """The same weights on every backend: normal, scaled so the gates are not saturated."""
    rng = np.random.default_rng(seed)
    layer.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()])


def value_and_grads(layer, x, **kwargs):
    """`layer(x, **kwargs)` and the gradients of `sum(sin(out))` w.r.t. its trainable variables, per backend."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            out = layer(x, **kwargs)
            loss = tf.reduce_sum(tf.sin(out))
        return out, tape.gradient(loss, layer.trainable_variables)
    if BACKEND == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        fixed = [v.value for v in layer.non_trainable_variables]

        def loss(values):
            out, _ = layer.stateless_call(values, fixed, x, **kwargs)
            return ops.sum(ops.sin(out)), out

        (_, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(trainable)   # one compile, not per op
        return out, grads
    out = layer(x, **kwargs)                    # torch
    ops.sum(ops.sin(out)).backward()
    return out, [v.value.grad for v in layer.trainable_variables]


def keras_reference(layer, cell):
    common = dict(return_sequences=layer.return_sequences, go_backwards=layer.go_backwards)
    ref = {"GRU": lambda: keras.layers.GRU(layer.units, reset_after=layer.reset_after, **common),
           "LSTM": lambda: keras.layers.LSTM(layer.units, **common),
           "SimpleRNN": lambda: keras.layers.SimpleRNN(layer.units, **common)}[cell]()
    ref.build((None, T, 12))
    ref.set_weights([ops.convert_to_numpy(layer.full_kernel()), ops.convert_to_numpy(layer.recurrent_kernel),
                     ops.convert_to_numpy(layer.bias)])
    return ref


def layer_results(out):
    x, mask = frames()
    xf = (x * SCALE + SHIFT).astype("float32")
    for i, fmt in enumerate(RANKS):
        for j, cell in enumerate(CELL_NAMES):
            layer = make(fmt, cell, return_sequences=True, go_backwards=True, input_scale=SCALE, input_shift=SHIFT)
            layer.build((None, T, 12))
            set_numpy_weights(layer, 10 * i + j)
            y, grads = value_and_grads(layer, x, mask=mask)
            out[f"{fmt}_{cell}_out"] = ops.convert_to_numpy(y)
            for k, g in enumerate(grads):
                out[f"{fmt}_{cell}_grad{k}"] = ops.convert_to_numpy(g)
            out[f"{fmt}_{cell}_keras"] = ops.convert_to_numpy(keras_reference(layer, cell)(xf, mask=mask))
        dense = make(fmt, "Dense", activation="tanh")
        dense.build((None, 12))
        set_numpy_weights(dense, 10 * i + 9)
        y, grads = value_and_grads(dense, x.reshape(-1, 12))
        out[f"{fmt}_Dense_out"] = ops.convert_to_numpy(y)
        for k, g in enumerate(grads):
            out[f"{fmt}_Dense_grad{k}"] = ops.convert_to_numpy(g)


def option_results(out):
    """Dropout (paper preset) in training only, the bfloat16 first contraction close to float32's, and the
    bounded projection (blocks of time steps) equal to the whole-batch one."""
    x, mask = frames()
    layer = make("tt", "GRU", preset="paper", dropout=0.3, recurrent_dropout=0.3, seed=1, input_scale=SCALE,
                 input_shift=SHIFT)
    out["dropout_train"] = ops.convert_to_numpy(layer(x, mask=mask, training=True))
    out["dropout_infer"] = ops.convert_to_numpy(layer(x, mask=mask, training=False))
    bf16 = make("tt", "LSTM", projection_dtype="bfloat16", input_scale=SCALE, input_shift=SHIFT)
    bf16.build((None, T, 12))
    set_numpy_weights(bf16, 99)
    out["bf16"] = ops.convert_to_numpy(bf16(x, mask=mask))
    bf16.projection_dtype = None
    out["f32"] = ops.convert_to_numpy(bf16(x, mask=mask))
    for block in (0, 2 * B):                    # whole batch; blocks of 2 steps (2 blocks and a partial one)
        layer = make("ht", "GRU", projection_block=block, input_scale=SCALE, input_shift=SHIFT, dropout=0.3,
                     seed=5)                     # the same seed: the same input-dropout masks in both
        layer.build((None, T, 12))
        set_numpy_weights(layer, 98)
        y, grads = value_and_grads(layer, x, mask=mask, training=True)
        out[f"block{block}_out"] = ops.convert_to_numpy(y)
        for k, g in enumerate(grads):
            out[f"block{block}_grad{k}"] = ops.convert_to_numpy(g)


def small_model():
    """uint8 frames → TT-GRU (masked, pixel scaling inside) → CP-Dense softmax over 2 classes."""
    inp = keras.Input((T, 12), dtype="uint8")
    h = make("tt", "GRU", input_scale=SCALE, input_shift=SHIFT)(keras.layers.Masking(0)(inp))
    return keras.Model(inp, ttrnn.CPDense((2, 3), (1, 2), 2, activation="softmax")(h))


def fit_and_save(out, folder):
    keras.utils.set_random_seed(0)
    x, _ = frames()
    model = small_model()
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    out["fit_loss"] = np.array(model.fit(x, np.array([0, 1, 0]), epochs=3, batch_size=3, verbose=0).history["loss"])
    out["model_out"] = ops.convert_to_numpy(model(x))
    model.save(folder / f".{BACKEND}.keras")
    os.replace(folder / f".{BACKEND}.keras", folder / f"{BACKEND}.keras")   # whole files only for the others


def load_others(out, folder, others, timeout=600):
    x, _ = frames()
    for other in others:
        path = folder / f"{other}.keras"
        deadline = time.monotonic() + timeout
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        out[f"loaded_{other}"] = ops.convert_to_numpy(ttrnn.load_model(path)(x))


def model_results(out):
    """Class scores of the paper's TT-GRU and of small 3D CNNs on one uint8 clip, the same NumPy weights everywhere
    (BatchNorm variances kept positive), so every backend must give TensorFlow's numbers. Through
    `predict_on_batch` (inference, compiled as Keras compiles it on each backend): called op by op, JAX compiled
    every op of DenseNet-121 on its own, minutes of the normal pass."""
    from ttrnn import baselines

    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (1, 4, 24, 24, 3), dtype=np.uint8)
    shape = clip.shape[1:]
    models = {
        "r3d18": lambda: baselines.resnet3d(18, 5, widen_factor=0.125, input_shape=shape, activation=None),
        "r2plus1d18": lambda: baselines.r2plus1d(18, 5, widen_factor=0.125, input_shape=shape, activation=None),
        "densenet121": lambda: baselines.densenet3d(121, 5, widen_factor=0.125, input_shape=shape, activation=None),
        "c3d": lambda: baselines.c3d(5, input_shape=shape, width=0.125, activation=None),
    }
    for name, build in models.items():
        model = build()
        weights = []
        for k, w in enumerate(model.weights):
            v = np.random.default_rng(k).standard_normal(w.shape).astype("float32")
            fan_in = max(1, int(np.prod(w.shape[:-1])))
            weights.append(1 + 0.1 * np.abs(v) if "variance" in w.path else v / np.sqrt(fan_in))
        model.set_weights(weights)
        out[f"net_{name}"] = ops.convert_to_numpy(model.predict_on_batch(clip))
    from ttrnn.models import paper_model

    tt_gru = paper_model("ucf11", "gru", 11, dropout=0.0, recurrent_dropout=0.0)
    set_numpy_weights(tt_gru, 1)
    video = rng.integers(0, 256, (2, 3, 120, 160, 3), dtype=np.uint8)
    video[1, 2:] = 0                                                    # a padded frame
    out["net_tt_gru"] = ops.convert_to_numpy(tt_gru.predict_on_batch(video))


def main(folder, others):
    folder = Path(folder)
    keras.utils.set_random_seed(0)
    out = {}
    fit_and_save(out, folder)
    layer_results(out)
    option_results(out)
    model_results(out)
    load_others(out, folder, others)
    np.savez(folder / f"{BACKEND}.npz", **out)
    print(f"{BACKEND}: {len(out)} arrays")


if __name__ == "__main__":
    assert os.environ.get("KERAS_BACKEND", "tensorflow") == BACKEND
    main(sys.argv[1], sys.argv[2:])
    exit_now(0)   # skips the shutdown's collections over every backend's objects (ttrnn.cli.exit_now)
