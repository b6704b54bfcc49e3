"""CP (canonical polyadic) matrix format: `W[(i), (j)] = sum_r w_r prod_k A_k[i_k, j_k, r]`.

`factors` = `(weights (R,), [A_k (n_k m_k, R)])` (row `i_k m_k + j_k`): `tensorly.cp_to_tensor(factors)` over the
interleaved modes `(n_1 m_1, ..., n_d m_d)`, permuted to `(n_1..n_d, m_1..m_d)`. Parameters
`R (1 + sum_k n_k m_k)`.

Fast contraction: CP is a TT matrix of rank R with diagonal cores (`CP.tt_cores`), contracted by the TT code.
"""

from keras import ops

from ttrnn.formats.common import permute_interleaved
from ttrnn.formats.tt import ViaTensorTrain


class CP(ViaTensorTrain):
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

    def tt_cores(self, weights):
        """The exactly equal TT cores: rank R throughout, diagonal in it; the weights folded into the first."""
        w, fs, r = weights[0], weights[1:], self.rank
        first = ops.expand_dims(fs[0] * w, 0)                                       # (1, n, m, R)
        middle = [ops.einsum("ijr,rs->rijs", f, ops.eye(r)) for f in fs[1:-1]]      # (R, n, m, R)
        last = ops.expand_dims(ops.transpose(fs[-1], (2, 0, 1)), -1)                # (R, n, m, 1)
        return [first] + middle + [last]
