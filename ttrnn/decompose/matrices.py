"""Dense matrix -> tensor-format factors (NumPy only): the way back from `full()`.

`decompose(W, fmt, input_modes, output_modes, ranks)` returns the weights of a `ttrnn.formats` format in the order
and shapes of its `weight_shapes()` (what a ttrnn layer's kernel holds), such that `fmt.full(weights) ≈ W`:

- tt: TT-SVD (Oseledets 2011) over the interleaved modes `(n_1 m_1, ..., n_d m_d)`; cores `(r, n, m, r')`.
- tr: TR-SVD (Zhao et al. 2016) over the ring `(n_1..n_d, m_1..m_d)`: the first SVD splits its rank into the
  closing rank r_0 and r_1, then TT-SVD carries r_0 to the last core; then up to 20 TR-ALS sweeps from it (each
  core the least-squares fit given the others): the SVD alone is far from the best fit (0.34 against 0.043 on a
  noisy ring of the tests).
- cp: CP-ALS (Kolda & Bader 2009) over the interleaved modes, initialized by the unfoldings' leading singular
  vectors, columns normalized into the weights; at or above the exact rank (the product of all modes but the
  largest) the exact decomposition instead (one column per multi-index of the other modes).
- bt: the block terms fitted greedily: HOSVD (truncated, De Lathauwer 2000) of the residual per block, then
  `sweeps` of back-fitting (each block refitted by HOSVD to the data minus the other blocks).
- ht: hierarchical SVD (Grasedyck 2010, Alg. 1 "root-to-leaves"): each non-root node's basis from the
  matricization of W over its modes, transfer tensors `B_t = (U_l ⊗ U_r)^T U_t`, root `(U_l ⊗ U_r)^T W`;
  error at most `sqrt(sum over nodes of the discarded singular values squared)`.

Ranks a matrix cannot fill (a TT rank above `min(prod left, prod right)`, a leaf rank above `n_k m_k`, …) are
padded with zeros so the factors keep the shapes the format asks for; `ranks="full"` asks for the ranks at which
the reconstruction is exact. Why not TensorLy: its `tensor_train_matrix`, `tensor_ring`, `tensor_ring_als` and
`parafac` are what the tests compare against at small shapes (the UCF11-shape comparison, errors and times, is in
docs/decompose.md), but it has no block-term or HT decomposition and the layouts differ (CP, TR ranks), so a runtime
dependency would cover half of this file and still need the rest.

Complexity: every method is a few sweeps of SVDs / least-squares fits over unfoldings of the `prod n * prod m`
entries of W; `_basis` keeps each one to a GEMM with the matrix and a small symmetric eigenproblem when the
unfolding is wide or large and the rank small.
"""

import math

import numpy as np

from ttrnn import formats
from ttrnn.formats import FORMAT_NAMES
from ttrnn.formats.ht import dimension_tree, post_order

__all__ = ["decompose", "full_ranks", "make_format", "interleaved", "relative_error", "tr_als"]


def interleaved(w, n, m):
    """`W` `(prod n, prod m)` -> the tensor `(n_1 m_1, ..., n_d m_d)` (index `i_k m_k + j_k` per mode)."""
    d = len(n)
    t = np.reshape(w, tuple(n) + tuple(m)).transpose([a for k in range(d) for a in (k, d + k)])
    return t.reshape([a * b for a, b in zip(n, m)])


def relative_error(a, b):
    """`||a - b||_F / ||b||_F`."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def _basis(mat, rank):
    """The leading `rank` left singular vectors of `mat` `(rows, cols)`, zero columns past its row count.

    A wide matrix's come from the eigenvectors of `mat mat^T`: one GEMM, `rows^2 cols`, and a `rows x rows` eigh,
    instead of an SVD over all `cols` (the UCF11 kernel's unfoldings are up to 96 x 460,800); callers project with
    `U^T mat`, so at full rank the reconstruction is exact whatever the precision of the trailing vectors. A large
    matrix cut to a small rank (HT's 7,680 x 5,760 node matricization at the UCF11 shapes) takes the Gram matrix of
    its shorter side instead, `min^2 max` for the GEMM and `min^3` for the eigh against the SVD's `min^2 max` with
    a far larger constant: the leading vectors only, to the Gram's precision (sigma_k^2 well above eps)."""
    rows, cols = mat.shape
    gram = _gram_pays(rows, cols, rank)
    if cols > 4 * rows or (gram and rows <= cols):
        vals, vecs = np.linalg.eigh(mat @ mat.T)
        u = vecs[:, ::-1]
    elif gram:                                           # tall: right vectors, then U = orth(mat V)
        v = np.linalg.eigh(mat.T @ mat)[1][:, ::-1][:, :rank]
        u = np.linalg.qr(mat @ v)[0]
    else:
        u = np.linalg.svd(mat, full_matrices=False)[0]
    u = u[:, :rank]
    return np.pad(u, [(0, 0), (0, rank - u.shape[1])]) if u.shape[1] < rank else u


def _gram_pays(rows, cols, rank):
    """The Gram route for a matrix whose both sides exceed 1,024 cut to under an eighth of its shorter side."""
    return min(rows, cols) > 1024 and rank < min(rows, cols) // 8


def _sweep(rest, dims, ranks, closing=1):
    """The TT-SVD sweep: `rest` `(r_0 * D_1, ...)` -> cores `(r_k, D_k, r_{k+1})` at `ranks` (len(dims) + 1);
    the last core's right index has size `closing` (a ring's r_0 carried along as the last tensor index)."""
    cores = []
    for k, dk in enumerate(dims[:-1]):
        mat = rest.reshape(ranks[k] * dk, -1)
        u = _basis(mat, ranks[k + 1])
        cores.append(u.reshape(ranks[k], dk, ranks[k + 1]))
        rest = u.T @ mat
    cores.append(rest.reshape(ranks[-2], dims[-1], closing))
    return cores


def _tt(w, fmt):
    t = interleaved(w, fmt.n, fmt.m)
    cores = _sweep(t.reshape(t.shape[0], -1), t.shape, fmt.ranks)
    return [c.reshape(c.shape[0], nk, mk, c.shape[2]) for c, nk, mk in zip(cores, fmt.n, fmt.m)]


def _tr(w, fmt, sweeps=20, tol=1e-6):
    """TR-SVD (as `tensorly.decomposition.tensor_ring`, mode 0): `W` as the ring tensor `(n.., m..)`; the first
    core `(r_0, D_1, r_1)` from the first unfolding's leading r_0 r_1 singular vectors (as many as D_1 gives,
    zero columns past them, where TensorLy refuses), then the TT-SVD sweep with r_0 carried along as the last
    index. Then ALS sweeps from there (`tr_als`): the SVD fixes the split of r_0 r_1 in one step and is not the
    best fit (docs/decompose.md has the errors on the UCF11 kernel, with and without the sweeps)."""
    dims, r = tuple(fmt.n) + tuple(fmt.m), list(fmt.ranks)
    mat = np.reshape(w, (dims[0], -1))
    u = _basis(mat, r[0] * r[1])
    first = u.reshape(dims[0], r[0], r[1]).transpose(1, 0, 2)
    rest = (u.T @ mat).reshape(r[0], r[1], -1).transpose(1, 2, 0)                # (r_1, D_2..D_2d, r_0)
    cores = [first] + _sweep(rest.reshape(r[1] * dims[1], -1), dims[1:], r[1:] + [r[0]], closing=r[0])
    return tr_als(np.reshape(w, dims), cores, sweeps, tol)


def tr_als(t, cores, sweeps=20, tol=1e-6):
    """Tensor-ring alternating least squares: refine the ring `cores` of the tensor `t`.

    Parameters
    ----------
    t : ndarray `(D_0, ..., D_{N-1})`, the tensor to fit.
    cores : list of N ndarrays `(r_k, D_k, r_{k+1})`, `r_N = r_0` (the ring closes): the start, e.g. a TR-SVD.
        Its entries are overwritten as the sweeps go.
    sweeps : the most sweeps (each fits every core once, in order).
    tol : stop once a sweep lowers the relative error by less than `tol` of itself (0: run every sweep).

    Returns
    -------
    The fitted cores, in the same shapes.

    Each core in turn is the least-squares fit to `t` given the others (`_tr_core`), so the error never rises.
    Each fitted core is made left-orthogonal (QR), its R moved into the next core: the tensor is unchanged, and
    the ring does not drift to cores whose product cancels (with cores only normalized, a core's norm can grow by
    orders of magnitude over the sweeps and float32 then loses the fit). At the end all cores get the same norm.
    Complexity per core: contracting `t` with the other cores, `size(t) * r^2` multiply-adds (the chain `S` is
    never formed), and an `r^2 x r^2` least-squares solve.

    References
    ----------
    Q. Zhao, G. Zhou, S. Xie, L. Zhang, A. Cichocki. Tensor Ring Decomposition. arXiv:1606.05535, 2016.
    """
    norm2, previous, n = float(np.vdot(t, t)), None, len(cores)
    for _ in range(sweeps):
        for k in range(n):
            core, residual2 = _tr_core(t, cores, k, norm2)
            q, r = np.linalg.qr(core.reshape(-1, core.shape[2]))
            cores[k] = q.reshape(core.shape)
            cores[(k + 1) % n] = np.einsum("xy,yiz->xiz", r, cores[(k + 1) % n])
        error = math.sqrt(max(residual2, 0.0) / norm2) if norm2 else 0.0
        if previous is not None and previous - error <= tol * previous:
            break
        previous = error
    scale = [np.linalg.norm(c) for c in cores]          # the same norm in every core: float32 keeps them all
    if sweeps and min(scale) > 0:
        mean = math.exp(np.mean(np.log(scale)))
        cores = [c * (mean / s) for c, s in zip(cores, scale)]
    return cores


def _tr_core(t, cores, k, norm2):
    """(the least-squares core k given the others, `||t - fit||^2` from the normal equations: no reconstruction).

    With S the chain of the other cores `(b, rest, a)` and t's mode-k unfolding `T_k`, `T_k = G_(k) S_(a b)`: the
    fit is `Z Γ^+` with `Z = T_k S^T` and Γ = `S S^T`. Z is contracted with S in two halves of nearest size (the
    right half first: one intermediate of t's size times r^2 / that half's modes), Γ from the cores' transfer
    matrices (`r^2 x r^2` each), so S itself (t's size / D_k times r^2) is never formed."""
    n, dk = len(cores), t.shape[k]
    order = [(k + j) % n for j in range(1, n)]                 # the other cores in ring order after k
    a, b = cores[k].shape[0], cores[k].shape[2]
    h = _balanced_split([t.shape[j] for j in order])
    left = _chain([cores[j] for j in order[:h]]) if h else np.eye(b)[:, None, :]    # (b, PL, m)
    right = _chain([cores[j] for j in order[h:]])                                    # (m, PR, a)
    tk = np.transpose(t, [k] + order).reshape(dk * left.shape[1], right.shape[1])
    y = (tk @ right.transpose(1, 0, 2).reshape(right.shape[1], -1)).reshape(dk, left.shape[1], *right.shape[::2])
    z = np.einsum("ilma,blm->iab", y, left).reshape(dk, -1)    # (D_k, a b)
    transfer = np.eye(b * b)
    for j in order:
        g = cores[j]
        transfer = transfer @ np.einsum("xiy,uiv->xuyv", g, g).reshape(g.shape[0] ** 2, g.shape[2] ** 2)
    gram = transfer.reshape(b, b, a, a).transpose(2, 0, 3, 1).reshape(a * b, a * b)   # Γ[(a b), (a' b')]
    g = np.linalg.lstsq(gram, z.T, rcond=None)[0].T            # Γ is symmetric: G Γ = Z
    residual2 = norm2 - 2 * float(np.vdot(g, z)) + float(np.vdot(g @ gram, g))
    return g.reshape(dk, a, b).transpose(1, 0, 2), residual2


def _balanced_split(dims):
    """`h` that cuts `dims` into `dims[:h]`, `dims[h:]` of nearest products (both non-empty when there are two)."""
    if len(dims) < 2:
        return 0
    logs = np.cumsum(np.log(dims))
    return 1 + int(np.argmin(np.abs(2 * logs[:-1] - logs[-1])))


def _chain(cores):
    """The product of TR/TT cores `(r, D_j, r')` in order: `(r_first, prod D, r_last)`."""
    out = cores[0]
    for g in cores[1:]:
        out = np.einsum("apb,bdc->apdc", out, g).reshape(out.shape[0], -1, g.shape[2])
    return out


def _unfold(t, k):
    return np.moveaxis(t, k, 0).reshape(t.shape[k], -1)


def _khatri_rao(mats):
    """Column-wise Kronecker product, first matrix's index slowest: rows `(i_1, i_2, ...)` row-major."""
    out = mats[0]
    for m in mats[1:]:
        out = (out[:, None, :] * m[None, :, :]).reshape(-1, out.shape[1])
    return out


def _cp_exact(t, rank):
    """An exact CP of `t`: one column per multi-index of all modes but the largest (zero columns past it)."""
    big = int(np.argmax(t.shape))
    others = [k for k in range(t.ndim) if k != big]
    count = math.prod(t.shape[k] for k in others)
    grid = np.array(np.unravel_index(np.arange(count), [t.shape[k] for k in others]))
    factors = [None] * t.ndim
    for row, k in zip(grid, others):
        factors[k] = np.eye(t.shape[k])[row].T                                    # (I_k, count) one-hot
    factors[big] = np.moveaxis(t, big, -1).reshape(count, t.shape[big]).T         # the fibers
    return np.ones(rank), [np.pad(f, [(0, 0), (0, rank - count)]) for f in factors]


def _cp_als(t, rank, iterations=500, tol=1e-10):
    if rank >= math.prod(t.shape) // max(t.shape):
        return _cp_exact(t, rank)
    factors = [_basis(_unfold(t, k), rank) for k in range(t.ndim)]
    for k, f in enumerate(factors):                    # modes smaller than the rank: fill the zero columns
        if t.shape[k] < rank:
            f[:, t.shape[k]:] = np.random.default_rng(k).standard_normal((t.shape[k], rank - t.shape[k]))
    norm, previous = np.linalg.norm(t), None
    for _ in range(iterations):
        for k in range(t.ndim):
            others = [factors[j] for j in range(t.ndim) if j != k]
            gram = np.prod([f.T @ f for f in others], axis=0)
            factors[k] = np.linalg.lstsq(gram.T, (_unfold(t, k) @ _khatri_rao(others)).T, rcond=None)[0].T
        approx = (factors[0] @ _khatri_rao(factors[1:]).T).reshape(t.shape)
        error = np.linalg.norm(t - approx) / norm
        if previous is not None and abs(previous - error) < tol:
            break
        previous = error
    scales = np.prod([np.linalg.norm(f, axis=0) for f in factors], axis=0)
    factors = [f / np.where(np.linalg.norm(f, axis=0) > 0, np.linalg.norm(f, axis=0), 1) for f in factors]
    return scales, factors


def _cp(w, fmt):
    weights, factors = _cp_als(interleaved(w, fmt.n, fmt.m), fmt.rank)
    return [weights] + [f.reshape(nk, mk, fmt.rank) for f, nk, mk in zip(factors, fmt.n, fmt.m)]


def _tucker(core, factors):
    t = core
    for u in factors:                                    # contract the leading rank; the new mode goes last
        t = np.tensordot(t, u, axes=[[0], [1]])
    return t


def _hosvd(t, ranks):
    """Truncated HOSVD: factors = leading left singular vectors of each unfolding, core = projection."""
    factors = [_basis(_unfold(t, k), r) for k, r in enumerate(ranks)]
    core = t
    for u in factors:
        core = np.tensordot(core, u, axes=[[0], [0]])
    return core, factors


def _bt(w, fmt, sweeps=5):
    t = interleaved(w, fmt.n, fmt.m)
    blocks = [(np.zeros(fmt.ranks), [np.zeros((s, r)) for s, r in zip(t.shape, fmt.ranks)])
              for _ in range(fmt.blocks)]
    for sweep in range(1 + sweeps * (fmt.blocks > 1)):
        for b in range(fmt.blocks):
            others = sum(_tucker(*blk) for i, blk in enumerate(blocks) if i != b) if fmt.blocks > 1 else 0
            blocks[b] = _hosvd(t - others, fmt.ranks)
    out = []
    for core, factors in blocks:
        out += [core] + [u.reshape(nk, mk, u.shape[1]) for u, nk, mk in zip(factors, fmt.n, fmt.m)]
    return out


def _modes(node):
    """The mode indices under a dimension-tree node."""
    return [node] if isinstance(node, int) else _modes(node[0]) + _modes(node[1])


def _ht(w, fmt):
    t = interleaved(w, fmt.n, fmt.m)
    bases = {}
    for node, rank in zip(fmt.nodes[:-1], fmt.ranks[:-1]):       # every non-root node, from W itself
        modes = _modes(node)
        mat = np.moveaxis(t, modes, range(len(modes))).reshape(math.prod(t.shape[k] for k in modes), -1)
        bases[repr(node)] = _basis(mat, rank)
    transfers = []
    for node in fmt.inner_nodes():
        ul, ur = bases[repr(node[0])], bases[repr(node[1])]
        if node is fmt.tree:
            target = t.reshape(ul.shape[0], ur.shape[0])[..., None]
        else:
            target = bases[repr(node)].reshape(ul.shape[0], ur.shape[0], -1)
        transfers.append(np.einsum("pa,qb,pqc->abc", ul, ur, target))
    leaves = [bases[repr(k)].reshape(nk, mk, -1) for k, nk, mk in zip(range(fmt.d), fmt.n, fmt.m)]
    return leaves + transfers


def full_ranks(fmt_name, input_modes, output_modes):
    """The ranks at which `decompose` reconstructs any matrix exactly (bt: one block of full Tucker ranks)."""
    n, m = list(input_modes), list(output_modes)
    dims = [a * b for a, b in zip(n, m)]
    d = len(dims)
    if fmt_name == "tt":
        return [1] + [min(math.prod(dims[:k]), math.prod(dims[k:])) for k in range(1, d)] + [1]
    if fmt_name == "tr":       # a TT (closing rank 1) over the ring order, its ranks the TT-SVD's
        ring = n + m
        return [1] + [min(math.prod(ring[:k]), math.prod(ring[k:])) for k in range(1, 2 * d)]
    if fmt_name == "cp":
        return math.prod(dims) // max(dims)
    if fmt_name == "bt":
        return dims
    if fmt_name == "ht":
        nodes = post_order(dimension_tree(0, d))
        total = math.prod(dims)
        sizes = [math.prod(dims[k] for k in _modes(t)) for t in nodes[:-1]]
        return [min(s, total // s) for s in sizes] + [1]
    raise ValueError(f"unknown decomposition {fmt_name!r} (choose from {', '.join(FORMAT_NAMES)})")


def make_format(fmt_name, input_modes, output_modes, ranks=None, blocks=None):
    """The `ttrnn.formats` object; `ranks="full"` -> `full_ranks` (bt: one block)."""
    if isinstance(ranks, str):
        if ranks != "full":
            raise ValueError(f"ranks must be an int, a list or 'full', got {ranks!r}")
        ranks = full_ranks(fmt_name, input_modes, output_modes)
        blocks = 1 if fmt_name == "bt" else blocks
    return formats.make(fmt_name, input_modes, output_modes, ranks, blocks)


_METHODS = {"tt": _tt, "tr": _tr, "cp": _cp, "bt": _bt, "ht": _ht}


def decompose(w, fmt):
    """The weights of format `fmt` (a `ttrnn.formats` object, e.g. from `make_format`) fitted to the dense
    `(prod n, prod m)` matrix `w`, as float32 arrays in `fmt.weight_shapes()` order and shapes."""
    w = np.asarray(w, np.float64)
    if w.shape != (fmt.input_dim, fmt.output_dim):
        raise ValueError(f"the matrix is {w.shape}, the {fmt.NAME} format over {list(fmt.n)} -> {list(fmt.m)} "
                         f"needs ({fmt.input_dim}, {fmt.output_dim})")
    weights = _METHODS[fmt.NAME](w, fmt)
    for (name, shape), a in zip(fmt.weight_shapes(), weights):
        assert tuple(a.shape) == tuple(shape), (name, a.shape, shape)
    return [a.astype(np.float32) for a in weights]
