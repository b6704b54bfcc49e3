"""Memory-bounded projection of long uint8 clips on JAX: `ttrnn.layers.projection`'s blocks as a `lax.scan`.

Same contract as `ttrnn.layers.projection.project_in_blocks` (its docstring says why): both parts of the contraction
run on `block_steps` time steps of the batch at a time, so a float copy of the frames exists for one block only.
Each block is a `jax.checkpoint`ed function whose policy keeps only the first product `y1` (when `keep_first`,
the training case; nothing otherwise): the backward pass recasts the uint8 block for `d mat = xf^T @ d y1` and
replays `rest` from `y1`, as the TensorFlow version does by hand. The time steps that do not fill a block go
through one more call of the same function after the scan.
"""

import jax
import jax.numpy as jnp
from keras import ops

from ttrnn.formats.common import cast_affine


def project_in_blocks(x, mat, rest, params, scale=None, shift=None, block_steps=4, compute_dtype=None,
                      keep_first=True):
    """`rest(reshape(x * scale + shift, (-1, k)) @ mat, params)` for uint8 `x` `(B, T, D)` → `(B, T, P)`.

    `mat` `(k, c)` float; `rest(y1 (rows, c), params) -> (frames, P)`; `scale` / `shift` None, scalars or
    `(B, 1, D)`; `compute_dtype` the dtype of the first contraction. Gradients flow to `mat` and `params`.
    """
    k = int(mat.shape[0])
    out_dtype = mat.dtype
    dtype = compute_dtype or out_dtype
    batch, steps = int(x.shape[0]), int(x.shape[1])
    policy = (jax.checkpoint_policies.save_only_these_names("y1") if keep_first
              else jax.checkpoint_policies.nothing_saveable)

    def block(m, ps, xb):                                     # (B, tb, D) uint8 → (B, tb, P)
        xf = jnp.reshape(cast_affine(xb, dtype, scale, shift), (-1, k))
        y1 = jax.ad_checkpoint.checkpoint_name(jnp.matmul(xf, m.astype(dtype)).astype(out_dtype), "y1")
        return jnp.reshape(rest(y1, list(ps)), (batch, xb.shape[1], -1))

    block = jax.checkpoint(block, policy=policy)
    mat, params = ops.convert_to_tensor(mat), tuple(ops.convert_to_tensor(p) for p in params)   # not variables
    n_full = steps // block_steps

    def body(carry, i):
        xb = jax.lax.dynamic_slice_in_dim(x, i * block_steps, block_steps, axis=1)
        return carry, block(mat, params, xb)

    parts = []
    if n_full:
        _, zs = jax.lax.scan(body, None, jnp.arange(n_full))  # (n_full, B, tb, P)
        parts.append(jnp.reshape(jnp.swapaxes(zs, 0, 1), (batch, n_full * block_steps, -1)))
    if steps > n_full * block_steps:
        parts.append(block(mat, params, x[:, n_full * block_steps:]))
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=1)
