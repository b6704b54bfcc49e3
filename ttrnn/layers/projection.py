"""Memory-bounded projection of long uint8 clips through a factorized input kernel, a few time steps at a time.

A factorized kernel (TT and the other formats) is applied in two parts: the first, full-size contraction
`y1 = reshape(x * scale + shift, (-1, k)) @ mat` reads every frame, and `rest(y1, params)` finishes the much
smaller chain. Done on a whole padded batch at once (the fast path for short clips), the float copies of the
frames that this needs grow with the batch: one float32 copy of the paper's UCF11 batch (16 clips padded to 1,492
frames of 57,600 values) is 5.5 GB. Here both parts run on `block_steps` time steps of the batch at a time inside
one while loop, so a float copy of the frames exists only for one block:

- forward keeps, per frame, only `y1` (UCF11 TT: 160 x 64 floats, 41 KB, vs 230 KB for a float frame), and only
  when a gradient may be asked for (`keep_first`);
- backward walks the blocks again: `rest` is replayed under a tape from the kept `y1` (its gradient to `params`
  and to `y1`), then `d mat += xf^T @ d y1` with `xf` recast from the uint8 block. The frames need no gradient,
  so the big contraction costs one matmul forward and one backward, as on the whole-batch path.

Cost: the whole-batch path's multiply-adds, plus the backward's recast of each block (and its first matmul again
when `keep_first=False`). Memory: one block's float frames, `block_steps * B * D` values, plus the kept `y1`,
`T * B * (D / k) * c` values (`k` inputs, `c` outputs of the first matrix).

TensorFlow only (while loop, tf.custom_gradient); `keras.ops` has no loop with a custom gradient over it.
"""

import tensorflow as tf

from ttrnn.formats.common import cast_affine


def project_in_blocks(x, mat, rest, params, scale=None, shift=None, block_steps=4, compute_dtype=None,
                      keep_first=True):
    """`rest(reshape(x * scale + shift, (-1, k)) @ mat, params)` for uint8 `x` `(B, T, D)` → `(B, T, P)`.

    `mat` `(k, c)` float; `rest(y1 (rows, c), params) -> (frames, P)` with `rows = frames * D / k`; `params` the
    tensors `rest` differentiates; `scale` / `shift` None, scalars or `(B, 1, D)` (a dropout mask per clip).
    `compute_dtype` (e.g. "bfloat16") is the dtype of the first contraction. `keep_first=False` keeps nothing
    in the forward pass and recomputes `y1` block by block if a gradient is asked for (for inference).
    Gradients flow to `mat` and `params`; none to `x`, `scale`, `shift`.
    """
    k = int(mat.shape[0])
    out_dtype = mat.dtype
    dtype = tf.as_dtype(compute_dtype or out_dtype)
    sc = tf.constant(1.0, dtype) if scale is None else tf.cast(scale, dtype)
    sh = tf.constant(0.0, dtype) if shift is None else tf.cast(shift, dtype)
    batch, steps = tf.shape(x)[0], tf.shape(x)[1]
    n_blocks = (steps + block_steps - 1) // block_steps

    def bounds(i):
        return i * block_steps, tf.minimum(steps, (i + 1) * block_steps)

    def frames_f(i):                                          # float rows of block i: (rows, k)
        t0, t1 = bounds(i)
        return tf.reshape(cast_affine(x[:, t0:t1], dtype, sc, sh), (-1, k))

    def first(i, m):
        return tf.cast(tf.matmul(frames_f(i), tf.cast(m, dtype)), out_dtype)

    def to_time_major(z, i):                                  # (B * tb, P) → (tb, B, P)
        t0, t1 = bounds(i)
        return tf.transpose(tf.reshape(z, (batch, t1 - t0, -1)), (1, 0, 2))

    @tf.custom_gradient
    def project(m, *ps):
        def body(i, zs, y1s):
            y1 = first(i, m)
            zs = zs.write(i, to_time_major(rest(y1, list(ps)), i))
            return i + 1, zs, (y1s.write(i, y1) if keep_first else y1s)

        c = int(m.shape[1])
        arrays = [tf.TensorArray(out_dtype, size=n_blocks, infer_shape=False, element_shape=shape)
                  for shape in (tf.TensorShape([None, None, None]), tf.TensorShape([None, c]))]
        _, zs, y1s = tf.while_loop(lambda i, *_: i < n_blocks, body, [0] + arrays)
        kept = y1s if keep_first else None                    # read block by block: a concat would copy it
        z = tf.transpose(zs.concat(), (1, 0, 2))              # (B, T, P)

        def grad(dz):
            return _backward(dz, m, list(ps), kept)

        return z, grad

    def _backward(dz, m, ps, kept):
        dz = tf.transpose(dz, (1, 0, 2))                      # (T, B, P): a block is a slice of time

        def body(i, d_mat, d_ps):
            t0, t1 = bounds(i)
            y1 = kept.read(i) if kept is not None else first(i, m)
            dz_b = tf.reshape(tf.transpose(dz[t0:t1], (1, 0, 2)), (-1, tf.shape(dz)[-1]))
            with tf.GradientTape() as tape:
                tape.watch([y1] + ps)
                z_b = rest(y1, ps)
            grads = tape.gradient(z_b, [y1] + ps, output_gradients=dz_b,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            d_mat = d_mat + tf.cast(tf.matmul(frames_f(i), tf.cast(grads[0], dtype), transpose_a=True), out_dtype)
            return i + 1, d_mat, [a + g for a, g in zip(d_ps, grads[1:])]

        init = [0, tf.zeros(m.shape, out_dtype), [tf.zeros_like(p) for p in ps]]
        _, d_mat, d_ps = tf.while_loop(lambda i, *_: i < n_blocks, body, init)
        return [d_mat] + d_ps

    return project(tf.convert_to_tensor(mat), *[tf.convert_to_tensor(p) for p in params])
