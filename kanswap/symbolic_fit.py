"""Batched fitting of ``y ≈ c * f(a * x + b) + d`` for many edges and library functions at once.

pykan's ``fit_params`` grid-searches (a, b) for one edge and one function: 3 rounds of a 101 x 101
grid, each round zooming on the best cell (the range shrinks to the two neighbouring grid points;
a best cell on the boundary shrinks only the boundary axis), scoring each cell by
``r2 = cov(f, y)^2 / (var(f) var(y) + 1e-4)`` (sums, not means; NaN -> 0); then (c, d) by least
squares. Every sample is evaluated at every cell: 3 * 10201 * N function values per (edge, function).

Here every (edge, function) pair is searched in one batch (only the function calls go function
by function), on pykan's own grid values (float32 ``linspace``), and a round costs far less:

- every cell is first scored on a compressed sample: the sorted x in ``nodes`` groups of equal
  size plus the 4 smallest and 4 largest samples on their own, each group its mean x, its count
  and its sum of centred y (float32; it only ranks cells; sin and x in closed form from the nodes'
  sums of sin(a x), cos(a x) or x, in float64, without a function value per cell);
- the ``top`` (128) best cells of that score are rescored on every sample, exactly as pykan
  scores them (float64); a zoomed round (both ranges shrunk, where r2 is smooth) also scores
  every 10th cell and then the 21 x 21 cells around the best of those exactly; the best exact
  score is the round's cell, and the zoom follows pykan's rule.

After the rounds, Levenberg-Marquardt on (a, b, c, d) moves off the grid while the exact r2
improves (pykan stops at its grid), so the r2 returned is never below that of the chosen cell.
(c, d) are the closed-form least-squares line of y on f(a x + b). ``exact=True`` skips the
compression (every cell on every sample, pykan's arithmetic in float64): the tests compare the two.
What the compression can miss: a narrow peak of r2 that rests on the few samples next to a pole
or a domain edge (1/x, sqrt, abs), on poor fits. Where cells tie exactly (log, sqrt, 1/x, abs:
every cell with the same b/a scores the same), pykan's float32 rounding picks one cell and this
float64 search another, and their zoomed rounds can end apart either way (up to 1.2e-3 in r2 at
r2 0.004 in the tests, ``exact=True`` included).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .symbolic_lib import _identity
from .threads import threads

__all__ = ["fit_affine", "fit_params", "r2_score"]

# float32's largest value: pykan scores in float32, where a cell whose sums overflow becomes NaN
# and scores 0; the float64 sums here are cut at the same point so such cells score 0 here too.
_F32_MAX = 3.4028234663852886e38


class _RowFuns:
    """Per-row functions for a batch of (function, edge) pairs: row r uses funs[fid[r]], with fid
    non-decreasing. Calling it on u (rows, ...) applies each function to its block of rows, so
    everything but the function calls runs batched over all pairs. ``sub(s, e)`` and
    ``select(index)`` are the same for a subset of the rows (index sorted)."""

    def __init__(self, funs: Sequence[Callable], fid: torch.Tensor):
        self.funs, self.fid = list(funs), fid
        ids, counts = torch.unique_consecutive(fid, return_counts=True)
        self.blocks = list(zip(ids.tolist(), counts.tolist(), strict=True))

    def sub(self, s: int, e: int) -> _RowFuns:
        return _RowFuns(self.funs, self.fid[s:e])

    def select(self, index: torch.Tensor) -> _RowFuns:
        return _RowFuns(self.funs, self.fid[index])

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        if len(self.blocks) == 1:
            return self.funs[self.blocks[0][0]](u)
        parts, row = [], 0
        for k, n in self.blocks:
            parts.append(self.funs[k](u[row:row + n]))
            row += n
        return torch.cat(parts)


def _r2(s_ff: torch.Tensor, s_fy: torch.Tensor, s_yy: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
    """pykan's score from centred sums: s_fy^2 / (s_ff s_yy + 1e-4); 0 where f was not finite or a
    float32 sum would have overflowed."""
    num = s_fy**2
    den = s_ff * s_yy
    ok = finite & (num < _F32_MAX) & (den < _F32_MAX) & (s_ff >= 0)
    r2 = num / (den + 1e-4)
    return torch.where(ok & torch.isfinite(r2), r2, torch.zeros_like(r2))


# Elements of one (rows, cells, samples) block of exact scores: the working set stays in cache
# (unchunked, 435 pairs x 562 cells x 1000 samples made 2 GB temporaries and a [2,5,1] KAN's
# auto_symbolic took 1.4 s per edge against 0.65 s for one edge alone).
_EXACT_BLOCK = 1 << 20


def r2_score(fun: Callable, x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact score of cells (a, b) (E, T) for samples x, y (E, N): (E, T), float64."""
    E, T = a.shape
    step = max(1, _EXACT_BLOCK // max(1, T * x.shape[1]))
    if E <= step:
        return _r2_block(fun, x, y, a, b)
    return torch.cat([_r2_block(fun.sub(s, s + step) if isinstance(fun, _RowFuns) else fun, x[s:s + step],
                                y[s:s + step], a[s:s + step], b[s:s + step]) for s in range(0, E, step)])


def _r2_block(fun: Callable, x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    x, y = x.double(), y.double()
    f = fun(torch.addcmul(b.unsqueeze(-1), a.unsqueeze(-1), x.unsqueeze(1)))  # (E, T, N)
    # a non-finite f makes both sums non-finite, which _r2 scores 0 (pykan: NaN -> 0)
    # in place unless a user function returned a broadcast view (see _approx_r2)
    fc = f.sub_(f.mean(-1, keepdim=True)) if f.is_contiguous() else f - f.mean(-1, keepdim=True)
    yc = y - y.mean(-1, keepdim=True)
    s_fy = torch.bmm(fc, yc.unsqueeze(-1))[..., 0]
    s_ff = fc.pow_(2).sum(-1)
    return _r2(s_ff, s_fy, (yc * yc).sum(-1, keepdim=True), torch.isfinite(s_ff) & torch.isfinite(s_fy))


def _compress(x: torch.Tensor, y: torch.Tensor, nodes: int, ends: int) -> tuple[torch.Tensor, ...]:
    """Samples (E, N) -> nodes (E, K): the sorted x in groups (the ``ends`` smallest and largest
    samples one group each, the rest in groups of equal size), each group's mean x, count and sum
    of centred y."""
    E, N = x.shape
    xs, order = x.sort(dim=1)
    yc = (y - y.mean(1, keepdim=True)).gather(1, order)
    ends = min(ends, N // 2)
    inner = N - 2 * ends
    K_in = max(1, min(nodes, inner)) if inner else 0
    pos = torch.arange(N, device=x.device)
    mid = ends + torch.div((pos - ends).clamp(0, max(inner - 1, 0)) * K_in, max(inner, 1), rounding_mode="floor")
    group = torch.where(pos < ends, pos, torch.where(pos >= N - ends, pos - (N - ends) + ends + K_in, mid))
    K = 2 * ends + K_in
    count = torch.zeros(K, dtype=x.dtype, device=x.device).index_add_(0, group, torch.ones_like(x[0]))
    sx = torch.zeros(E, K, dtype=x.dtype, device=x.device).index_add_(1, group, xs)
    sy = torch.zeros(E, K, dtype=x.dtype, device=x.device).index_add_(1, group, yc)
    return sx / count, count.expand(E, K).contiguous(), sy


def _approx_r2(fun: Callable, node_x, weight, node_y, s_yy, a_, b_, chunk_elems: int) -> torch.Tensor:
    """Score of every cell of the grids a_ (E, G) x b_ (E, G) on the compressed samples: (E, G, G),
    in float32 (it only ranks cells; the chosen ones are rescored exactly). A non-finite f makes
    the sums non-finite, which scores 0."""
    E, G = a_.shape
    K = node_x.shape[1]
    n = weight.sum(1)
    out = torch.empty(E, G, G, dtype=torch.float32, device=node_x.device)
    # every edge has the same group counts (``_compress``): one weight column for all rows
    node_x32, w, ny = node_x.float(), weight[0].float()[:, None], node_y.float()
    a32, b32 = a_.float(), b_.float()
    step = max(1, chunk_elems // (G * G * K))
    starts, row = [], 0
    for k, count in fun.blocks:
        if fun.funs[k] is torch.sin:
            _approx_r2_sin(out, slice(row, row + count), node_x, w[:, 0], node_y, n, s_yy, a_, b_)
        elif fun.funs[k] is _identity:
            _approx_r2_identity(out, slice(row, row + count), node_x, w[:, 0], node_y, n, s_yy, a_, b_)
        else:
            starts += [(s, min(s + step, row + count)) for s in range(row, row + count, step)]
        row += count
    for s, e_ in starts:
        sl = slice(s, e_)
        u = torch.addcmul(b32[sl, None, :, None], a32[sl, :, None, None], node_x32[sl, None, None, :])
        f = fun.sub(s, e_)(u).reshape(u.shape[0], G * G, K)
        if not f.is_contiguous():  # a user function's broadcast view: the in-place steps need own memory
            f = f.contiguous()
        # f minus its value at the middle node: a nearly constant f (a saturated tanh) would
        # otherwise lose its variance to cancellation in float32 (scores of 266 were seen)
        # (in place here and below, on the chunk's own temporaries: bitwise the same scores, auto_symbolic
        # on the reference KAN [9, 10, 10, 1] 1.09x faster, fit_affine alone, interleaved medians)
        f = f.sub_(f[:, :, K // 2:K // 2 + 1].clone())
        # sums over the K nodes: two matrix-vector products with the shared weights and one
        # reduction against each row's y sums (2.2-2.8x faster than two bmm's with per-row weights,
        # measured at (5, 10201, 40))
        e = f.shape[0]
        s_f = (f.reshape(-1, K) @ w).reshape(e, G * G)
        s_fy = (f * ny[sl, None, :]).sum(-1)
        s_ff = (f.mul_(f).reshape(-1, K) @ w).reshape(e, G * G) - s_f**2 / n[sl, None].float()
        finite = torch.isfinite(s_f) & torch.isfinite(s_fy) & torch.isfinite(s_ff)
        r2 = _r2(s_ff.double(), s_fy.double(), s_yy[sl, None], finite)
        # a score above 1 is impossible (Cauchy-Schwarz): what is left of cancellation scores 0
        out[sl] = torch.where(r2 <= 1, r2, torch.zeros_like(r2)).float().reshape(-1, G, G)
    return out


def _approx_r2_sin(out, sl, node_x, w, node_y, n, s_yy, a_, b_) -> None:
    """``_approx_r2`` for rows ``sl`` of sin, by the closed form sin(a x + b) = cos b sin(a x) + sin b cos(a x):
    the sums over the nodes of every (a, b) cell from those of sin(a x), cos(a x) (G K function values
    instead of G G K), in float64: fit_affine on the reference KAN [9, 10, 10, 1] (200 edges x 6 functions)
    1.07x faster (interleaved medians), the same functions chosen and no r2 lower (up 1.4e-10 at most)."""
    ax = a_[sl, :, None] * node_x[sl].double()[:, None, :]  # (e, G, K)
    b = b_[sl][:, None, :]  # (e, 1, G)
    _two_terms(out, sl, torch.sin(ax), torch.cos(ax), torch.cos(b), torch.sin(b), w, node_y, n, s_yy)


def _approx_r2_identity(out, sl, node_x, w, node_y, n, s_yy, a_, b_) -> None:
    """``_approx_r2`` for rows ``sl`` of x: a x + b is a (x - x_mid) once centred, in closed form from the
    nodes' sums of x (no function values): fit_affine on the reference KAN [9, 10, 10, 1] 1.08x faster
    (interleaved medians), the same functions chosen, r2 lower by 8e-15 at most (rounding), up to 9e-8.
    (x^2 the same way moved r2 by -1.7e-7 on one edge: left to the general path.)"""
    x = node_x[sl].double()[:, None, :]  # (e, 1, K)
    a, b = a_[sl][:, :, None], b_[sl][:, None, :]  # (e, G, 1), (e, 1, G)
    _two_terms(out, sl, x, x, a.expand(-1, -1, b.shape[2]), torch.zeros_like(a * b), w, node_y, n, s_yy)


def _two_terms(out, sl, A, B, ca, cb, w, node_y, n, s_yy) -> None:
    """Compressed scores of f = ca A + cb B (+ a constant) for rows ``sl``: A, B (e, G or 1, K) over
    the nodes, ca, cb (e, G, G) per cell; written to out[sl] as ``_approx_r2`` does, summed in float64."""
    K = A.shape[2]
    A = A - A[:, :, K // 2:K // 2 + 1]  # centred at the middle node, as _approx_r2
    B = B - B[:, :, K // 2:K // 2 + 1]
    w, ny = w.double(), node_y[sl].double()[:, None, :]
    pa, pb = (A @ w)[:, :, None], (B @ w)[:, :, None]
    aa, bb, ab = ((A * A) @ w)[:, :, None], ((B * B) @ w)[:, :, None], ((A * B) @ w)[:, :, None]
    ya, yb = (A * ny).sum(-1)[:, :, None], (B * ny).sum(-1)[:, :, None]
    s_f = ca * pa + cb * pb  # (e, G, G)
    s_fy = ca * ya + cb * yb
    s_ff = ca * ca * aa + 2 * ca * cb * ab + cb * cb * bb - s_f**2 / n[sl, None, None]
    r2 = _r2(s_ff, s_fy, s_yy[sl, None, None], torch.isfinite(s_ff) & torch.isfinite(s_fy))
    out[sl] = torch.where(r2 <= 1, r2, torch.zeros_like(r2)).float()


def _grid(lo: torch.Tensor, hi: torch.Tensor, G: int) -> torch.Tensor:
    """pykan's grids, (E,) ranges -> (E, G): ``torch.linspace`` in float32, value for value (its
    middle point of [-10, 10] is 1.5e-7, not 0, which gives 1/x a near-linear cell pykan uses, and
    zoomed ranges start from these values), held in float64."""
    pairs, inverse = torch.unique(torch.stack([lo, hi], dim=1), dim=0, return_inverse=True)
    rows = torch.stack([torch.linspace(float(a), float(b), G, dtype=torch.float32, device=lo.device)
                        for a, b in pairs.tolist()])
    return rows.to(lo.dtype)[inverse]


def _search(fun: Callable, x: torch.Tensor, y: torch.Tensor, a_range, b_range, grid_number: int, iteration: int,
            nodes: int, top: int, exact: bool, chunk_elems: int) -> tuple[torch.Tensor, torch.Tensor]:
    """pykan's zooming grid search for all E edges at once; returns the chosen (a, b) (E, 2) float64."""
    E, N = x.shape
    G = grid_number
    dev, dt = x.device, x.dtype
    lo_a = torch.full((E,), float(a_range[0]), dtype=dt, device=dev)
    hi_a = torch.full((E,), float(a_range[1]), dtype=dt, device=dev)
    lo_b = torch.full((E,), float(b_range[0]), dtype=dt, device=dev)
    hi_b = torch.full((E,), float(b_range[1]), dtype=dt, device=dev)
    yc = y - y.mean(1, keepdim=True)
    s_yy = (yc * yc).sum(1)
    if not exact:
        node_x, weight, node_y = _compress(x, y, nodes, ends=4)
    rows = torch.arange(E, device=dev)
    narrow = torch.zeros(E, dtype=torch.bool, device=dev)  # both ranges shrank in the previous round
    for _ in range(iteration):
        a_, b_ = _grid(lo_a, hi_a, G), _grid(lo_b, hi_b, G)
        if exact:
            a_cells = a_[:, :, None].expand(E, G, G).reshape(E, G * G)
            b_cells = b_[:, None, :].expand(E, G, G).reshape(E, G * G)
            best = torch.cat([r2_score(fun.sub(s, s + 1), x[s:s + 1], y[s:s + 1], a_cells[s:s + 1],
                                       b_cells[s:s + 1]).argmax(1) for s in range(E)])
        else:
            # every grid: the compressed look and its best cells rescored exactly
            approx = _approx_r2(fun, node_x, weight, node_y, s_yy, a_, b_, chunk_elems).reshape(E, G * G)
            cand = approx.topk(min(top, G * G), dim=1).indices.sort(dim=1).values  # sorted: ties -> first cell
            exact_r2 = r2_score(fun, x, y, a_.gather(1, cand // G), b_.gather(1, cand % G))
            best_r2, k = exact_r2.max(1)
            best = cand.gather(1, k[:, None])[:, 0]
            zoom = narrow.nonzero()[:, 0]
            if len(zoom):
                # a zoomed grid also gets the exact coarse-to-fine look (a sharp peak near a pole can
                # fall between the compressed look's best cells, and a smooth ridge the other way)
                z_best, z_r2 = _zoomed_best(fun.select(zoom), x[zoom], y[zoom], a_[zoom], b_[zoom])
                take = (z_r2 > best_r2[zoom]) | ((z_r2 == best_r2[zoom]) & (z_best < best[zoom]))
                best[zoom] = torch.where(take, z_best, best[zoom])
        ia, ib = best // G, best % G
        a_best, b_best = a_[rows, ia], b_[rows, ib]
        # pykan's zoom: an interior cell -> both ranges to its neighbours; a boundary cell -> only
        # the boundary axis shrinks to its last interval, the other range stays as it was.
        edge_a_lo, edge_a_hi = ia == 0, ia == G - 1
        edge_b_lo, edge_b_hi = ib == 0, ib == G - 1
        boundary = edge_a_lo | edge_a_hi | edge_b_lo | edge_b_hi
        inner_a = (a_[rows, (ia - 1).clamp(0, G - 1)], a_[rows, (ia + 1).clamp(0, G - 1)])
        inner_b = (b_[rows, (ib - 1).clamp(0, G - 1)], b_[rows, (ib + 1).clamp(0, G - 1)])
        new_lo_a = torch.where(boundary, torch.where(edge_a_lo, a_[:, 0], torch.where(edge_a_hi, a_[:, -2], lo_a)),
                               inner_a[0])
        new_hi_a = torch.where(boundary, torch.where(edge_a_lo, a_[:, 1], torch.where(edge_a_hi, a_[:, -1], hi_a)),
                               inner_a[1])
        new_lo_b = torch.where(boundary, torch.where(edge_b_lo, b_[:, 0], torch.where(edge_b_hi, b_[:, -2], lo_b)),
                               inner_b[0])
        new_hi_b = torch.where(boundary, torch.where(edge_b_lo, b_[:, 1], torch.where(edge_b_hi, b_[:, -1], hi_b)),
                               inner_b[1])
        lo_a, hi_a, lo_b, hi_b = new_lo_a, new_hi_a, new_lo_b, new_hi_b
        narrow = ~boundary
    return torch.stack([a_best, b_best], dim=1)


def _zoomed_best(fun: Callable, x: torch.Tensor, y: torch.Tensor, a_: torch.Tensor, b_: torch.Tensor,
                 stride: int = 10) -> torch.Tensor:
    """Best cell (flat index (E,), and its score) of a zoomed round's G x G grid, scored exactly: every
    ``stride``-th cell first, then every cell within ``stride`` of the best of those. A zoomed
    grid spans two cells of the previous round, where r2 varies smoothly: 562 exact cells instead
    of 10201 found the same cell as the full grid on the cases of tests/test_symbolic_fit.py."""
    E, G = a_.shape
    sub = torch.arange(0, G, stride, device=a_.device)
    if sub[-1] != G - 1:
        sub = torch.cat([sub, sub.new_tensor([G - 1])])
    S = len(sub)
    score = r2_score(fun, x, y, a_[:, sub, None].expand(E, S, S).reshape(E, -1),
                     b_[:, None, sub].expand(E, S, S).reshape(E, -1))
    k = score.argmax(1)
    ca, cb = sub[k // S], sub[k % S]
    win = torch.arange(-stride, stride + 1, device=a_.device)
    ia = (ca[:, None] + win).clamp(0, G - 1)  # (E, W); clamped duplicates score the same cell twice
    ib = (cb[:, None] + win).clamp(0, G - 1)
    W = len(win)
    fa = ia[:, :, None].expand(E, W, W).reshape(E, -1)
    fb = ib[:, None, :].expand(E, W, W).reshape(E, -1)
    fine = r2_score(fun, x, y, a_.gather(1, fa), b_.gather(1, fb))
    m = fine.argmax(1, keepdim=True)
    return (fa.gather(1, m) * G + fb.gather(1, m))[:, 0], fine.gather(1, m)[:, 0]


def _polish(fun: Callable, x: torch.Tensor, y: torch.Tensor, ab: torch.Tensor, rounds: int, lo: torch.Tensor,
            hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Levenberg-Marquardt on the least-squares fit c f(a x + b) + d, from ab (E, 2) and its best
    (c, d), kept inside the box [lo, hi] (2,) for (a, b); a step is kept only when pykan's score
    of the new (a, b) is higher, so the result never scores below the start. Returns (ab, r2)."""
    E = len(ab)
    r2 = r2_score(fun, x, y, ab[:, :1], ab[:, 1:])[:, 0]
    if rounds <= 0:
        return ab, r2
    c, d = _line(fun, x, y, ab)
    theta = torch.stack([ab[:, 0], ab[:, 1], c, d], dim=1)
    damping = torch.full((E,), 1e-3, dtype=x.dtype, device=x.device)
    eye = torch.eye(4, dtype=x.dtype, device=x.device)
    for _ in range(rounds):
        with torch.enable_grad():
            u = (theta[:, :1] * x + theta[:, 1:2]).requires_grad_(True)
            f = fun(u)
            (df,) = torch.autograd.grad(f.sum(), u)
        f, df = f.detach(), df.detach()
        if not (torch.isfinite(f).all() and torch.isfinite(df).all()):
            ok_rows = torch.isfinite(f).all(1) & torch.isfinite(df).all(1)
            f = torch.where(ok_rows[:, None], f, torch.zeros_like(f))
            df = torch.where(ok_rows[:, None], df, torch.zeros_like(df))
        else:
            ok_rows = torch.ones(E, dtype=torch.bool, device=x.device)
        res = theta[:, 2:3] * f + theta[:, 3:4] - y
        cdf = theta[:, 2:3] * df
        J = torch.stack([cdf * x, cdf, f, torch.ones_like(f)], dim=2)  # (E, N, 4)
        JtJ = J.transpose(1, 2) @ J
        g = (J.transpose(1, 2) @ res.unsqueeze(-1))[..., 0]
        scale = torch.diagonal(JtJ, dim1=1, dim2=2).clamp_min(1e-30)
        A = JtJ + damping[:, None, None] * torch.diag_embed(scale) + 1e-30 * eye
        step = torch.linalg.solve(A, -g.unsqueeze(-1))[..., 0]
        # rounded to float32, what the model stores: a step to a domain edge (sqrt, log) that float64
        # keeps inside could otherwise round across it, and the stored edge would score 0 (seen with
        # 50 steps: sqrt at pykan's r2 0.956 stored as NaN)
        trial_ab = torch.minimum(torch.maximum(theta[:, :2] + step[:, :2], lo), hi).float().double()
        trial = r2_score(fun, x, y, trial_ab[:, :1], trial_ab[:, 1:])[:, 0]
        better = (trial > r2) & ok_rows & torch.isfinite(step).all(1)
        c, d = _line(fun, x, y, trial_ab)
        theta = torch.where(better[:, None], torch.stack([trial_ab[:, 0], trial_ab[:, 1], c, d], dim=1), theta)
        r2 = torch.where(better, trial, r2)
        damping = torch.where(better, damping / 3, damping * 4)
    return theta[:, :2], r2


def fit_affine(x: torch.Tensor, y: torch.Tensor, funs: Sequence[Callable], a_range=(-10, 10), b_range=(-10, 10),
               grid_number: int = 101, iteration: int = 3, nodes: int = 32, top: int = 128, polish: int = 10,
               exact: bool = False, chunk_elems: int = 1 << 21) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``y ≈ c f(a x + b) + d`` for every edge and every function.

    x, y: (E, N) samples of E edges (inputs and outputs). funs: F torch functions (the same
    object twice is fitted once). Returns params (E, F, 4) = (a, b, c, d) and r2 (E, F), float64,
    r2 being pykan's score of the returned (a, b) on all samples. ``nodes``/``top`` size the
    compressed first look and the exact rescoring per round (see the module docstring), ``polish``
    the Levenberg-Marquardt steps at the end (0: stop at pykan's grid cell).
    """
    if x.dim() != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must both be (edges, samples), got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[1] < 2:
        raise ValueError(f"fitting needs at least 2 samples per edge, got {x.shape[1]}")
    if grid_number < 3 or iteration < 1:
        raise ValueError(f"grid_number must be >= 3 and iteration >= 1, got {grid_number}, {iteration}")
    x, y = x.detach().double(), y.detach().double()
    unique: list[Callable] = []
    slot = []  # position of each function in unique (the same object twice is fitted once)
    for fun in funs:
        ids = [id(g) for g in unique]
        if id(fun) not in ids:
            unique.append(fun)
            ids.append(id(fun))
        slot.append(ids.index(id(fun)))
    # One intra-op thread: the search is a few hundred ops on chunks of 2M elements, which two
    # threads on a busy 2-core machine slowed 15x (5 edges x 10 functions: 15.0 s vs 1.0 s, load 3-4).
    with threads(1):
        return _fit_all(x, y, unique, slot, a_range, b_range, grid_number, iteration, nodes, top, polish, exact,
                        chunk_elems)


def _fit_all(x, y, unique, slot, a_range, b_range, grid_number, iteration, nodes, top, polish, exact, chunk_elems):
    E, F = x.shape[0], len(unique)
    rows = _RowFuns(unique, torch.arange(F).repeat_interleave(E))
    xs, ys = x.repeat(F, 1), y.repeat(F, 1)  # (F E, N), function-major
    ab = _search(rows, xs, ys, a_range, b_range, grid_number, iteration, nodes, top, exact, chunk_elems)
    box = torch.tensor([[float(a_range[0]), float(b_range[0])], [float(a_range[1]), float(b_range[1])]],
                       dtype=x.dtype, device=x.device)
    ab, score = _polish(rows, xs, ys, ab, polish, box[0], box[1])
    c, d = _line(rows, xs, ys, ab)
    params = torch.stack([ab[:, 0], ab[:, 1], c, d], dim=1).reshape(F, E, 4).transpose(0, 1)
    idx = torch.tensor(slot, device=x.device)
    return params[:, idx].contiguous(), score.reshape(F, E).t()[:, idx].contiguous()


def _line(fun: Callable, x: torch.Tensor, y: torch.Tensor, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares (c, d) of y ≈ c f + d with f = f(a x + b) (non-finite values taken as 0, as
    pykan's nan_to_num; a constant f gives c = 0, d = mean(y))."""
    f = fun(ab[:, :1] * x + ab[:, 1:])
    f = torch.where(torch.isfinite(f), f, torch.zeros_like(f))
    fc = f - f.mean(1, keepdim=True)
    yc = y - y.mean(1, keepdim=True)
    var = (fc * fc).sum(1)
    c = torch.where(var > 0, (fc * yc).sum(1) / torch.where(var > 0, var, torch.ones_like(var)), torch.zeros_like(var))
    d = y.mean(1) - c * f.mean(1)
    return c, d


def fit_params(x: torch.Tensor, y: torch.Tensor, fun: Callable, a_range=(-10, 10), b_range=(-10, 10),
               grid_number: int = 101, iteration: int = 3, verbose: bool = True,
               device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """pykan's ``fit_params`` for one edge: x, y (N,) -> (tensor [a, b, c, d], r2), float32 on x's
    device as pykan returns them."""
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if x.dim() != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D of the same length, got {tuple(x.shape)} and {tuple(y.shape)}")
    params, r2 = fit_affine(x[None], y[None], [fun], a_range, b_range, grid_number, iteration)
    if verbose:
        print(f"r2 is {float(r2[0, 0])}")
        if r2[0, 0] < 0.9:
            print("r2 is not very high, please double check if you are choosing the correct symbolic function.")
    return params[0, 0].float(), r2[0, 0].float()
