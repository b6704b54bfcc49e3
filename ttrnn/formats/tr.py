"""Tensor-ring matrix format (TR-LSTM, Pan et al., AAAI 2019).

One ring of 2d cores over the input modes then the output modes: core k has shape `(r_k, dim_k, r_{k+1})` with
`dim = (n_1..n_d, m_1..m_d)` and `r_{2d} = r_0` (the ring closes). `W[(i_1..i_d), (j_1..j_d)] =
trace(Z_1[:, i_1, :] ... Z_d[:, i_d, :] Z_{d+1}[:, j_1, :] ... Z_{2d}[:, j_d, :])`, which is
`tensorly.tr_to_tensor(factors)` reshaped to `(prod n, prod m)`. Parameters `sum_k r_k dim_k r_{k+1}`.
"""

import math

import numpy as np
from keras import ops

from ttrnn.formats.base import Format
from ttrnn.formats.common import rank_tuple


def merge_chain(cores):
    """Cores `(r_a, dim, r_b)` in order → one `(r_first, prod dim, r_last)` core (their product along the chain)."""
    out = cores[0]
    for core in cores[1:]:
        p, a, _ = (int(s) for s in out.shape)
        _, b, s = (int(v) for v in core.shape)
        out = ops.reshape(ops.einsum("pat,tbs->pabs", out, core), (p, a * b, s))
    return out


class TensorRing(Format):
    """`ranks`: an int R or the 2d ring ranks `r_0..r_{2d-1}`. `factors` = the 2d cores, input modes first."""

    NAME = "tr"
    MIN_MODES = 1

    def _check_ranks(self, ranks):
        return rank_tuple(ranks, 2 * self.d)

    def weight_shapes(self):
        dims, r = self.n + self.m, self.ranks
        return [(f"tr_core_{k}", (r[k], dims[k], r[(k + 1) % len(r)])) for k in range(len(dims))]

    def variance_terms(self):
        return math.prod(self.ranks), 2 * self.d

    def factors(self, weights):
        return list(weights)

    def full(self, weights):
        inp, out = merge_chain(weights[:self.d]), merge_chain(weights[self.d:])   # (r0, N, rd), (rd, M, r0)
        return ops.einsum("pns,smp->nm", inp, out)

    def rows(self, weights, start, count):
        """Rows `[start, start + count)` of `full(weights)`, `(count, prod m)`: each row's input cores gathered at
        its mode indices and multiplied along the ring, `(count, r_0, r_d)`, then closed by the output cores'
        chain `(r_d, prod m, r_0)`. Complexity: `count * r^2 * (d r + prod m)` multiply-adds."""
        idx = np.unravel_index(np.arange(start, start + count), self.n)
        chain = None
        for core, i in zip(weights[:self.d], idx):
            g = ops.transpose(ops.take(core, i, axis=1), (1, 0, 2))      # (count, r_k, r_k+1)
            chain = g if chain is None else ops.matmul(chain, g)
        out = merge_chain(weights[self.d:])                                # (r_d, M, r_0)
        return ops.einsum("cps,smp->cm", chain, out)

    def _tail(self):
        # The ring bond width r_{d-t} * r_d does not grow with merging: merge up to 512 input values.
        return self.tail_modes(lambda t: self.ranks[self.d - t] * self.ranks[self.d])

    def first_matrix(self, weights):
        """`(k, r_{d-t} r_d)`: the trailing t input cores merged, k = their input modes."""
        tail = merge_chain(weights[self.d - self._tail():self.d])                 # (p, k, s)
        p, k, s = (int(v) for v in tail.shape)
        return ops.reshape(ops.transpose(tail, (1, 0, 2)), (k, p * s))

    def rest(self, y1, weights):
        """`y1` `(frames * prod n_head, r_{d-t} r_d)` → contract the other input cores, then the output ring."""
        t = self._tail()
        r_d = self.ranks[self.d]
        y = y1
        for k in range(self.d - t - 1, -1, -1):                      # y: (a * n_k, r_{k+1} r_d)
            core = weights[k]                                        # (r_k, n_k, r_{k+1})
            rk, nk, rk1 = (int(v) for v in core.shape)
            y = ops.reshape(y, (-1, nk, rk1, r_d))
            y = ops.reshape(ops.einsum("aips,qip->aqs", y, core), (-1, rk * r_d))
        out = merge_chain(weights[self.d:])                          # (r_d, prod m, r_0)
        y = ops.reshape(y, (-1, self.ranks[0], r_d))
        return ops.einsum("fps,smp->fm", y, out)
