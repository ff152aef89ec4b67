"""Neuron permutations that reduce the connection cost, as pure functions of score matrices.

pykan's ``auto_swap`` re-runs the model for every candidate swap. Swapping two neurons of a hidden
node layer only permutes rows of the incoming score matrix and columns of the outgoing one,
so the whole search can be done on the score matrices alone.

Conventions
-----------
* A *layer score matrix* ``S_l`` has pykan's orientation ``(n_out, n_in)``, i.e.
  ``(size of node layer l+1, size of node layer l)``, and is non-negative.
* Node ``k`` of a layer of ``n`` nodes sits at ``(k + 1/2) / n``.
* ``connection_cost = sum_l sum_{a,b} |u_a - v_b| * S_l[a, b]`` with ``u = positions(n_out)`` and
  ``v = positions(n_in)``.
* For hidden node layer ``l`` (``1 <= l <= L-1``) the incoming scores are ``A = S_{l-1}^T`` of shape
  ``(n_prev, n)`` and the outgoing scores ``B = S_l^T`` of shape ``(n, n_next)``. The *placement
  cost* ``M[i, p]`` is the cost of neuron ``i``'s edges if it sat at position ``p``, and
  ``delta(i, j) = M[i, j] + M[j, i] - M[i, i] - M[j, j]`` is the exact change of the connection cost
  when neurons ``i`` and ``j`` swap.
* A permutation ``perm`` of a node layer means ``new_order = old[perm]``: new position ``p`` holds
  old neuron ``perm[p]``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np
import torch
from torch import Tensor

from .placement import best_partners, placement_cost, positions, swap_deltas
from .placement import check_matrix as _check_matrix
from .placement import check_pair as _check_pair
from .placement import distances as _dist

__all__ = [
    "positions",
    "connection_cost",
    "placement_cost",
    "swap_deltas",
    "best_partners",
    "greedy_layer_perm",
    "greedy_perms",
    "optimal_perms",
    "swap_perms",
    "apply_perm_to_scores",
]

_METHODS = ("greedy", "optimal")
_REL_TOL = 1e-12


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------


def _check_scores(scores: Sequence[Tensor]) -> list[Tensor]:
    if isinstance(scores, Tensor) or not isinstance(scores, Sequence):
        raise ValueError("scores must be a list of 2-D score matrices (one per layer)")
    if len(scores) == 0:
        raise ValueError("scores must contain at least one layer score matrix")
    out = [_check_matrix(s, f"scores[{k}]") for k, s in enumerate(scores)]
    for k in range(len(out) - 1):
        if out[k + 1].shape[1] != out[k].shape[0]:
            raise ValueError(
                f"scores[{k}] has shape {tuple(out[k].shape)} (n_out, n_in) but scores[{k + 1}] has shape "
                f"{tuple(out[k + 1].shape)}: scores[{k + 1}].shape[1] must equal scores[{k}].shape[0]"
            )
    return out


def _check_perm(perm: Tensor, n: int) -> Tensor:
    perm = torch.as_tensor(perm)
    if perm.dim() != 1 or perm.shape[0] != n:
        raise ValueError(f"perm must have shape ({n},) for a layer of {n} nodes, got {tuple(perm.shape)}")
    if perm.dtype.is_floating_point or perm.dtype == torch.bool:
        raise ValueError(f"perm must be an integer tensor, got {perm.dtype}")
    if n and not torch.equal(torch.sort(perm.cpu()).values, torch.arange(n)):
        raise ValueError(f"perm must be a permutation of 0..{n - 1}")
    return perm.long()


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {_METHODS}")


# ----------------------------------------------------------------------------------------------
# costs
# ----------------------------------------------------------------------------------------------


def connection_cost(scores: Sequence[Tensor]) -> Tensor:
    """Connection cost of a network given its layer score matrices.

    Args:
        scores: ``L`` matrices, ``scores[l]`` of shape ``(n_{l+1}, n_l)`` (pykan's ``edge_scores``).

    Returns:
        0-d tensor ``sum_l sum_{a,b} |u_a - v_b| * scores[l][a, b]`` in the dtype of ``scores[0]``.
    """
    # Each layer's cost stands alone: a layer with mult nodes has more rows (subnodes) in the
    # matrix before it than columns (nodes) in the one after, so no chain check here.
    if isinstance(scores, Tensor) or not isinstance(scores, Sequence) or len(scores) == 0:
        raise ValueError("scores must be a non-empty list of 2-D score matrices (one per layer)")
    scores = [_check_matrix(m, f"scores[{k}]") for k, m in enumerate(scores)]
    total = torch.zeros((), dtype=scores[0].dtype, device=scores[0].device)
    for s in scores:
        total = total + (_dist(s.shape[0], s.shape[1], s.dtype, s.device) * s).sum()
    return total


# ----------------------------------------------------------------------------------------------
# permutations
# ----------------------------------------------------------------------------------------------


def apply_perm_to_scores(scores: Sequence[Tensor], l: int, perm: Tensor) -> list[Tensor]:
    """Reorder the neurons of hidden node layer ``l`` (``new_order = old[perm]``).

    Args:
        scores: ``L`` score matrices, ``scores[k]`` of shape ``(n_{k+1}, n_k)``.
        l: hidden node layer, ``1 <= l <= L-1``.
        perm: permutation of ``range(n_l)``, shape ``(n_l,)``.

    Returns:
        A new list: rows of ``scores[l-1]`` and columns of ``scores[l]`` permuted; others unchanged.
    """
    scores = _check_scores(scores)
    depth = len(scores)
    if not isinstance(l, int) or not 1 <= l <= depth - 1:
        raise ValueError(f"l must be a hidden node layer in 1..{depth - 1}, got {l!r}")
    perm = _check_perm(perm, scores[l].shape[1])
    out = list(scores)
    out[l - 1] = scores[l - 1][perm.to(scores[l - 1].device)]
    out[l] = scores[l][:, perm.to(scores[l].device)]
    return out


def _layer_m(scores: list[Tensor], l: int) -> np.ndarray:
    """Float64 numpy placement cost of hidden node layer ``l`` (no validation).

    CUDA float32 scores go through the Triton kernel (``kanswap.kernels.swap_cost``): M in float32,
    so decisions on near-ties at float32 noise level can differ from the CPU path's float64 ones.
    """
    if scores[l].is_cuda and scores[l].dtype == torch.float32:
        from .kernels.swap_cost import placement_cost_and_partners

        return placement_cost_and_partners(scores[l - 1].T, scores[l].T)[0].double().cpu().numpy()
    a = scores[l - 1].T.to(torch.float64)
    b = scores[l].T.to(torch.float64)
    n_prev, n = a.shape
    m = a.T @ _dist(n_prev, n, torch.float64, a.device) + b @ _dist(b.shape[1], n, torch.float64, a.device)
    return m.cpu().numpy()


def _greedy_from_m(m: np.ndarray) -> np.ndarray:
    """pykan's greedy pass on one layer, with ``M`` fixed (neighbour layers fixed). O(n^2)."""
    n = m.shape[0]
    perm = np.arange(n)
    cur = np.diagonal(m).copy()  # cur[p] = m[perm[p], p]
    for i in range(n):
        pi = perm[i]
        # cost change of swapping positions i and j, for every j
        delta = (m[pi] + m[perm, i]) - cur[i] - cur
        j = int(np.argmin(delta))
        if j != i:
            perm[i], perm[j] = perm[j], pi
            cur[i] = m[perm[i], i]
            cur[j] = m[perm[j], j]
    return perm


def greedy_layer_perm(a_in: Tensor, b_out: Tensor) -> Tensor:
    """pykan's greedy ``auto_swap_l`` decision sequence on one hidden layer.

    For positions ``i = 0..n-1``: for every ``j`` in ``0..n-1`` (``j = i`` included, ``j < i`` may undo
    an earlier placement) consider swapping the neurons at positions ``i`` and ``j``; apply the ``j``
    with the smallest resulting cost, first minimum on ties. Candidate costs are compared through the
    exact swap deltas computed in float64 (``j = i`` gives exactly 0), so near-ties at float32 noise
    level may resolve differently than in pykan, which compares float32 totals from re-run models.

    Args:
        a_in: incoming scores ``S_{l-1}^T``, shape ``(n_prev, n)``.
        b_out: outgoing scores ``S_l^T``, shape ``(n, n_next)``.

    Returns:
        ``perm``, int64 of shape ``(n,)`` on ``a_in``'s device: new position ``p`` holds old neuron
        ``perm[p]``.
    """
    _check_pair(a_in, b_out)
    m = _layer_m([a_in.T, b_out.T], 1)
    return torch.from_numpy(_greedy_from_m(m)).to(a_in.device)


def greedy_perms(scores: Sequence[Tensor]) -> list[Tensor]:
    """Greedy (pykan ``auto_swap``) permutations of all hidden node layers.

    Hidden layers ``l = 1..L-1`` are processed in order; each uses its own width (pykan's D2 bug,
    ``num = width_in[1]`` for every layer, is not replicated) and sees the matrices already permuted by
    the earlier layers.

    Args:
        scores: ``L`` score matrices, ``scores[l]`` of shape ``(n_{l+1}, n_l)``.

    Returns:
        ``L-1`` int64 permutations, ``perms[l-1]`` of shape ``(n_l,)``, relative to the original
        indexing, to be applied with :func:`apply_perm_to_scores` (in any order: they commute).
    """
    scores = _check_scores(scores)
    return _greedy_perms(scores)


def _greedy_perms(scores: list[Tensor]) -> list[Tensor]:
    cur = list(scores)
    perms = []
    for l in range(1, len(cur)):
        p = torch.from_numpy(_greedy_from_m(_layer_m(cur, l)))
        cur = _apply(cur, l, p)
        perms.append(p)
    return [p.to(scores[0].device) for p in perms]


def _apply(scores: list[Tensor], l: int, perm: Tensor) -> list[Tensor]:
    out = list(scores)
    out[l - 1] = scores[l - 1][perm.to(scores[l - 1].device)]
    out[l] = scores[l][:, perm.to(scores[l].device)]
    return out



# ----------------------------------------------------------------------------------------------
# optimal: assignment descents from several starts, an exact method for small layers
# ----------------------------------------------------------------------------------------------
#
# Everything below works on float64 numpy copies: ``s[k]`` of shape (n_{k+1}, n_k) indexed by the
# original neurons, and ``full``, the order of every node layer (``full[0]`` and ``full[L]`` are
# the identity; ``full[l][p]`` is the original neuron at position p).

# Restarts are counted in work, not in seconds, so that a result never depends on the machine's
# load: one descent sweep costs about ``sum_l n_l^2 (n_{l-1} + n_{l+1})`` multiply-adds, and the
# starts after the first get ``_START_WORK`` of them in all (at most ``_MAX_STARTS``). On this
# 2-core machine that is ~1 s at width 64 and none at width 1024 (one sweep there is ~3e9).
_START_WORK = 3e7
_MAX_STARTS = 48
# The exact method enumerates every order of one parity class of hidden layers (the other class
# is then solved exactly by assignments); up to this many orders (~10 us each at width 8).
_EXACT_MAX = 720
# scipy's assignment releases the GIL: 2 x 1024-wide in 0.10 s on two threads against 0.18 s one
# after the other; below this width a thread pool's overhead is larger than the gain.
_POOL_MIN_WIDTH = 256
# A module's nodes are made contiguous when that raises the cost by at most this share (what
# moving nodes without strong edges costs on trained KANs: below 1e-6 of the cost).
_CONTIGUITY_TOL = 1e-4


def _np_dist(n_a: int, n_b: int) -> np.ndarray:
    """``|positions(n_a)[:, None] - positions(n_b)[None, :]|`` in float64 numpy, shape (n_a, n_b)."""
    return np.abs(((np.arange(n_a) + 0.5) / n_a)[:, None] - ((np.arange(n_b) + 0.5) / n_b)[None, :])


def _placement(s: list[np.ndarray], dist: list[np.ndarray], full: list[np.ndarray], l: int) -> np.ndarray:
    """Placement cost of hidden layer l, (n_l, n_l): row = original neuron, column = position,
    with the neighbour layers in the orders ``full``."""
    return s[l - 1][:, full[l - 1]] @ dist[l - 1].T + s[l][full[l + 1]].T @ dist[l]


def _total(s: list[np.ndarray], dist: list[np.ndarray], full: list[np.ndarray]) -> float:
    return sum(float((d * t[full[k + 1]][:, full[k]]).sum()) for k, (t, d) in enumerate(zip(s, dist, strict=True)))


def _assign(m: np.ndarray) -> np.ndarray:
    """Position of every neuron in the cheapest assignment of ``m`` (row = neuron)."""
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(m)[1]


def _descent(s: list[np.ndarray], dist: list[np.ndarray], full: list[np.ndarray], max_sweeps: int, tol: float,
             max_swaps: int, pool: ThreadPoolExecutor | None) -> tuple[list[np.ndarray], float]:
    """Block-coordinate descent from the orders ``full`` (one linear assignment per layer), then a
    pairwise polish after an early stop. Never increases the cost; returns the orders and cost."""
    full = [p.copy() for p in full]
    depth = len(s)
    cc = _total(s, dist, full)
    # a layer whose neighbours did not move since its last assignment is already optimal
    fresh = [True] + [False] * (depth - 1) + [True]
    # Layer l's placement cost depends only on layers l-1 and l+1, so the odd layers are
    # independent given the even ones and vice versa: each half is solved at once.
    halves = [range(1, depth, 2), range(2, depth, 2)]
    for _ in range(max_sweeps):
        gain = 0.0
        for half in halves:
            todo = [l for l in half if not fresh[l]]
            ms = [_placement(s, dist, full, l) for l in todo]
            cols = pool.map(_assign, ms) if pool is not None and len(ms) > 1 else map(_assign, ms)
            for l, m, col in zip(todo, ms, cols, strict=True):
                idx = np.arange(m.shape[0])
                old, new = float(m[full[l], idx].sum()), float(m[idx, col].sum())
                fresh[l] = True
                if new < old - _REL_TOL * abs(old):
                    full[l] = np.argsort(col)
                    fresh[l - 1] = fresh[l + 1] = False
                    gain += old - new  # M holds all of layer l's edges: the exact change
        improved = gain > tol * abs(cc)
        cc -= gain
        if not improved or all(fresh[1:depth]):
            break
    if not all(fresh[1:depth]):
        # Stopped early. (After exact convergence every layer is an assignment optimum given its
        # neighbours: no swap inside one layer can lower the cost, so the polish would find nothing.)
        cc = _pairwise_polish([t[full[k + 1]][:, full[k]] for k, t in enumerate(s)], dist, full[1:depth], cc,
                              max_swaps)
    return full, cc


def _pairwise_polish(s: list[np.ndarray], dist: list[np.ndarray], perms: list[np.ndarray], cc: float,
                     max_swaps: int) -> float:
    """Best-improvement pairwise swaps over all hidden layers until none improves, or ``max_swaps``
    swaps (in place).

    ``s`` are the current float64 score matrices, ``perms`` the orders that produced them.
    After a swap in layer ``l``, its own ``M`` only has two rows exchanged and the neighbours' ``M``
    get a rank-1 update, so one step costs O(n^2) instead of three matrix products.
    """
    depth = len(s)
    pos = {n: (np.arange(n) + 0.5) / n for t in s for n in t.shape}
    ms = {l: s[l - 1] @ dist[l - 1].T + s[l].T @ dist[l] for l in range(1, depth)}

    def deltas(m: np.ndarray) -> np.ndarray:
        d = np.diagonal(m)
        return (m + m.T) - d[:, None] - d[None, :]

    ds = {l: deltas(m) for l, m in ms.items()}
    for _ in range(max_swaps):
        best = (0.0, 0, 0, 0)
        for l in range(1, depth):
            k = int(np.argmin(ds[l]))
            v = float(ds[l].flat[k])
            if v < best[0]:
                n = ds[l].shape[0]
                best = (v, l, k // n, k % n)
        dmin, l, i, j = best
        if not dmin < -_REL_TOL * abs(cc):
            return cc
        x = pos[s[l].shape[1]]
        if l + 1 < depth:  # layer l is the previous layer of l+1: rows of its a_in move
            y = pos[s[l].shape[0]]
            ms[l + 1] += np.outer(s[l][:, i] - s[l][:, j], np.abs(x[j] - y) - np.abs(x[i] - y))
        if l - 1 >= 1:  # layer l is the next layer of l-1: columns of its b_out move
            y = pos[s[l - 1].shape[1]]
            ms[l - 1] += np.outer(s[l - 1][i] - s[l - 1][j], np.abs(x[j] - y) - np.abs(x[i] - y))
        ms[l][[i, j]] = ms[l][[j, i]]
        s[l - 1][[i, j]] = s[l - 1][[j, i]]
        s[l][:, [i, j]] = s[l][:, [j, i]]
        perms[l - 1][[i, j]] = perms[l - 1][[j, i]]
        for k in (l - 1, l, l + 1):
            if k in ms:
                ds[k] = deltas(ms[k])
        cc += dmin
    return cc


def _exact(s: list[np.ndarray], dist: list[np.ndarray]) -> tuple[list[np.ndarray], float] | None:
    """The global minimum when one parity class of hidden layers has at most ``_EXACT_MAX`` orders
    (a single hidden layer: none to enumerate): every order of that class, the other class solved by
    one assignment per layer (its layers are not neighbours, so that is exact). None otherwise."""
    depth = len(s)
    widths = [t.shape[1] for t in s]
    classes = [range(1, depth, 2), range(2, depth, 2)]
    counts = [math.prod(math.factorial(widths[l]) for l in c) for c in classes]
    if min(counts) > _EXACT_MAX:
        return None
    enum, solve = (classes[0], classes[1]) if counts[0] <= counts[1] else (classes[1], classes[0])
    best: tuple[list[np.ndarray], float] | None = None
    base = [np.arange(n) for n in widths] + [np.arange(s[-1].shape[0])]
    for combo in itertools.product(*(itertools.permutations(range(widths[l])) for l in enum)):
        full = list(base)
        for l, p in zip(enum, combo, strict=True):
            full[l] = np.array(p)
        for l in solve:
            full[l] = np.argsort(_assign(_placement(s, dist, full, l)))
        c = _total(s, dist, full)
        if best is None or c < best[1] - _REL_TOL * abs(best[1]):
            best = (full, c)
    return best


def _drawing(s: list[np.ndarray], power: float) -> np.ndarray:
    """Positions of all nodes (layer after layer) that minimise ``sum s^power (x_a - x_b)^2`` with
    the input and output layers fixed at their places: one linear solve (a layered-graph drawing)."""
    depth = len(s)
    widths = [t.shape[1] for t in s] + [s[-1].shape[0]]
    off = np.cumsum([0] + widths)
    w = np.zeros((off[-1], off[-1]))
    for k, t in enumerate(s):
        w[off[k + 1]:off[k + 2], off[k]:off[k + 1]] = t**power
    w = w + w.T
    lap = np.diag(w.sum(1)) - w
    x = np.zeros(off[-1])
    fixed = np.zeros(off[-1], dtype=bool)
    for k in (0, depth):
        fixed[off[k]:off[k + 1]] = True
        x[off[k]:off[k + 1]] = (np.arange(widths[k]) + 0.5) / widths[k]
    free = ~fixed
    # a tiny diagonal keeps nodes without edges (a singular block) solvable: they stay at 0
    a = lap[np.ix_(free, free)] + 1e-12 * (1 + np.abs(lap).max()) * np.eye(int(free.sum()))
    x[free] = np.linalg.solve(a, -lap[np.ix_(free, fixed)] @ x[fixed])
    return x


def _starts(s: list[np.ndarray], count: int, seed: int):
    """``count`` starting orders: the layered-graph drawing (:func:`_drawing`) on the scores and on
    their squares, then random orders alternating with the first drawing jittered by 0.3 times each
    layer's spread."""
    rng = np.random.default_rng(seed)
    widths = [t.shape[1] for t in s] + [s[-1].shape[0]]
    off = np.cumsum([0] + widths)
    ident = [np.arange(widths[0])], [np.arange(widths[-1])]
    drawings: list[np.ndarray] = []

    def ordered(x: np.ndarray, noise: float) -> list[np.ndarray]:
        hidden = []
        for k in range(1, len(s)):
            xk = x[off[k]:off[k + 1]]
            hidden.append(np.argsort(xk + noise * (xk.std() + 1e-12) * rng.standard_normal(xk.shape[0]), kind="stable")
                          if noise else np.argsort(xk, kind="stable"))
        return ident[0] + hidden + ident[1]

    for r in range(count):
        if r < 2:
            drawings.append(_drawing(s, 1.0 + r))
            yield ordered(drawings[-1], 0.0)
        elif r % 2:
            yield ordered(drawings[0], 0.3)
        else:
            yield ident[0] + [rng.permutation(n) for n in widths[1:-1]] + ident[1]


def _contiguous_modules(s: list[np.ndarray], dist: list[np.ndarray], full: list[np.ndarray], cc: float,
                        threshold: float) -> list[np.ndarray]:
    """Make every module's nodes (``find_modules``' ``nodes[m]`` with ``threshold``) sit in contiguous
    positions of each hidden layer, where that costs at most ``_CONTIGUITY_TOL`` of the cost.

    The optimum leaves nodes without strong edges (e.g. a trained KAN's unused nodes) wherever
    they cost least, which can be between a module's nodes. Each module's nodes move as a block to
    their mean position; the other nodes keep theirs; the relative order inside a block is kept.
    """
    from .modules import _layer_modules

    full = [p.copy() for p in full]
    for l in range(1, len(s)):
        blocks = [nd for nd in _layer_modules(l - 1, s[l - 1], threshold).nodes if len(nd) > 1]
        where = np.argsort(full[l])  # position of each original neuron
        spans = [where[nd] for nd in blocks]
        if all(p.max() - p.min() + 1 == len(p) for p in spans):
            continue
        key = [(float(p), 1, 0) for p in range(len(where))]  # (where, after blocks on a tie, which)
        for b, p in enumerate(spans):
            for q in p:
                key[q] = (float(p.mean()), 0, b)
        # a block's nodes keep their relative order (sorted() is stable)
        order = np.array(sorted(range(len(key)), key=key.__getitem__))
        trial = list(full)
        trial[l] = full[l][order]
        c = _total(s, dist, trial)
        if c <= cc + _CONTIGUITY_TOL * abs(cc):
            full, cc = trial, c
    return full


def optimal_perms(scores: Sequence[Tensor], max_sweeps: int = 100, tol: float = 1e-3,
                  max_swaps: int | None = None, seed: int = 0, threshold: float = 0.1) -> list[Tensor]:
    """Permutations of all hidden node layers that minimise the connection cost, as well as it can.

    With its neighbour layers fixed, the best order of one hidden layer is a linear assignment on its
    placement cost ``M`` (``scipy.optimize.linear_sum_assignment``). A *descent* sweeps the layers
    (odd ones, then even ones) until a sweep improves the cost by no more than the relative ``tol``
    (or ``max_sweeps`` sweeps), then, if it stopped early, polishes with best-improvement pairwise
    swaps. Descents stop in local optima (a trained [9, 6, 8, 4, 1] KAN: 3% above the best of 20
    random starts when started from greedy only), so:

    * **exact** when one parity class of hidden layers has at most 720 orders (always for a single
      hidden layer): every order of that class, the other class solved by assignments;
    * otherwise a descent from the greedy order (:func:`greedy_perms`), then descents from further
      starts (two layered-graph drawings, then random orders alternating with jittered drawings,
      from ``seed``), as many as a work budget allows: ``3e7 / sum_l n_l^2 (n_{l-1} + n_{l+1})``,
      at most 48 (48 for the reference KAN, ~20 at width 64, none at width 1024). The best is kept.

    For wide, nearly degenerate problems (e.g. uniform random scores of 1024-wide layers) the sweeps
    converge slowly (sweep gains 1200, 330, 130, 62, 35, 22, ... on a cost of 3.5e5) and every
    assignment costs ~0.5 s at n=1024: the default ``tol`` of 1e-3 stops once a sweep gains less
    than 0.1% of the cost (on a random-init MLP [64, 1024, 1024, 1024, 10]: cost 12079 in 6.5 s,
    against 12070 in 18 s with 1e-4; greedy 12127). The polish after an early stop runs for at most
    ``max_swaps`` swaps (each O(n^2), ~40 ms at n=1024: by default 2e7 / n^2 of them, at least 16).

    Finally each module's nodes (``kanswap.modules``, with ``threshold``) are made contiguous in
    every hidden layer where that raises the cost by at most 1e-4 of it. Never above the greedy
    cost; deterministic (no clock: the budget is counted in work).

    Args:
        scores: ``L`` score matrices, ``scores[l]`` of shape ``(n_{l+1}, n_l)``.
        max_sweeps: maximum number of assignment sweeps per descent (``>= 0``; 0 means polish only).
        tol: a descent stops when a sweep lowers the cost by no more than ``tol * cost`` (``>= 0``).
        max_swaps: cap on polish swaps after an early stop (``None``: max(16, 2e7 / n_max^2)).
        seed: seed of the random starts.
        threshold: strong-edge threshold of the modules made contiguous (see ``find_modules``).

    Returns:
        ``L-1`` int64 permutations, ``perms[l-1]`` of shape ``(n_l,)``, as in :func:`greedy_perms`.
    """
    scores = _check_scores(scores)
    if isinstance(max_sweeps, bool) or not isinstance(max_sweeps, int) or max_sweeps < 0:
        raise ValueError(f"max_sweeps must be a non-negative int, got {max_sweeps!r}")
    if not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"tol must be a non-negative number, got {tol!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    from .modules import _check_threshold

    threshold = _check_threshold(threshold)
    device = scores[0].device
    depth = len(scores)
    if depth == 1:
        return []
    s = [t.detach().to(torch.float64).cpu().numpy() for t in scores]
    dist = [_np_dist(*t.shape) for t in s]
    widths = [t.shape[1] for t in s] + [s[-1].shape[0]]
    if max_swaps is None:
        # Each polish swap costs O(n^2): unbounded in effect for small layers, ~16 at n = 1024.
        max_swaps = max(16, int(2e7 / max(widths[1:-1]) ** 2))
    greedy = [p.numpy() for p in _greedy_perms([torch.from_numpy(t) for t in s])]
    start = [np.arange(widths[0])] + greedy + [np.arange(widths[-1])]
    best = _exact(s, dist) if max_sweeps > 0 else None
    if best is None or best[1] > _total(s, dist, start):  # (the exact optimum is never above greedy)
        work = sum(widths[l] ** 2 * (widths[l - 1] + widths[l + 1]) for l in range(1, depth))
        n_starts = min(_MAX_STARTS, int(_START_WORK / work)) if max_sweeps > 0 else 0
        with ThreadPoolExecutor(max_workers=2) if max(widths[1:-1]) >= _POOL_MIN_WIDTH else nullcontext() as pool:
            best = _descent(s, dist, start, max_sweeps, float(tol), int(max_swaps), pool)
            for other in _starts(s, n_starts, seed):
                cand = _descent(s, dist, other, max_sweeps, float(tol), int(max_swaps), pool)
                if cand[1] < best[1] - _REL_TOL * abs(best[1]):
                    best = cand
    full = _contiguous_modules(s, dist, best[0], best[1], threshold)
    return [torch.from_numpy(p).to(device) for p in full[1:depth]]


def layer_perms(scores: Sequence[Tensor], layers: Sequence[int], method: str = "greedy") -> dict[int, Tensor]:
    """Permutations of the hidden node layers in ``layers`` (others stay fixed), as ``{l: perm}``.

    All hidden layers at once is :func:`swap_perms`; a subset is solved layer by layer in the given
    order, each with its neighbours fixed (``auto_swap_l``), on the matrices permuted so far.
    """
    _check_method(method)
    scores = _check_scores(scores)
    depth = len(scores)
    if list(layers) == list(range(1, depth)):
        return {l: p for l, p in zip(layers, swap_perms(scores, method), strict=True)}
    out = {}
    for l in layers:
        if not isinstance(l, int) or not 1 <= l <= depth - 1:
            raise ValueError(f"l must be a hidden node layer in 1..{depth - 1}, got {l!r}")
        out[l] = swap_perms([scores[l - 1], scores[l]], method)[0]
        scores = apply_perm_to_scores(scores, l, out[l])
    return out


def swap_perms(scores: Sequence[Tensor], method: str = "greedy") -> list[Tensor]:
    """Hidden-layer permutations by ``method``: ``'greedy'`` (:func:`greedy_perms`, pykan's
    ``auto_swap``) or ``'optimal'`` (:func:`optimal_perms`). Returns ``L-1`` int64 permutations."""
    _check_method(method)
    return greedy_perms(scores) if method == "greedy" else optimal_perms(scores)
