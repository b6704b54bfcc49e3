"""Block-term Tucker matrix format (BT-LSTM, Ye et al., CVPR 2018), and the Tucker contraction HT reuses.

`blocks` N terms, each a core `C_b` `(R_1..R_d)` and d factors `U_bk` `(n_k, m_k, R_k)`, summed:
`W[(i), (j)] = sum_b sum_r C_b[r_1..r_d] prod_k U_bk[i_k, j_k, r_k]`. With `U_k` flattened to
`(n_k m_k, R_k)` (row `i_k m_k + j_k`) each term is `tensorly.tucker_to_tensor((C_b, U_b))` over the
interleaved modes `(n_1 m_1, ..., n_d m_d)`, permuted to `(n_1..n_d, m_1..m_d)`.
Parameters `N (sum_k n_k m_k R_k + prod_k R_k)`.

Fast contraction (`tucker_first_matrix` / `tucker_rest`, all blocks batched): the first matrix holds the
trailing factors (their Kronecker product when merged); each further input mode is one batched contraction
that adds its output mode and rank to the state; the cores and the first factor come last.
"""

import math

from keras import ops

from ttrnn.formats.base import Format, permute_interleaved, rank_tuple


def merge_factors(factors):
    """Factors `(n_k, m_k, R_k)` → one `(prod n, prod m, prod R)` factor (their Kronecker product, row-major)."""
    out = factors[0]
    for f in factors[1:]:
        a, b, c = (int(v) for v in out.shape)
        x, y, z = (int(v) for v in f.shape)
        out = ops.reshape(ops.einsum("ijr,kls->ikjlrs", out, f), (a * x, b * y, c * z))
    return out


def tucker_full(cores, factors, n, m):
    """`sum_b C_b x_k U_bk` as the `(prod n, prod m)` matrix; `cores` N `(R..)`, `factors` N lists `(n_k, m_k, R_k)`."""
    total = 0
    for core, us in zip(cores, factors):
        w = core
        for u in us:                                    # contract the leading rank; the new mode goes last
            nk, mk, rk = (int(v) for v in u.shape)
            w = ops.tensordot(w, ops.reshape(u, (nk * mk, rk)), axes=[[0], [1]])
        total = total + w
    return permute_interleaved(total, n, m)


def tucker_first_matrix(factors, t):
    """`(k, N * Q * S)`: per block the merged last t factors `(k, Q, S)` flattened, blocks side by side."""
    mats = []
    for us in factors:
        tail = merge_factors(us[-t:])
        k, q, s = (int(v) for v in tail.shape)
        mats.append(ops.reshape(tail, (k, q * s)))
    return ops.concatenate(mats, axis=1) if len(mats) > 1 else mats[0]


def tucker_rest(y1, cores, factors, t):
    """`y1` `(frames * prod n_head, N Q S)` → `(frames, prod m)`: the head factors, then cores and factor 0.

    State `y` `(a, n_h, N, Q, S)`: Q = the finished output modes `(j_{h+1}..j_d)`, S = their ranks.
    """
    nb, d = len(cores), len(factors[0])
    us = [_stack([f[k] for f in factors]) for k in range(d - t)]            # (N, n_k, m_k, R_k)
    q = math.prod(int(f.shape[1]) for f in factors[0][d - t:])
    s = math.prod(int(f.shape[2]) for f in factors[0][d - t:])
    y = y1
    for h in range(d - t - 1, 0, -1):
        _, nh, mh, rh = (int(v) for v in us[h].shape)
        y = ops.reshape(y, (-1, nh, nb, q, s))
        y = ops.einsum("aibqs,bijr->abjqrs", y, us[h])
        q, s = q * mh, s * rh
    _, n0, m0, r0 = (int(v) for v in us[0].shape)
    y = ops.reshape(y, (-1, n0, nb, q, s))
    core = ops.reshape(_stack(cores), (nb, r0, s))
    y = ops.einsum("fibqs,brs->fibqr", y, core)
    y = ops.einsum("fibqr,bijr->fjq", y, us[0])
    return ops.reshape(y, (-1, m0 * q))


def _stack(tensors):
    """`ops.stack` that also takes Keras variables (tf.stack reads a variable's dtype as a string)."""
    return ops.concatenate([ops.expand_dims(v, 0) for v in tensors], axis=0)


class BlockTerm(Format):
    """`ranks`: an int R or the d Tucker ranks (shared by the blocks); `blocks`: N (default 2).
    `factors` = N `(core (R_1..R_d), [U_k (n_k m_k, R_k)])`."""

    NAME = "bt"
    MIN_MODES = 2

    def __init__(self, input_modes, output_modes, ranks, blocks=2):
        blocks = 2 if blocks is None else int(blocks)
        if blocks <= 0:
            raise ValueError(f"blocks must be a positive integer, got {blocks}")
        super().__init__(input_modes, output_modes, ranks, blocks)

    def _check_ranks(self, ranks):
        return rank_tuple(ranks, self.d)

    def weight_shapes(self):
        shapes = []
        for b in range(self.blocks):
            shapes.append((f"bt_core_{b}", tuple(self.ranks)))
            shapes += [(f"bt_factor_{b}_{k}", (self.n[k], self.m[k], self.ranks[k])) for k in range(self.d)]
        return shapes

    def variance_terms(self):
        return self.blocks * math.prod(self.ranks), self.d + 1

    def _split(self, weights):
        per = self.d + 1
        blocks = [weights[b * per:(b + 1) * per] for b in range(self.blocks)]
        return [w[0] for w in blocks], [list(w[1:]) for w in blocks]

    def factors(self, weights):
        cores, us = self._split(weights)
        return [(c, [ops.reshape(u, (nk * mk, rk)) for u, nk, mk, rk in zip(f, self.n, self.m, self.ranks)])
                for c, f in zip(cores, us)]

    def full(self, weights):
        return tucker_full(*self._split(weights), self.n, self.m)

    def _tail(self):
        return self.tail_modes(lambda t: self.blocks * math.prod(self.m[-t:]) * math.prod(self.ranks[-t:]))

    def first_matrix(self, weights):
        return tucker_first_matrix(self._split(weights)[1], self._tail())

    def rest(self, y1, weights):
        return tucker_rest(y1, *self._split(weights), self._tail())
