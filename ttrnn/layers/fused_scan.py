"""The recurrence of the TT layers as one XLA-compiled loop per direction, with a hand-scheduled backward pass.

`fused_scan` computes what Keras's RNN loop computes for a cell (masked steps carry the states through), with a
custom gradient that is faster on CPU (measured in docs/performance.md). Under Keras's loop and TF autodiff each
step is a dozen tiny TF ops, every intermediate goes through a stack, and the recurrent kernel's gradient is
accumulated as T small `(U, B) @ (B, G*U)` matmuls. Here:

- forward: one XLA while loop over the steps; per step only the previous states and the recurrent matmul
  products are kept for the backward pass;
- backward: one XLA while loop that replays each step's cell under a tape from those stored values (the stored
  products and activation outputs stand in for the matmuls and activations: no matmul or transcendental is
  recomputed; activations without a known derivative-from-output are recomputed, so any Keras activation works);
  the kernel gradient is then one `(U, T*B) @ (T*B, w)` matmul per recurrent matmul of the cell, after the loop.

XLA compiles once per input shape, so T is padded (masked steps) to a few lengths (`padded_steps`): a multiple
of 16 up to 256 steps, then of 32, 64 and 128 (at most ~6-12 % extra steps): clip lengths up to 1,492 then fall on
at most 36 loop shapes, each one XLA compilation, however many distinct lengths the data has.

Complexity per step: the cell's recurrent matmuls, `B * U * gates * U` multiply-adds, forward; the backward replays
the step's elementwise work from the stored products and activations, and the kernel gradient costs the same
multiply-adds once for all steps. Memory: per step the previous states and the matmul products and activation
outputs, `O(B * gates * U)`.

A cell is `cell(z_t, states, f, rec_bias, rec_masks) -> new_states` with `z_t` `(B, C)` the projected input of
step t, `states` a list of `(B, U)`, and `f.matmul(a, lo, hi) = a @ kernel[:, lo:hi]`, `f.act(fn, x) = fn(x)` its
only uses of the recurrent kernel and of activations (called the same way every step). The first state is the
output.
TensorFlow only (tf.custom_gradient, XLA); the layers fall back to Keras's loop on other backends.
"""

import tensorflow as tf

PAD_STEPS = 16


def padded_steps(steps):
    """The loop length XLA compiles for `steps` (a scalar tensor): rounded up to a multiple of 16 below 256,
    32 below 512, 64 below 1024, else 128."""
    multiple = tf.where(steps <= 256, PAD_STEPS, tf.where(steps <= 512, 32, tf.where(steps <= 1024, 64, 128)))
    return (steps + multiple - 1) // multiple * multiple


def fused_scan(cell, z, mask, states, kernel, rec_bias=None, rec_masks=None, return_sequences=False):
    """Run `cell` over time-major `z` `(T, B, C)` with `mask` `(T, B)` bool from `states` (list of `(B, U)`).

    Returns `(outputs, final_states)`: `outputs` `(T, B, U)` (the first state after each step) if
    `return_sequences`, else None. Differentiable w.r.t. `z`, `states`, `kernel` and `rec_bias`.
    """
    n_states = len(states)
    has_bias = rec_bias is not None
    masks = list(rec_masks or [])
    steps = tf.shape(z)[0]
    pad = padded_steps(steps) - steps
    z = tf.pad(z, [[0, pad], [0, 0], [0, 0]])
    mask = tf.pad(tf.cast(mask, tf.bool), [[0, pad], [0, 0]])
    blocks = []                                   # (lo, hi) of each matmul call of a step, in call order
    n_acts = []                                   # [number of activation calls of a step]

    def step(z_t, m_t, prev, f, rb):
        new = cell(z_t, prev, f, rb if has_bias else None, masks or None)
        return [tf.where(m_t[:, None], n, p) for n, p in zip(new, prev)]

    def forward(z, mask, init, kern, rb):
        if not n_acts:                            # learn the step's matmul and activation calls (dead code)
            probe = _Recorder(kern)
            step(z[0], mask[0], init, probe, rb)
            blocks.extend(probe.blocks)
            n_acts.append(len(probe.acts))
        n = tf.shape(z)[0]
        arrays = (_arrays(z.dtype, n, n_states), _arrays(z.dtype, n, len(blocks)), _arrays(z.dtype, n, n_acts[0]),
                  _arrays(z.dtype, n, 1 if return_sequences else 0))

        def body(t, prev, arrays):
            f = _Recorder(kern)
            new = step(z[t], mask[t], prev, f, rb)
            outs = [new[0]] if return_sequences else []
            return t + 1, new, tuple([ta.write(t, v) for ta, v in zip(group, values)]
                                     for group, values in zip(arrays, (prev, f.products, f.acts, outs)))

        _, final, arrays = tf.while_loop(lambda t, *_: t < n, body, (0, list(init), arrays))
        befores, prods, acts, outs = ([ta.stack() for ta in group] for group in arrays)
        return final, befores, prods, acts, outs[0] if return_sequences else tf.zeros((), z.dtype)

    def backward(z, mask, befores, prods, acts, d_final, d_outs, kern_t, rb):
        n = tf.shape(z)[0]
        arrays = (tf.TensorArray(z.dtype, size=n), _arrays(z.dtype, n, len(blocks)), _arrays(z.dtype, n, len(blocks)))

        def body(t, d_states, d_rb, arrays):
            t = t - 1
            prev = [b[t] for b in befores]
            stored = [p[t] for p in prods]
            z_t = z[t]
            f = _Replayer(kern_t, stored, [a[t] for a in acts])
            with tf.GradientTape() as tape:
                sources = [z_t] + prev + stored + [rb]
                tape.watch(sources)
                new = step(z_t, mask[t], prev, f, rb)
            inputs = f.inputs
            upstream = list(d_states)
            if d_outs is not None:
                upstream[0] = upstream[0] + d_outs[t]
            grads = tape.gradient(new, sources, output_gradients=upstream,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            dz, d_prods, d_inputs = arrays
            return (t, grads[1:1 + n_states], d_rb + grads[-1],
                    (dz.write(t, grads[0]), [ta.write(t, g) for ta, g in zip(d_prods, grads[1 + n_states:-1])],
                     [ta.write(t, a) for ta, a in zip(d_inputs, inputs)]))

        _, d_init, d_rb, (dz, d_prods, inputs) = tf.while_loop(
            lambda t, *_: t > 0, body, (n, list(d_final), tf.zeros_like(rb), arrays))
        d_kern = []
        for (lo, hi), dp, a in zip(blocks, d_prods, inputs):
            dp, a = dp.stack(), a.stack()                            # (T, B, hi - lo), (T, B, U)
            d_kern.append(tf.matmul(tf.reshape(a, (-1, a.shape[-1])), tf.reshape(dp, (-1, hi - lo)),
                                    transpose_a=True))
        return d_init, dz.stack(), d_kern, d_rb

    xla_forward = tf.function(forward, jit_compile=True, autograph=False)
    xla_backward = tf.function(backward, jit_compile=True, autograph=False)

    @tf.custom_gradient
    def scan(z, kern, rb, *init):
        # stop_gradient: an eager tape must not ask for the XLA loop's own gradient (this is its gradient)
        final, befores, prods, acts, outs = xla_forward(*_no_grad(z, mask, list(init), kern, rb))
        final = [tf.ensure_shape(f, s.shape) for f, s in zip(final, init)]

        def grad(d_outs, *d_final):
            d_final = [tf.zeros_like(f) if d is None else d for d, f in zip(d_final, final)]
            d_outs = d_outs if return_sequences else None
            d_init, dz, d_blocks, d_rb = xla_backward(*_no_grad(z, mask, befores, prods, acts, d_final, d_outs,
                                                                tf.transpose(kern), rb))
            d_kern = tf.zeros_like(kern)
            for (lo, hi), g in zip(blocks, d_blocks):
                d_kern = d_kern + tf.pad(g, [[0, 0], [lo, int(kern.shape[1]) - hi]])
            return [dz, d_kern, d_rb if has_bias else None] + list(d_init)

        return [outs] + final, grad

    # Tensors, not variables: the variables are read here, outside the custom gradient (which must not see them).
    kernel = tf.convert_to_tensor(kernel)
    rec_bias = tf.convert_to_tensor(rec_bias) if has_bias else tf.zeros((), z.dtype)
    result = scan(z, kernel, rec_bias, *[tf.convert_to_tensor(s) for s in states])
    outputs, final = result[0], list(result[1:])
    if return_sequences:
        outputs = tf.ensure_shape(outputs[:steps], [None] + list(states[0].shape))
    else:
        outputs = None
    return outputs, final


def _arrays(dtype, size, count):
    """`count` TensorArrays of `size` steps (one per stored per-step value)."""
    return [tf.TensorArray(dtype, size=size) for _ in range(count)]


def _no_grad(*args):
    return tf.nest.map_structure(lambda t: None if t is None else tf.stop_gradient(t), args)


class _Recorder:
    """Step ops of the forward loop: evaluate, and keep the matmul products and activation outputs."""

    def __init__(self, kern):
        self.kern, self.blocks, self.products, self.acts = kern, [], [], []

    def matmul(self, a, lo, hi):
        self.blocks.append((lo, hi))
        self.products.append(tf.matmul(a, self.kern[:, lo:hi]))
        return self.products[-1]

    def act(self, fn, x):
        self.acts.append(fn(x))
        return self.acts[-1]


class _Replayer:
    """Step ops of the backward loop: return the stored values, with the right gradients (`_replay`,
    `_replay_act`); keeps each matmul's input for the kernel gradient."""

    def __init__(self, kern_t, products, acts):
        self.kern_t, self.products, self.acts, self.inputs = kern_t, products, acts, []
        self.n_acts = 0

    def matmul(self, a, lo, hi):
        self.inputs.append(a)
        return _replay(a, self.products[len(self.inputs) - 1], self.kern_t[lo:hi])

    def act(self, fn, x):
        y = self.acts[self.n_acts]
        self.n_acts += 1
        return _replay_act(fn)(x, y)


def _derivatives():
    """Activations whose derivative is a function of their output `y` (saves recomputing transcendentals)."""
    import keras

    from ttrnn.layers.activations import hard_sigmoid

    inside = lambda y: tf.cast((y > 0) & (y < 1), y.dtype)      # noqa: E731
    return {keras.activations.sigmoid: lambda y: y * (1 - y), keras.activations.tanh: lambda y: 1 - y * y,
            keras.activations.relu: lambda y: tf.cast(y > 0, y.dtype), keras.activations.linear: tf.ones_like,
            hard_sigmoid: lambda y: 0.2 * inside(y), keras.activations.hard_sigmoid: lambda y: inside(y) / 6}


_REPLAY_ACT = {}


def _replay_act(fn):
    """`replay(x, y)` returning the stored `y = fn(x)` with gradient `g * fn'(x)` (from `y` when known)."""
    if fn not in _REPLAY_ACT:
        derivative = _derivatives().get(fn)

        @tf.custom_gradient
        def replay(x, y):
            def grad(g):
                if derivative is not None:
                    return g * derivative(y), None
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    again = fn(x)
                return tape.gradient(again, x, output_gradients=g), None

            return tf.identity(y), grad

        _REPLAY_ACT[fn] = replay
    return _REPLAY_ACT[fn]


@tf.custom_gradient
def _replay(a, product, block_t):
    """Returns the stored `product` (= `a @ block_t^T` in the forward pass); gradients: `a` gets `g @ block_t`,
    `product` gets `g` itself (how the backward step reads the upstream gradient of each matmul)."""

    def grad(g):
        return tf.matmul(g, block_t), g, None

    return tf.identity(product), grad
