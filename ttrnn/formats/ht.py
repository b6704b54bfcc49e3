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
ranks), rewritten as TT cores (`ttrnn.formats.bt.tucker_to_tt`) for the TT contraction.
"""

import math

from keras import ops

from ttrnn.formats.base import Format, rank_tuple
from ttrnn.formats import tt
from ttrnn.formats.base import MAX_FIRST_WIDTH
from ttrnn.formats.bt import tucker_full, tucker_to_tt


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


class HierarchicalTucker(Format):
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
        """The exactly equal TT cores of the Tucker form (`ttrnn.formats.bt.tucker_to_tt`)."""
        return tucker_to_tt(self.core(weights), list(weights[:self.d]))

    def first_matrix(self, weights):
        return tt.first_matrix(self.tt_cores(weights), max_width=MAX_FIRST_WIDTH)

    def rest(self, y1, weights):
        return tt.rest(y1, self.tt_cores(weights), max_width=MAX_FIRST_WIDTH)
