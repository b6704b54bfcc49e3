"""Block-term Tucker matrix format (BT-LSTM, Ye et al., CVPR 2018), and the Tucker contraction HT reuses.

`blocks` N terms, each a core `C_b` `(R_1..R_d)` and d factors `U_bk` `(n_k, m_k, R_k)`, summed:
`W[(i), (j)] = sum_b sum_r C_b[r_1..r_d] prod_k U_bk[i_k, j_k, r_k]`. With `U_k` flattened to
`(n_k m_k, R_k)` (row `i_k m_k + j_k`) each term is `tensorly.tucker_to_tensor((C_b, U_b))` over the
interleaved modes `(n_1 m_1, ..., n_d m_d)`, permuted to `(n_1..n_d, m_1..m_d)`.
Parameters `N (sum_k n_k m_k R_k + prod_k R_k)`.

Fast contraction: the terms are rewritten as one exactly equal TT matrix (`tucker_to_tt`, `block_diagonal_tt`:
small cores, built per step) and contracted by the TT code (`ttrnn.formats.tt.ViaTensorTrain`).
"""

import math

from keras import ops

from ttrnn.formats.common import permute_interleaved, rank_tuple
from ttrnn.formats.tt import ViaTensorTrain


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


def tucker_to_tt(core, factors):
    """One Tucker term as exactly equal TT cores `(r, n_k, m_k, r')`: the factors before the split mode c carry
    their ranks forward (identity on the ranks before), mode c absorbs the core, the factors after it pass the
    remaining ranks on. TT ranks `prod R_{<=k}` before c and `prod R_{>k}` after; c balances them."""
    ranks = [int(u.shape[2]) for u in factors]
    d = len(ranks)
    c = min(range(d), key=lambda k: max(math.prod(ranks[:k]), math.prod(ranks[k + 1:])))
    cores = []
    for k, u in enumerate(factors):
        nk, mk, rk = (int(v) for v in u.shape)
        p, s = math.prod(ranks[:k]), math.prod(ranks[k + 1:])
        if k < c:                                   # (p, n, m, p r): carry r_k forward
            g = ops.einsum("pq,ijr->pijqr", ops.eye(p), u)
            cores.append(ops.reshape(g, (p, nk, mk, p * rk)))
        elif k == c:                                # (p, n, m, s): the core, its rank r_c summed with U_c
            cores.append(ops.einsum("prs,ijr->pijs", ops.reshape(core, (p, rk, s)), u))
        else:                                       # (r s, n, m, s): use r_k, pass the later ranks on
            g = ops.einsum("ijr,st->rsijt", u, ops.eye(s))
            cores.append(ops.reshape(g, (rk * s, nk, mk, s)))
    return cores


def block_diagonal_tt(terms):
    """TT cores of a sum of TT matrices (lists of cores with the same modes): ranks add, cores block-diagonal."""
    if len(terms) == 1:
        return terms[0]
    out = []
    d = len(terms[0])
    for k in range(d):
        left = [int(t[k].shape[0]) for t in terms] if k > 0 else [0] * len(terms)
        right = [int(t[k].shape[3]) for t in terms] if k < d - 1 else [0] * len(terms)
        padded = []
        for b, t in enumerate(terms):
            pad_l = [sum(left[:b]), sum(left[b + 1:])] if k > 0 else [0, 0]
            pad_r = [sum(right[:b]), sum(right[b + 1:])] if k < d - 1 else [0, 0]
            padded.append(ops.pad(t[k], [pad_l, [0, 0], [0, 0], pad_r]))
        out.append(sum(padded[1:], padded[0]))
    return out


class BlockTerm(ViaTensorTrain):
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

    def tt_cores(self, weights):
        """The exactly equal TT cores (`tucker_to_tt` per block, blocks side by side in the ranks)."""
        return block_diagonal_tt([tucker_to_tt(c, us) for c, us in zip(*self._split(weights))])
