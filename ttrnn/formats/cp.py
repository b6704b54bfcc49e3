"""CP (canonical polyadic) matrix format: `W[(i), (j)] = sum_r w_r prod_k A_k[i_k, j_k, r]`.

`factors` = `(weights (R,), [A_k (n_k m_k, R)])` (row `i_k m_k + j_k`): `tensorly.cp_to_tensor(factors)` over the
interleaved modes `(n_1 m_1, ..., n_d m_d)`, permuted to `(n_1..n_d, m_1..m_d)`. Parameters
`R (1 + sum_k n_k m_k)`.

Fast contraction: the first matrix holds the trailing factors (their column-wise Khatri-Rao product when
merged); each further input mode is one contraction batched over r that adds its output mode to the state;
the weights and the first factor come last.
"""

import math

from keras import ops

from ttrnn.formats.base import Format, permute_interleaved


def khatri_rao(factors):
    """Factors `(n_k, m_k, R)` → one `(prod n, prod m, R)` factor (the rank index shared)."""
    out = factors[0]
    for f in factors[1:]:
        a, b, r = (int(v) for v in out.shape)
        x, y, _ = (int(v) for v in f.shape)
        out = ops.reshape(ops.einsum("ijr,klr->ikjlr", out, f), (a * x, b * y, r))
    return out


class CP(Format):
    """`ranks`: the CP rank R (an int, or a one-element list)."""

    NAME = "cp"
    MIN_MODES = 2

    def _check_ranks(self, ranks):
        if isinstance(ranks, (list, tuple)):
            if len(ranks) != 1:
                raise ValueError(f"ranks for the cp format is one rank R (or [R]), got {list(ranks)}")
            ranks = ranks[0]
        try:
            r = int(ranks)
        except (TypeError, ValueError):
            raise ValueError(f"ranks for the cp format must be a positive integer, got {ranks!r}") from None
        if r <= 0:
            raise ValueError(f"ranks for the cp format must be a positive integer, got {r}")
        return (r,)

    @property
    def rank(self):
        return self.ranks[0]

    def weight_shapes(self):
        return [("cp_weights", (self.rank,))] + [
            (f"cp_factor_{k}", (self.n[k], self.m[k], self.rank)) for k in range(self.d)]

    def variance_terms(self):
        return self.rank, self.d + 1

    def factors(self, weights):
        return weights[0], [ops.reshape(a, (nk * mk, self.rank)) for a, nk, mk in zip(weights[1:], self.n, self.m)]

    def full(self, weights):
        w, fs = weights[0], weights[1:]
        acc = ops.reshape(fs[0], (-1, self.rank)) * w                 # (n_1 m_1, R)
        for f in fs[1:-1]:
            acc = ops.reshape(ops.einsum("ar,br->abr", acc, ops.reshape(f, (-1, self.rank))), (-1, self.rank))
        full = ops.matmul(acc, ops.transpose(ops.reshape(fs[-1], (-1, self.rank))))
        return permute_interleaved(full, self.n, self.m)

    def _tail(self):
        return self.tail_modes(lambda t: math.prod(self.m[-t:]) * self.rank)

    def first_matrix(self, weights):
        """`(k, Q R)`: the Khatri-Rao product of the trailing t factors, k = their input modes."""
        tail = khatri_rao(weights[1:][self.d - self._tail():])
        k, q, r = (int(v) for v in tail.shape)
        return ops.reshape(tail, (k, q * r))

    def rest(self, y1, weights):
        """State `y` `(a, n_h, Q, R)`, Q = the finished output modes `(j_{h+1}..j_d)`."""
        t, r = self._tail(), self.rank
        fs = weights[1:]
        q = math.prod(self.m[self.d - t:])
        y = y1
        for h in range(self.d - t - 1, 0, -1):
            y = ops.einsum("aiqr,ijr->ajqr", ops.reshape(y, (-1, self.n[h], q, r)), fs[h])
            q *= self.m[h]
        first = fs[0] * weights[0]                                    # (n_1, m_1, R), weights folded in
        y = ops.einsum("fiqr,ijr->fjq", ops.reshape(y, (-1, self.n[0], q, r)), first)
        return ops.reshape(y, (-1, self.m[0] * q))
