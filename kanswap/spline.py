"""B-spline math on per-input knot grids: basis, derivative, grids and least-squares fits.

This is the reference path: plain PyTorch, exact to float rounding against pykan's Cox-de Boor
recursion, and what every Triton kernel is checked against.

Conventions (pykan's):
- a layer grid is ``(in_dim, G + 2k + 1)``: G intervals over the grid range, extended by k knots
  on each side; it yields ``G + k`` basis functions of order k per input;
- order-0 functions are half-open indicators ``g_t <= x < g_{t+1}``, so every basis function is
  zero at or beyond the outermost knots;
- terms whose knot span is zero (repeated knots) count as 0 (the standard rule; pykan's
  ``nan_to_num`` after each order instead zeroes whole functions there).

Unlike pykan, the basis is never built by the full recursion over all G + k functions: each input's
knot interval is found once (a comparison with every knot, counted) and only k + 1 functions are
computed: a window of consecutive basis functions that covers the interval's non-zero ones. On
every interval they are polynomials of degree k in the interval fraction u, evaluated by Horner
from per-interval coefficient tables (the exact uniform B-spline matrix on uniform grids, fitted
once per grid value on updated ones, cached). de Boor's triangle serves k = 0, k > 3 on
non-uniform grids and the fits of those polynomials.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

__all__ = [
    "extend_grid",
    "uniform_grid",
    "bspline_local",
    "bspline_basis",
    "bspline_dense",
    "coef_to_curve",
    "curve_to_coef",
    "grid_from_samples",
]


def extend_grid(grid: torch.Tensor, k: int) -> torch.Tensor:
    """Add k knots on each side of every row, spaced by the row's mean spacing.

    grid: (n, P) -> (n, P + 2k). The step is ``(last - first) / (P - 1)`` of the given row. Knots
    are added one at a time (first - h, then that - h, ...) as pykan does, so the float rounding,
    and hence the grid, is bitwise pykan's.
    """
    if grid.dim() != 2:
        raise ValueError(f"grid must be 2-D (n, P), got shape {tuple(grid.shape)}")
    h = (grid[:, -1:] - grid[:, :1]) / (grid.shape[1] - 1)
    left, right = [grid[:, :1]], [grid[:, -1:]]
    for _ in range(k):
        left.insert(0, left[0] - h)
        right.append(right[-1] + h)
    return torch.cat(left[:-1] + [grid] + right[1:], dim=1)


def uniform_grid(
    in_dim: int, num: int, k: int, grid_range=(-1.0, 1.0), dtype=torch.float32, device=None
) -> torch.Tensor:
    """The extended uniform layer grid of pykan's KANLayer init: (in_dim, num + 2k + 1)."""
    base = torch.linspace(grid_range[0], grid_range[1], num + 1, dtype=dtype, device=device)
    return extend_grid(base.expand(in_dim, num + 1), k)


@functools.cache
def _uniform_poly(k: int) -> torch.Tensor:
    """C (k+1, k+1), float64: on a uniform grid the k+1 local functions at fraction u in [0, 1) of
    their interval are [1, u, .., u^k] @ C (the uniform B-spline basis matrix). Found once per k by
    fitting de Boor's values at k+1 points."""
    u = (torch.arange(k + 1, dtype=torch.float64) + 0.5) / (k + 1)
    knots = torch.arange(2 * k + 2, dtype=torch.float64).unsqueeze(0)
    values = _de_boor(u.unsqueeze(1) + k, knots, k, torch.full((k + 1, 1), k), False)[0][:, 0]
    poly = torch.linalg.solve(torch.linalg.vander(u, N=k + 1), values)
    # k! C is an integer matrix: snapping removes the solve's rounding, so that e.g. the last
    # function is exactly 0 at u = 0 (a point on the first knot gets an exact 0).
    scale = math.factorial(k)
    return torch.round(poly * scale) / scale


def _uniform_step(grid: torch.Tensor) -> torch.Tensor | None:
    """1/h per row (n,) when every row of grid is uniform to within rounding, else None.

    "Within rounding" is 1e-6 of the step in float32 (a float32 linspace grid jitters by ~3e-7 of
    h, and the closed form then stays within ~2e-7 of de Boor's values) and 1e-13 in float64, so
    float64 callers get de Boor's exact values on any grid that is not uniform to float64 precision.
    """
    tol = 1e-13 if grid.dtype == torch.float64 else 1e-6
    diffs = grid[:, 1:] - grid[:, :-1]
    h = (grid[:, -1] - grid[:, 0]) / (grid.shape[1] - 1)
    if not bool((h > 0).all()) or not bool(((diffs - h.unsqueeze(1)).abs() <= tol * h.unsqueeze(1)).all()):
        return None
    return 1.0 / h


def _de_boor(x: torch.Tensor, grid: torch.Tensor, k: int, t: torch.Tensor, derivative: bool):
    """de Boor's triangle on any sorted grid: x (B, n), interval t (B, n) in [0, P-2] ->
    unmasked values (B, n, k+1) of B_{t-k..t, k} and their derivative (or None).

    Each order is one vectorised step over its j functions, so the op count is O(k), not O(k^2).
    """
    B, n = x.shape
    P = grid.shape[1]
    values = torch.ones(B, n, 1, dtype=x.dtype, device=x.device)
    if k == 0:
        return values, (torch.zeros_like(values) if derivative else None)
    # Pad k knots each side so that the window g[t-k+1 .. t+k] always exists; functions that use a
    # pad knot do not exist in pykan's basis and are masked by the caller, and no existing function
    # reads a pad knot, so their values do not matter (spacing 1 keeps them finite).
    pad = torch.arange(1, k + 1, dtype=grid.dtype, device=grid.device)
    gp = torch.cat([grid[:, :1] - pad.flip(0), grid, grid[:, -1:] + pad], dim=1)  # (n, P + 2k)
    idx = t.unsqueeze(-1) + torch.arange(1, 2 * k + 1, device=x.device)
    win = gp.unsqueeze(0).expand(B, n, P + 2 * k).gather(2, idx)  # win[..., w] = g[t + 1 + w - k]
    xe = x.unsqueeze(-1)
    right = win[..., k:] - xe  # right[..., r] = g[t+1+r] - x
    left = xe - win[..., :k]  # left[..., k-j+r] = x - g[t+1-j+r]
    prev = values
    for j in range(1, k + 1):
        # values holds B_{t-j+1+r, j-1}, r < j; its knot span is g[t+1+r] - g[t+1-j+r]. A zero span
        # means a function that is identically 0 here, so 0/0 -> 0 (the repeated-knot rule).
        prev = values
        temp = torch.nan_to_num_(values / (win[..., k:k + j] - win[..., k - j:k]), nan=0.0)
        values = F.pad(right[..., :j] * temp, (0, 1)) + F.pad(left[..., k - j:] * temp, (1, 0))
    dvalues = None
    if derivative:
        # d/dx B_{s,k} = k (B_{s,k-1} / (g_{s+k} - g_s) - B_{s+1,k-1} / (g_{s+k+1} - g_{s+1})); prev
        # holds B_{t-k+1+r, k-1}, r < k, whose span is g[t+1+r] - g[t+1+r-k].
        q = torch.nan_to_num_(prev / (win[..., k:] - win[..., :k]), nan=0.0)
        dvalues = k * (F.pad(q, (1, 0)) - F.pad(q, (0, 1)))
    return values, dvalues


def _inverse_vander(k: int) -> torch.Tensor:
    """V^-1 (k+1, k+1), float64, for the fit points u_q = (q + 0.5) / (k + 1): the coefficients of
    the polynomial through values at those points are V^-1 @ values (a matmul, so it traces)."""
    u = (torch.arange(k + 1, dtype=torch.float64) + 0.5) / (k + 1)
    return torch.linalg.inv(torch.linalg.vander(u, N=k + 1))


# Fits are tabled for k <= 3 only; computed at import so traced code reads constants.
_INVERSE_VANDER = {k: _inverse_vander(k) for k in range(1, 4)}


# Up to this many knots the interval index is one broadcast comparison with every knot, counted
# in uint8 (exact, half-open like searchsorted, NaN -> left of the grid); beyond it a searchsorted.
# At (1024, 256), P = 12, one thread: 31 ms against 37 ms for searchsorted with its transposes and
# 52 ms for an int64 count (a loaded machine: ratios only).
_COUNT_KNOTS = 32


class _GridInfo:
    """Per-interval tables for a grid, computed once per grid value (eager) or traced per call.

    Interval index j = number of knots <= x, in [0, P] (0: left of the grid, P: at/after the last
    knot); tables are laid out (n, P+1) and flattened, so that row i's entry j sits at
    ``jf = j + i (P+1)``. For every interval the k+1 functions of a window of k+1 consecutive basis
    functions B_{c0}, .., B_{c0+k}, c0 = clamp(t - k, 0, G - 1) (t = j - 1), are polynomials in the
    interval fraction u = (x - lo[jf]) inv_w[jf]:  values = [1, u, .., u^k] @ coef[jf] (k+1, k+1).
    The window always holds k+1 distinct existing functions (no masks: functions that vanish on
    the interval have zero coefficients, and j = 0 or P has all-zero coefficients), so the values
    go to the feature columns ``cols[jf]`` without collisions.

    Uniform grids (pykan's initial ones) use the exact uniform matrix on every interval, updated
    grids polynomials fitted to de Boor's values at k+1 points per interval (k <= 3; beyond it
    float32 Horner loses accuracy, 1.6e-6 at k=5 against de Boor's 3e-7, and ``coef`` is None).
    Traced code (torch.compile) always fits (no data-dependent branch on the grid's values).
    """

    def __init__(self, grid: torch.Tensor, k: int, traced: bool = False):
        self.k = k
        self.grid = grid if traced else grid.detach().clone()
        n, P = grid.shape
        nb = P - 1 - k
        g = self.grid.detach().double()
        inv_h = None if traced else _uniform_step(self.grid)
        self.coef = None
        if inv_h is None and k > 3:
            return
        dev = grid.device
        t = torch.arange(P - 1, device=dev)
        width = g[:, 1:] - g[:, :-1]  # (n, P-1)
        if inv_h is not None:
            # The exact matrix rather than a fit: at every knot it gives exact zeros where the basis
            # vanishes (fitted tables: 8-32 stray non-zeros, k = 1..3, and up to 6x the float64 error)
            # and builds in 0.25-0.31 ms against 0.39-0.72 ms (python bench/basis_paths.py).
            poly = _uniform_poly(k).to(dev).expand(n, P - 1, k + 1, k + 1)  # [p, r]
            inv_w = inv_h.double().unsqueeze(1).expand(n, P - 1)
        else:
            u = (torch.arange(k + 1, dtype=torch.float64, device=dev) + 0.5) / (k + 1)
            points = (g[:, :-1, None] + width[..., None] * u).reshape(n * (P - 1), k + 1).t()  # (k+1, N)
            rows = g.repeat_interleave(P - 1, dim=0)  # (N, P)
            values, _ = _de_boor(points, rows, k, t.repeat(n).expand(k + 1, n * (P - 1)), False)
            poly = torch.einsum("pq,qnr->npr", _INVERSE_VANDER[k].to(dev), values).reshape(n, P - 1, k + 1, k + 1)
            nonempty = width > 0
            poly = poly * nonempty[..., None, None]
            inv_w = torch.where(nonempty, 1.0 / torch.where(nonempty, width, torch.ones_like(width)),
                                torch.zeros_like(width))
        # Window columns: function c0 + w is local function r = c0 + w - t + k of interval t.
        c0 = (t - k).clamp(0, nb - 1 - k)  # (P-1,)
        w = torch.arange(k + 1, device=dev)
        r = c0[:, None] + w - t[:, None] + k  # (P-1, k+1)
        exists = ((r >= 0) & (r <= k)).to(torch.float64)
        idx = r.clamp(0, k)[None, :, None, :].expand(n, P - 1, k + 1, k + 1)
        win = poly.gather(3, idx) * exists[:, None, :]  # (n, P-1, p, w)
        pad = (0, 0, 0, 0, 1, 1)
        coef = torch.nn.functional.pad(win, pad)  # (n, P+1, p, w): zero left of / at and after the grid
        dtype = grid.dtype
        self.coef = coef.reshape(n * (P + 1), (k + 1) * (k + 1)).to(dtype)
        p = torch.arange(1, k + 1, device=dev, dtype=torch.float64)
        inv_pad = torch.nn.functional.pad(inv_w, (1, 1))  # (n, P+1)
        dcoef = coef[:, :, 1:, :] * p[:, None] * inv_pad[..., None, None]  # d/dx = d/du inv_w
        self.dcoef = dcoef.reshape(n * (P + 1), k * (k + 1)).to(dtype)
        self.lo = torch.cat([g[:, :1], g], dim=1).reshape(-1).to(dtype)  # j = 0 and P: u = 0 (inv_w = 0)
        self.inv_w = inv_pad.reshape(-1).to(dtype)
        first = torch.nn.functional.pad(c0, (1, 1))  # (P+1,)
        first[-1] = nb - 1 - k
        self.first = first
        self.row_off = torch.arange(n, device=dev) * (P + 1)
        self.cols = (first[:, None] + w + 1).repeat(n, 1)  # (n (P+1), k+1): feature columns (0: base)

    @staticmethod
    def of(grid: torch.Tensor, k: int) -> _GridInfo:
        """The info for grid: traced per call under torch.compile; else cached on the grid tensor and
        rebuilt when its values change (one torch.equal per call: in-place updates through .data do
        not bump tensor versions)."""
        if torch.compiler.is_compiling():
            return _GridInfo(grid, k, traced=True)
        info = getattr(grid, "_kanswap_info", None)
        if (info is None or info.k != k or info.grid.shape != grid.shape or info.grid.dtype != grid.dtype
                or info.grid.device != grid.device or not torch.equal(info.grid, grid)):
            info = _GridInfo(grid, k)
            grid._kanswap_info = info
        return info


def _interval(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """j (B, n) int64: the number of knots <= x (0 .. P; NaN counts as left of the grid)."""
    if grid.shape[1] <= _COUNT_KNOTS:
        return (x.unsqueeze(-1) >= grid).sum(-1, dtype=torch.uint8).long()
    j = torch.searchsorted(grid.contiguous(), x.t().contiguous(), right=True).t()
    return j.masked_fill_(x.isnan(), 0)


def _horner(coef: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """sum_p coef[..., p, :] u^p: coef (B, n, D, k+1) gathered rows, u (B, n) -> (B, n, k+1)."""
    D = coef.shape[-2]
    if D == 1:
        return coef[..., 0, :].clone()
    ue = u.unsqueeze(-1)
    out = torch.addcmul(coef[..., D - 2, :], coef[..., D - 1, :], ue)
    grad = torch.is_grad_enabled() and (u.requires_grad or coef.requires_grad)
    for p in range(D - 3, -1, -1):
        # One pass a power (out= may alias an input of an elementwise op), not a mul_ and an add_;
        # autograd (pykan's forward differentiates through the basis) takes the plain op.
        out = torch.addcmul(coef[..., p, :], out, ue) if grad else torch.addcmul(coef[..., p, :], out, ue, out=out)
    return out


def window_eval(x: torch.Tensor, info: _GridInfo):
    """The k+1 window functions of every x on a tabled grid: values (B, n, k+1), the flat table
    index jf (B, n) and the fraction u (B, n) (what ``window_derivative`` needs)."""
    k = info.k
    jf = _interval(x, info.grid).add_(info.row_off)
    u = (x - info.lo.take(jf)).mul_(info.inv_w.take(jf)).clamp_(0.0, 1.0).nan_to_num_(nan=0.0)
    coef = F.embedding(jf, info.coef).view(*x.shape, k + 1, k + 1)
    # B-splines are non-negative; the polynomial form can round a zero to -1e-17.
    return _horner(coef, u).clamp_(min=0.0), jf, u


def window_derivative(jf: torch.Tensor, u: torch.Tensor, info: _GridInfo) -> torch.Tensor:
    """d/dx of the window functions (B, n, k+1) from ``window_eval``'s jf and u."""
    k = info.k
    return _horner(F.embedding(jf, info.dcoef).view(*u.shape, k, k + 1), u)


def _local(x: torch.Tensor, grid: torch.Tensor, k: int, derivative: bool):
    """(values (B, n, k+1), first (B, n) int64, dvalues or None): values[..., r] = B_{first + r, k}(x)."""
    info = None if k == 0 else _GridInfo.of(grid, k)
    if info is not None and info.coef is not None:
        values, jf, u = window_eval(x, info)
        first = info.first.take(jf - info.row_off)
        return values, first, (window_derivative(jf, u, info) if derivative else None)
    # de Boor's triangle: k = 0 and k > 3 on non-uniform grids.
    P = grid.shape[1]
    n_basis = P - 1 - k
    j = _interval(x, grid)
    t = j - 1
    xc = torch.nan_to_num(x.clamp(grid[:, 0], grid[:, -1]), nan=0.0)
    values, dvalues = _de_boor(xc, grid, k, t.clamp(0, P - 2), derivative)
    s = t.unsqueeze(-1) + torch.arange(-k, 1, device=x.device)
    inside = ((t >= 0) & (t <= P - 2)).unsqueeze(-1)
    mask = ((s >= 0) & (s <= n_basis - 1) & inside).to(x.dtype)
    return values * mask, t - k, (dvalues * mask if derivative else None)


def _inverse_span(g: torch.Tensor, j: int) -> torch.Tensor:
    """1 / (g_{s+j} - g_s) for g (1, n, P) -> (1, n, P - j), 0 where the span is 0 (0/0 := 0)."""
    span = g[..., j:] - g[..., :-j]
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, 1.0 / safe, torch.zeros_like(span))


def bspline_dense(x: torch.Tensor, grid: torch.Tensor, k: int, derivative: bool = False):
    """All G + k functions by the Cox-de Boor recursion, as broadcast elementwise ops only (no
    index, gather or scatter): x (B, n) -> values (B, n, G+k) and their derivative (or None).

    The route for traced code: Inductor fuses it into a few loops over the points, where the
    tabled window (lookups, a scatter) compiles to scalar loops. Measured on a compiled KANLinear
    at (1024, 256, 256), fwd+bwd, one thread: tabled 2.3x eager's time, dense 0.99x. Zero knot
    spans count 0 (0/0 := 0).
    """
    xe = x.unsqueeze(-1)
    g = grid.unsqueeze(0)  # (1, n, P)
    values = ((xe >= g[..., :-1]) & (xe < g[..., 1:])).to(x.dtype)
    prev = values
    for j in range(1, k + 1):
        inv = _inverse_span(g, j)
        prev = values
        # B_{s,j} = (x - g_s)/(g_{s+j} - g_s) B_{s,j-1} + (g_{s+j+1} - x)/(g_{s+j+1} - g_{s+1}) B_{s+1,j-1}
        values = ((xe - g[..., :-(j + 1)]) * inv[..., :-1] * values[..., :-1]
                  + (g[..., j + 1:] - xe) * inv[..., 1:] * values[..., 1:])
    dvalues = None
    if derivative:
        if k == 0:
            dvalues = torch.zeros_like(values)
        else:
            q = prev * _inverse_span(g, k)  # B_{s,k-1} / (g_{s+k} - g_s), s = 0 .. G+k
            dvalues = k * (q[..., :-1] - q[..., 1:])
    return values, dvalues


def bspline_local(
    x: torch.Tensor, grid: torch.Tensor, k: int, derivative: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The local basis with the index of the first local function: (values, first, dvalues),
    (B, n, k+1), (B, n) int64, (B, n, k+1) or None, so values[..., r] is B_{first + r, k}(x).
    Functions with an index outside the basis have value 0; on tabled grids first + r is always an
    existing function (a window clamped into the basis)."""
    return _local(x, grid, k, derivative)


def bspline_basis(x: torch.Tensor, grid: torch.Tensor, k: int) -> torch.Tensor:
    """All G + k basis functions of order k: x (B, n), grid (n, G + 2k + 1) -> (B, n, G + k).

    Equal (to float rounding) to pykan's ``B_batch(x, grid, k)``.
    """
    n_basis = grid.shape[1] - 1 - k
    values, first, _ = bspline_local(x, grid, k)
    return scatter_local(values, first, n_basis)


def scatter_local(values: torch.Tensor, first: torch.Tensor, width: int, offset: int = 0,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """Place local values (B, n, k+1) at columns ``offset + first + r`` of a dense (B, n, width).

    Entries that fall outside [offset, offset + n_basis) have value 0 by construction
    (``bspline_local`` zeroes them), so clamping their index and adding is exact.
    """
    B, n, kp1 = values.shape
    if out is None:
        out = values.new_zeros(B, n, width)
    idx = (first.unsqueeze(-1) + torch.arange(kp1, device=values.device)).clamp_(0, width - offset - 1)
    out.scatter_add_(2, idx + offset, values)
    return out


def coef_to_curve(x: torch.Tensor, grid: torch.Tensor, coef: torch.Tensor, k: int) -> torch.Tensor:
    """Spline values per edge: x (B, n), coef (n, out, G+k) -> (B, n, out)."""
    basis = bspline_basis(x, grid, k)
    return torch.einsum("bim,ijm->bij", basis, coef)


def _lstsq(mat: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least squares, batched: mat (n, B, K), rhs (n, B, R) -> (n, K, R).

    CPU uses the SVD driver gelsd, which is deterministic (pykan's default gelsy is not, D14) and
    gives the minimum-norm solution for rank-deficient systems. CUDA has only 'gels' (full rank
    only), so it goes through the pseudo-inverse, also minimum-norm.
    """
    if mat.device.type == "cpu":
        return torch.linalg.lstsq(mat, rhs, driver="gelsd").solution
    return torch.linalg.pinv(mat) @ rhs


def curve_to_coef(x: torch.Tensor, y: torch.Tensor, grid: torch.Tensor, k: int) -> torch.Tensor:
    """Least-squares coefficients whose splines best match y: x (B, n), y (B, n, out) -> (n, out, G+k).

    Each input's design matrix is shared by all its outputs, so one solve per input with ``out``
    right-hand sides replaces pykan's in*out separate solves. Solved in float64 for accuracy.
    """
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("curve_to_coef: samples contain NaN or inf; cannot fit spline coefficients")
    mat = bspline_basis(x.double(), grid.double(), k).permute(1, 0, 2)  # (n, B, K)
    rhs = y.double().permute(1, 0, 2)  # (n, B, out)
    sol = _lstsq(mat, rhs)  # (n, K, out)
    return sol.permute(0, 2, 1).to(y.dtype).contiguous()


def grid_from_samples(x: torch.Tensor, num: int, k: int, grid_eps: float) -> torch.Tensor:
    """pykan's sample-adaptive grid: x (B, n) -> extended grid (n, num + 2k + 1).

    Interior knots mix sample quantiles (weight 1 - grid_eps) with a uniform grid over the sample
    range (weight grid_eps); quantile ids are ``floor(B / num * i)`` for i < num, then B - 1.
    """
    B = x.shape[0]
    xs = torch.sort(x, dim=0).values
    ids = [int(B / num * i) for i in range(num)] + [B - 1]
    adaptive = xs[ids, :].t()  # (n, num + 1)
    step = (adaptive[:, -1:] - adaptive[:, :1]) / num
    uniform = adaptive[:, :1] + step * torch.arange(num + 1, dtype=x.dtype, device=x.device)
    grid = grid_eps * uniform + (1 - grid_eps) * adaptive
    return extend_grid(grid, k)
