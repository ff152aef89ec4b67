"""B-spline math on per-input knot grids: basis, derivative, grids and least-squares fits.

This is the reference path: plain PyTorch, exact to float rounding against pykan's Cox-de Boor
recursion (BEHAVIOR.md §3), and what every Triton kernel is checked against.

Conventions (pykan's):
- a layer grid is ``(in_dim, G + 2k + 1)``: G intervals over the grid range, extended by k knots
  on each side; it yields ``G + k`` basis functions of order k per input;
- order-0 functions are half-open indicators ``g_t <= x < g_{t+1}``, so every basis function is
  zero at or beyond the outermost knots;
- terms whose knot span is zero (repeated knots) count as 0 (the standard rule; pykan's
  ``nan_to_num`` after each order instead zeroes whole functions there).

Unlike pykan, the basis is never built by the full recursion over all G + k functions: each input's
knot interval is found once (one floor on uniform grids, ``searchsorted`` otherwise) and only its
k + 1 non-zero functions are computed, then scattered into the dense result. On every interval those
functions are polynomials of degree k in the interval fraction u: one fixed matrix on uniform grids
(pykan's initial ones), one per interval on updated grids (fitted once per grid value and cached),
evaluated by Horner. de Boor's triangle serves k = 0, k > 3 on non-uniform grids, traced code and
the fits of those polynomials.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

__all__ = [
    "extend_grid",
    "uniform_grid",
    "local_parts",
    "bspline_local",
    "bspline_basis",
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


class _GridInfo:
    """What evaluating the basis needs to know about a grid, computed once per grid value.

    inv_h (n,) when the grid is uniform (one polynomial matrix serves every interval), else
    poly (n * (P-1), (k+1)^2) and inv_w (P-1, n): the local functions' coefficients on every
    interval, [1, u, .., u^k] @ poly[row, t] with u = (x - g_t) inv_w[t, row] (0 for zero-width
    intervals, which no point falls in), fitted to de Boor's values at k+1 points per interval.
    """

    def __init__(self, grid: torch.Tensor, k: int):
        self.k = k
        self.grid = grid.detach().clone()
        self.grid_t = self.grid.t().contiguous()  # (P, n): gather rows by interval index
        self.inv_h = _uniform_step(self.grid)
        self.poly = self.inv_w = None
        if self.inv_h is None and k <= 3:
            self._fit_polys()

    def _fit_polys(self) -> None:
        n, P = self.grid.shape
        k = self.k
        g = self.grid.double()
        width = g[:, 1:] - g[:, :-1]  # (n, P-1)
        u = (torch.arange(k + 1, dtype=torch.float64, device=g.device) + 0.5) / (k + 1)
        points = (g[:, :-1, None] + width[..., None] * u).reshape(n * (P - 1), k + 1).t()  # (k+1, N)
        rows = g.repeat_interleave(P - 1, dim=0)  # (N, P)
        t = torch.arange(P - 1, device=g.device).repeat(n).expand(k + 1, n * (P - 1))
        values, _ = _de_boor(points, rows, k, t, False)  # (k+1 points, N, k+1 functions)
        poly = torch.linalg.solve(torch.linalg.vander(u, N=k + 1), values.transpose(0, 1))  # (N, k+1, k+1)
        nonempty = width > 0
        poly = poly.reshape(n, P - 1, k + 1, k + 1) * nonempty[..., None, None]
        inv_w = torch.where(nonempty, 1.0 / torch.where(nonempty, width, torch.ones_like(width)),
                            torch.zeros_like(width))
        dtype = self.grid.dtype
        self.poly = poly.reshape(n * (P - 1), (k + 1) * (k + 1)).to(dtype)
        self.inv_w = inv_w.t().contiguous().to(dtype)

    @staticmethod
    def of(grid: torch.Tensor, k: int) -> _GridInfo:
        """The info for grid, cached on the grid tensor and rebuilt when its values change (one
        torch.equal per call: in-place updates through .data do not bump tensor versions)."""
        info = getattr(grid, "_kanswap_info", None)
        if (info is None or info.k != k or info.grid.shape != grid.shape or info.grid.dtype != grid.dtype
                or info.grid.device != grid.device or not torch.equal(info.grid, grid)):
            info = _GridInfo(grid, k)
            grid._kanswap_info = info
        return info


def _interval_index(x: torch.Tensor, info: _GridInfo):
    """Knot interval t of each x (float, (B, n), -1 .. P-1), the fraction u of x in it (clamped to
    [0, 1]) and the interval's 1/width, plus the local functions' coefficients (B, n, k+1, k+1) when
    the grid is not uniform (None on uniform grids, which share one matrix). t = -1 left of the
    grid, P - 1 at/after the last knot or NaN."""
    grid_t, k = info.grid_t, info.k
    P = grid_t.shape[0]
    if info.inv_h is None:
        t = torch.searchsorted(info.grid, x.t().contiguous(), right=True).t() - 1
        tf = t.to(x.dtype)
        ti = t.clamp_(0, P - 2)
        row = torch.arange(x.shape[1], device=x.device) * (P - 1)
        coefs = info.poly[ti + row].view(*x.shape, k + 1, k + 1)
        winv = info.inv_w.gather(0, ti)
        u = torch.nan_to_num_(((x - grid_t.gather(0, ti)) * winv).clamp_(0.0, 1.0), nan=0.0)
        return tf, u, winv, coefs
    inv_h = info.inv_h
    # One floor instead of a searchsorted (20 ms -> 1 ms at (1024, 256)). NaN goes right of the
    # grid, as searchsorted puts it; the clamp keeps far-away points finite.
    tf = torch.nan_to_num_((x - grid_t[0]) * inv_h, nan=P - 1.0).clamp_(-1.0, P - 1.0).floor_()
    # Rounding can put a point lying on a knot one interval off: compare with the actual knots so
    # that intervals stay half-open like searchsorted's (one-sided derivatives at knots for k = 1
    # depend on it). u comes from the knot itself, not from (x - g_0) / h, which loses log2(P)
    # bits (1.5e-6 vs 1e-7 in float32 at G=10).
    ti = tf.long().clamp_(0, P - 2)
    lo = grid_t.gather(0, ti)
    step = (x >= grid_t.gather(0, ti + 1)).to(x.dtype) - (x < lo).to(x.dtype)
    tf = (tf + step).clamp_(-1.0, P - 1.0)
    u = torch.nan_to_num_(((x - lo) * inv_h - step).clamp_(0.0, 1.0), nan=0.0)
    return tf, u, inv_h, None


def _horner(coef: list[torch.Tensor], u: torch.Tensor) -> torch.Tensor:
    """sum_p coef[p] u^p for coefficient tensors broadcasting against u (..., 1)."""
    out = coef[-1].expand(*u.shape[:-1], coef[-1].shape[-1]) if len(coef) == 1 else torch.addcmul(coef[-2], u, coef[-1])
    for c in reversed(coef[:-2]):
        out = torch.addcmul(c, out, u)
    return out


def _uniform_local(u: torch.Tensor, tf: torch.Tensor, inv_h: torch.Tensor, P: int, k: int, derivative: bool):
    """Uniform grids: each of the k+1 local functions is one fixed polynomial in u, evaluated by
    Horner on (B, n) tensors with scalar coefficients and masked there. Returns lists of k+1
    (B, n) tensors (values, and derivatives or None).

    Working on (B, n) tensors rather than (B, n, k+1) ones with broadcast coefficient rows, and
    never interleaving them into (B, n, k+1): 19 ms -> 5 ms for the local basis at (1024, 256),
    k=3, one core."""
    n_basis = P - 1 - k
    poly = _uniform_poly(k).tolist()  # poly[p][r]: coefficient of u^p in function r
    inside = (tf >= 0) & (tf <= P - 2)
    values, dvalues = [], []
    for r in range(k + 1):
        s = tf + (r - k)
        mask = (inside & (s >= 0) & (s <= n_basis - 1)).to(u.dtype)
        v = u * poly[k][r] + poly[k - 1][r]
        for p in range(k - 2, -1, -1):
            v = v.mul_(u).add_(poly[p][r])
        values.append(v.clamp_(min=0.0).mul_(mask))  # B-splines are >= 0; Horner can round 0 to -1e-17
        if derivative:
            d = torch.full_like(u, k * poly[k][r]) if k == 1 else u * (k * poly[k][r]) + (k - 1) * poly[k - 1][r]
            for p in range(k - 3, -1, -1):
                d = d.mul_(u).add_((p + 1) * poly[p + 1][r])
            dvalues.append(d.mul_(mask).mul_(inv_h))
    return values, (dvalues if derivative else None)


# Below this many local values (B * n * (k+1)) the (B, n, k+1) formulation wins: fewer ops, and op
# count, not bytes, is the cost there (the reference KAN's layers: 409 x 10 x 4 = 16k).
_SMALL = 1 << 16


def _local(x: torch.Tensor, grid: torch.Tensor, k: int, derivative: bool, as_list: bool):
    """The k+1 local functions B_{t-k+r, k}, r = 0..k, of each x: ``(values, tf, dvalues)`` with tf
    (B, n) the knot interval index (float); values/dvalues (B, n, k+1) tensors, or lists of k+1
    (B, n) tensors when ``as_list`` and that is how they were computed. Functions that do not
    exist, and points outside [g_0, g_{P-1}), get 0; dvalues is None unless asked.

    On every interval the local functions are polynomials of degree k in the interval fraction u,
    so evaluation is a Horner pass: with fixed coefficients on uniform grids (pykan's initial
    ones), with coefficients looked up per interval otherwise. Traced code (torch.compile), k = 0
    and k > 3 on non-uniform grids (where float32 Horner loses accuracy: 1.6e-6 at k=5 against de
    Boor's 3e-7) use de Boor's triangle.
    """
    P = grid.shape[1]
    n_basis = P - 1 - k
    info = None if (k == 0 or torch.compiler.is_compiling()) else _GridInfo.of(grid, k)
    if info is None or (info.inv_h is None and info.poly is None):
        t = torch.searchsorted(grid.contiguous(), x.t().contiguous(), right=True).t() - 1
        tf = t.to(x.dtype)
        xc = torch.nan_to_num(x.clamp(grid[:, 0], grid[:, -1]), nan=0.0)
        values, dvalues = _de_boor(xc, grid, k, t.clamp(0, P - 2), derivative)
    else:
        tf, u, inv_w, coefs = _interval_index(x, info)
        if coefs is None and x.numel() * (k + 1) > _SMALL:
            values, dvalues = _uniform_local(u, tf, inv_w, P, k, derivative)
            if not as_list:
                values = torch.stack(values, -1)
                dvalues = torch.stack(dvalues, -1) if derivative else None
            return values, tf, dvalues
        if coefs is None:
            poly = _uniform_poly(k).to(device=x.device, dtype=x.dtype)
            rows = [poly[p] for p in range(k + 1)]
        else:
            rows = [coefs[..., p, :] for p in range(k + 1)]
        ue = u.unsqueeze(-1)
        # B-splines are non-negative; the polynomial form can round a zero to -1e-17.
        values = _horner(rows, ue).clamp_(min=0.0)
        dvalues = None
        if derivative:
            dvalues = _horner([rows[p] * p for p in range(1, k + 1)], ue) * inv_w.unsqueeze(-1)
    s = tf.unsqueeze(-1) + torch.arange(-k, 1, dtype=x.dtype, device=x.device)
    inside = ((tf >= 0) & (tf <= P - 2)).to(x.dtype).unsqueeze(-1)
    mask = ((s >= 0) & (s <= n_basis - 1)).to(x.dtype) * inside
    return values * mask, tf, (dvalues * mask if derivative else None)


def local_parts(x: torch.Tensor, grid: torch.Tensor, k: int, derivative: bool = False):
    """The k+1 local basis functions of each x: ``(values, first, dvalues)`` with first (B, n)
    int64 = t - k, so values[..., r] (or values[r]) is B_{first + r, k}(x); values and dvalues are
    (B, n, k+1) tensors, or lists of k+1 (B, n) tensors on large uniform inputs (never interleaved,
    the cheaper layout there). dvalues is None unless asked."""
    values, tf, dvalues = _local(x, grid, k, derivative, as_list=True)
    return values, tf.long() - k, dvalues


def bspline_local(
    x: torch.Tensor, grid: torch.Tensor, k: int, derivative: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The local basis with the index of the first local function: (values, first, dvalues),
    first = t - k (B, n) int64 (unclamped), so values[..., r] is B_{first + r, k}(x)."""
    values, tf, dvalues = _local(x, grid, k, derivative, as_list=False)
    return values, tf.long() - k, dvalues


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
