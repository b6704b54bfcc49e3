"""Hierarchical Tucker matrix format, the textbook form (Hackbusch & Kühn 2009; Grasedyck 2010).

What we implement (the HT-RNN papers' exact tree is not published in a form we can check): a balanced binary
dimension tree over the d mode pairs — a node over modes `[a, b)` splits into `[a, a + (b-a)//2)` and the rest —
with a leaf factor `U_k` `(n_k, m_k, r_k)` per mode pair and a transfer tensor `B_t` `(r_left, r_right, r_t)` per
inner node, the root's rank 1. Each node's matrix is `U_t = (U_left ⊗ U_right) B_t` over the combined indices
`(i_k, j_k)` of its modes (row `i_k m_k + j_k`); the root's is `W` over `(n_1 m_1, ..., n_d m_d)`, permuted to
`(n_1..n_d, m_1..m_d)`.

`ranks`: an int R (every node but the root) or one rank per node in post-order (leaves and inner nodes as the
tree visits them, root last = 1). `factors` = `([U_k (n_k m_k, r_k)], [B_t per inner node, post-order])`.
Parameters `sum_k n_k m_k r_k + sum_t r_left r_right r_t`.

Fast contraction: the transfer tensors give a Tucker core `(r_1..r_d)` (`prod r_k` values, small at these
ranks) for `full`; `x @ W` rewrites the tree as exactly equal TT cores (`tt_cores`) for the TT contraction.
"""

import math

from keras import ops

from ttrnn.formats.bt import tucker_full
from ttrnn.formats.common import rank_tuple
from ttrnn.formats.tt import ViaTensorTrain


def dimension_tree(lo, hi):
    """The balanced tree over modes `[lo, hi)`: a mode index (leaf) or a pair `(left, right)`."""
    if hi - lo == 1:
        return lo
    mid = lo + (hi - lo) // 2
    return dimension_tree(lo, mid), dimension_tree(mid, hi)


def post_order(tree):
    """Nodes in post-order: ints for leaves, tuples for inner nodes (root last)."""
    if isinstance(tree, int):
        return [tree]
    return post_order(tree[0]) + post_order(tree[1]) + [tree]


def _carry(core, r, first):
    """`core` `(a, n, m, b)` ⊗ identity over an extra rank index of size r carried through: `(r a, n, m, r b)`
    (`first`: the carried index before the core's own) or `(a r, n, m, b r)`."""
    a, n, m, b = (int(v) for v in core.shape)
    if first:
        return ops.reshape(ops.einsum("st,anmb->sanmtb", ops.eye(r), core), (r * a, n, m, r * b))
    return ops.reshape(ops.einsum("st,anmb->asnmbt", ops.eye(r), core), (a * r, n, m, b * r))


def _open(t, leaves, transfer, side):
    """TT cores of the subtree `t` whose rank index r_t leaves on the `side` end ("right": left rank 1, right
    rank r_t; "left": left rank r_t, right rank 1). Inner node (L, R), `B` `(r_L, r_R, r_t)`: right-open puts
    B into R's first core and carries r_t through R's other cores; left-open carries r_t through L's cores but
    the last, which takes B. A leaf's own core takes B without a carry."""
    if isinstance(t, int):
        u = leaves[t]                                                   # (n, m, r)
        return [ops.expand_dims(u, 0) if side == "right" else ops.expand_dims(ops.transpose(u, (2, 0, 1)), -1)]
    b = transfer[repr(t)]
    r_t = int(b.shape[2])
    left, right = _open(t[0], leaves, transfer, "right"), _open(t[1], leaves, transfer, "left")
    if side == "right":
        first = right[0]                                                # (r_R, n, m, q)
        _, n, m, q = (int(v) for v in first.shape)
        folded = ops.reshape(ops.einsum("lrt,rnmq->lnmqt", b, first), (int(b.shape[0]), n, m, q * r_t))
        return left + [folded] + [_carry(c, r_t, first=False) for c in right[1:]]
    last = left[-1]                                                     # (a, n, m, r_L)
    a, n, m, _ = (int(v) for v in last.shape)
    folded = ops.reshape(ops.einsum("anml,lrt->tanmr", last, b), (r_t * a, n, m, int(b.shape[1])))
    return [_carry(c, r_t, first=True) for c in left[:-1]] + [folded] + right


class HierarchicalTucker(ViaTensorTrain):
    """The hierarchical-Tucker matrix (module docstring): a balanced binary dimension tree over the d mode pairs,
    a leaf factor `U_k` `(n_k m_k, r_k)` per mode pair and a transfer tensor `B_t` `(r_left, r_right, r_t)` per inner
    node; `sum_k n_k m_k r_k + sum_t r_left r_right r_t` parameters. `ranks`: an int R (every node but the root) or
    one rank per node in post-order. `x @ W` runs through exactly equal TT cores (`ViaTensorTrain`).

    References: M. Yin et al., Compressing Recurrent Neural Networks Using Hierarchical Tucker Tensor Decomposition
    (HT-LSTM, 2020); W. Hackbusch, S. Kühn 2009 and L. Grasedyck 2010 for the format."""
    NAME = "ht"
    MIN_MODES = 2

    def _check_ranks(self, ranks):
        nodes = post_order(dimension_tree(0, self.d))
        if isinstance(ranks, (int, float)) and not isinstance(ranks, bool):
            ranks = [int(ranks)] * (len(nodes) - 1) + [1]
        ranks = rank_tuple(ranks, len(nodes))
        if ranks[-1] != 1:
            raise ValueError(f"ranks {list(ranks)}: the root's rank (last, post-order) must be 1")
        self.tree, self.nodes = nodes[-1], nodes
        self.node_rank = dict(zip(map(repr, nodes), ranks))
        return ranks

    def _rank(self, node):
        return self.node_rank[repr(node)]

    def inner_nodes(self):
        return [t for t in self.nodes if not isinstance(t, int)]

    def weight_shapes(self):
        leaves = [(f"ht_leaf_{k}", (self.n[k], self.m[k], self._rank(k))) for k in range(self.d)]
        transfers = [(f"ht_transfer_{j}", (self._rank(t[0]), self._rank(t[1]), self._rank(t)))
                     for j, t in enumerate(self.inner_nodes())]
        return leaves + transfers

    def variance_terms(self):
        return math.prod(self.ranks[:-1]), 2 * self.d - 1

    def factors(self, weights):
        leaves = [ops.reshape(u, (nk * mk, int(u.shape[2]))) for u, nk, mk in zip(weights[:self.d], self.n, self.m)]
        return leaves, list(weights[self.d:])

    def core(self, weights):
        """The Tucker core `(r_1..r_d)` of the leaf ranks: the transfer tensors contracted along the tree."""
        transfer = dict(zip(map(repr, self.inner_nodes()), weights[self.d:]))

        def node(t):                                   # (prod leaf ranks under t, r_t)
            if isinstance(t, int):
                return ops.eye(self._rank(t))
            left, right = node(t[0]), node(t[1])
            out = ops.einsum("pa,qb,abc->pqc", left, right, transfer[repr(t)])
            return ops.reshape(out, (-1, self._rank(t)))

        return ops.reshape(node(self.tree), [self._rank(k) for k in range(self.d)])

    def full(self, weights):
        return tucker_full([self.core(weights)], [list(weights[:self.d])], self.n, self.m)

    def tt_cores(self, weights):
        """The exactly equal TT cores `(r, n_k, m_k, r')`, built along the tree (`_open`): for the balanced tree
        of 4 modes with all ranks r, TT ranks `[1, r, r, r, 1]`."""
        transfer = dict(zip(map(repr, self.inner_nodes()), weights[self.d:]))
        return _open(self.tree, list(weights[:self.d]), transfer, "right")
