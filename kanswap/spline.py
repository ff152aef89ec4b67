"""B-spline math on per-input knot grids: basis, derivative, grids and least-squares fits.

This is the reference path: plain PyTorch, exact to float rounding against pykan's Cox-de Boor
recursion (BEHAVIOR.md §3), and what every Triton kernel is checked against.

Conventions (pykan's):
- a layer grid is ``(in_dim, G + 2k + 1)``: G intervals over the grid range, extended by k knots
  on each side; it yields ``G + k`` basis functions of order k per input;
- order-0 functions are half-open indicators ``g_t <= x < g_{t+1}``, so every basis function is
  zero at or beyond the outermost knots;
- terms whose knot span is zero (repeated knots) count as 0 (pykan's ``nan_to_num``).

Unlike pykan, the basis is never built by the full recursion over all G + k functions: each input's
knot interval is found once (``searchsorted``) and only its k + 1 non-zero functions are computed
(de Boor's triangle), then scattered into the dense result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "extend_grid",
    "uniform_grid",
    "bspline_local",
    "bspline_basis",
    "coef_to_curve",
    "curve_to_coef",
    "grid_from_samples",
]


def extend_grid(grid: torch.Tensor, k: int) -> torch.Tensor:
    """Add k knots on each side of every row, spaced by the row's mean spacing.

    grid: (n, P) -> (n, P + 2k). The step is ``(last - first) / (P - 1)`` of the given row.
    """
    if grid.dim() != 2:
        raise ValueError(f"grid must be 2-D (n, P), got shape {tuple(grid.shape)}")
    if k == 0:
        return grid
    h = (grid[:, -1:] - grid[:, :1]) / (grid.shape[1] - 1)
    steps = torch.arange(1, k + 1, dtype=grid.dtype, device=grid.device)
    left = grid[:, :1] - h * steps.flip(0)
    right = grid[:, -1:] + h * steps
    return torch.cat([left, grid, right], dim=1)


def uniform_grid(
    in_dim: int, num: int, k: int, grid_range=(-1.0, 1.0), dtype=torch.float32, device=None
) -> torch.Tensor:
    """The extended uniform layer grid of pykan's KANLayer init: (in_dim, num + 2k + 1)."""
    base = torch.linspace(grid_range[0], grid_range[1], num + 1, dtype=dtype, device=device)
    return extend_grid(base.expand(in_dim, num + 1), k)


def _interval(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Index t with g_t <= x < g_{t+1} for each x: (B, n) -> (B, n) int64, in [-1, P - 1].

    -1 means left of the grid, P - 1 means at or right of the last knot (and NaN).
    """
    # searchsorted wants the values laid out like the sorted rows: (n, B).
    t = torch.searchsorted(grid.contiguous(), x.t().contiguous(), right=True) - 1
    return t.t()


def bspline_local(
    x: torch.Tensor, grid: torch.Tensor, k: int, derivative: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The k + 1 basis functions that can be non-zero at each input, and their index.

    x: (B, n); grid: (n, P) sorted rows. Returns ``(values, first, dvalues)``:
    values (B, n, k + 1) are ``B_{first + r, k}(x)`` for r = 0..k; first (B, n) int64 is t - k for
    the knot interval t of x; entries for functions that do not exist (index < 0 or > P - 2 - k)
    and for x outside [g_0, g_{P-1}) are 0. dvalues (B, n, k + 1) is d/dx of values when
    ``derivative`` is set (else None).

    Each order is one vectorised step over its j functions (de Boor's triangle), so the op count
    is O(k), not O(k^2): on the reference KAN fit the op count, not the arithmetic, is the cost.
    """
    B, n = x.shape
    P = grid.shape[1]
    n_basis = P - 1 - k
    t = _interval(x, grid)
    inside = (t >= 0) & (t <= P - 2)
    t = t.clamp(0, P - 2)
    # Points outside [g_0, g_{P-1}) (and NaN, inf) get only zero functions; moving them to 0 keeps
    # every intermediate finite, so no NaN leaks into the values.
    x = x.masked_fill(~inside, 0.0)
    values = inside.to(x.dtype).unsqueeze(-1)  # order 0: the indicator of interval t
    first = t - k
    if k == 0:
        return values, first, (torch.zeros_like(values) if derivative else None)
    # Pad k knots each side so that the window g[t-k+1 .. t+k] always exists; functions that use a
    # pad knot do not exist in pykan's basis and are masked below, and no existing function reads
    # a pad knot, so their values do not matter (spacing 1 keeps them finite).
    pad = torch.arange(1, k + 1, dtype=grid.dtype, device=grid.device)
    gp = torch.cat([grid[:, :1] - pad.flip(0), grid, grid[:, -1:] + pad], dim=1)  # (n, P + 2k)
    # win[..., w] = g[t + 1 + w - k], w = 0..2k-1
    idx = t.unsqueeze(-1) + torch.arange(1, 2 * k + 1, device=x.device)
    win = gp.unsqueeze(0).expand(B, n, P + 2 * k).gather(2, idx)
    xe = x.unsqueeze(-1)
    right = win[..., k:] - xe  # right[..., r] = g[t+1+r] - x
    left = xe - win[..., :k]  # left[..., k-j+r] = x - g[t+1-j+r]
    prev = values
    for j in range(1, k + 1):
        # values holds B_{t-j+1+r, j-1}, r < j; its knot span is g[t+1+r] - g[t+1-j+r]. A zero span
        # means a function that is identically 0 here, so 0/0 -> 0 (pykan's repeated-knot rule).
        prev = values
        temp = torch.nan_to_num_(values / (win[..., k:k + j] - win[..., k - j:k]), nan=0.0)
        values = F.pad(right[..., :j] * temp, (0, 1)) + F.pad(left[..., k - j:] * temp, (1, 0))
    s = first.unsqueeze(-1) + torch.arange(k + 1, device=x.device)
    exists = (s >= 0) & (s < n_basis)
    values = values * exists
    dvalues = None
    if derivative:
        # d/dx B_{s,k} = k (B_{s,k-1} / (g_{s+k} - g_s) - B_{s+1,k-1} / (g_{s+k+1} - g_{s+1})); prev
        # holds B_{t-k+1+r, k-1}, r < k, whose span is g[t+1+r] - g[t+1+r-k].
        q = torch.nan_to_num_(prev / (win[..., k:] - win[..., :k]), nan=0.0)
        dvalues = k * (F.pad(q, (1, 0)) - F.pad(q, (0, 1))) * exists
    return values, first, dvalues


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


def gather_local(dense: torch.Tensor, first: torch.Tensor, kp1: int, offset: int = 0) -> torch.Tensor:
    """The inverse access of ``scatter_local``: dense (B, n, width) -> (B, n, k+1) at the local columns."""
    width = dense.shape[-1]
    idx = (first.unsqueeze(-1) + torch.arange(kp1, device=dense.device)).clamp_(0, width - offset - 1)
    return dense.gather(2, idx + offset)


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
