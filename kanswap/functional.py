"""The KAN layer as functions: folded weights, basis features (an autograd Function with a
hand-written backward), the reference layer, and the basis moments behind edge statistics.

A KAN layer computes, for input i and output j,
    phi_ij(x) = mask_ij * (scale_base_ij * base(x_i) + scale_sp_ij * sum_m coef_ijm B_m(x_i))
and y_j = sum_i phi_ij(x_i). With the features a_i(x) = [base(x_i), B_1(x_i) .. B_K(x_i)] (K = G + k)
and the folded weight W_i = [mask*scale_base ; mask*scale_sp*coef] of shape (K + 1, out), the
layer is one contraction  y = A @ W,  A: (batch, in*(K+1)), W: (in*(K+1), out). pykan instead
materialises (batch, in, out, K). The matmul's backward is autograd's (dW = A^T dy, dA = dy W^T);
the features' backward is written by hand: dx gathers dA at each input's k + 1 non-zero basis
columns times the basis derivative.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .spline import _GridInfo, _horner, bspline_dense, bspline_local, window_eval

__all__ = [
    "BASE_FUNS",
    "fold_weight",
    "basis_features",
    "kan_linear_reference",
    "feature_moments",
    "basis_moments",
    "edge_std",
]


def _silu_grad(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


# name -> (function, derivative); the derivative lets the reference Function skip autograd.
BASE_FUNS: dict[str, tuple[Callable, Callable]] = {
    "silu": (F.silu, _silu_grad),
    "identity": (lambda x: x, torch.ones_like),
    "zero": (lambda x: x * 0.0, torch.zeros_like),
}


def fold_weight(
    coef: torch.Tensor, scale_base: torch.Tensor, scale_sp: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Fold a layer's parameters into one weight: coef (in, out, K), others (in, out) -> (in, K+1, out).

    Row 0 of each input's block multiplies base(x_i), rows 1..K the basis functions. Differentiable,
    so gradients reach coef, scale_base, scale_sp through autograd.
    """
    w_base = (mask * scale_base).unsqueeze(1)  # (in, 1, out)
    w_sp = (mask * scale_sp).unsqueeze(1) * coef.transpose(1, 2)  # (in, K, out)
    return torch.cat([w_base, w_sp], dim=1)


# Points (rows x inputs) per block of the tabled basis: its temporaries (the (points, (k+1)^2)
# coefficient rows, indices, values) stay bounded. Measured at (4096, 64, 64) and (1024, 256, 256),
# one thread, interleaved: one block for all 262144 points peaks at 36 MiB in forward+backward
# (flashkan: 17) and its backward is 1.3x slower at (4096, 64); 2^16 points: 21-23 MiB and the
# fastest of 2^14, 2^16, 2^18; 2^14: the same memory, 1.1x slower forward (16 blocks' op overhead).
_BLOCK = 1 << 16


def _blocks(B: int, n: int) -> list[tuple[int, int]]:
    """Row ranges of about _BLOCK points."""
    rows = max(1, _BLOCK // max(n, 1))
    return [(s, min(s + rows, B)) for s in range(0, B, rows)]


def _features(x: torch.Tensor, grid: torch.Tensor, k: int, base_fun: str, derivative: bool):
    """Features (B, n, K+1) and what the backward needs: (feats, saved tensors, route), route the
    grid's tables, "dense" (traced code) or None (de Boor's local triangle)."""
    B, n = x.shape
    n_basis = grid.shape[1] - 1 - k
    if torch.compiler.is_compiling():
        # Traced: dense recursion, elementwise only, which Inductor fuses; x alone is saved. A compiled
        # KANLinear at (1024, 256, 256) takes 0.99x eager's time this way, 2.3x through the tables.
        values, _ = bspline_dense(x, grid, k)
        return torch.cat([BASE_FUNS[base_fun][0](x).unsqueeze(-1), values], -1), (grid,), "dense"
    feats = x.new_zeros(B, n, n_basis + 1)
    feats[..., 0] = BASE_FUNS[base_fun][0](x)
    info = None if k == 0 else _GridInfo.of(grid, k)
    if info is not None and info.coef is not None:
        # Window values go straight to distinct columns: one scatter_, no masks, no collisions.
        jf_all = torch.empty(B, n, dtype=torch.long, device=x.device) if derivative else None
        u_all = torch.empty_like(x) if derivative else None
        for s, e in _blocks(B, n):
            values, jf, u = window_eval(x[s:e], info)
            feats[s:e].scatter_(2, info.cols.index_select(0, jf.view(-1)).view(e - s, n, k + 1), values)
            if derivative:
                jf_all[s:e] = jf
                u_all[s:e] = u
        return feats, (jf_all, u_all, info.cols, info.dcoef), info
    # de Boor's local triangle: k = 0, and k > 3 on updated grids, where float32 Horner on fitted
    # tables would lose accuracy (1.6e-6 at k = 5 against de Boor's 3e-7; see spline._GridInfo).
    values, first, dvalues = bspline_local(x, grid, k, derivative=derivative)
    # Functions that do not exist have value 0, so clamping their column and adding is exact.
    cols = (first.unsqueeze(-1) + torch.arange(k + 1, device=x.device)).clamp_(0, n_basis - 1).add_(1)
    feats.scatter_add_(2, cols, values)
    return feats, (cols, dvalues), None


class BasisFeatures(torch.autograd.Function):
    """x (B, in) -> A (B, in, K+1) = [base(x_i), B_1(x_i) .. B_K(x_i)], with a hand-written backward:
    dx_i = dA_i0 base'(x_i) + sum over the k+1 window columns of dA_im B_m'(x_i).

    Autograd through the basis would record ~20 ops per layer call; here the backward is, per block
    of points, one lookup of the columns and derivative coefficients, a Horner pass, one gather, a
    product and a sum. Saved: the interval index and fraction (B, in) each, not the (B, in, k+1)
    derivative and columns.
    """

    @staticmethod
    def forward(ctx, x, grid, k: int, base_fun: str):
        need = ctx.needs_input_grad[0]
        feats, saved, info = _features(x, grid, k, base_fun, derivative=need)
        ctx.route = "table" if isinstance(info, _GridInfo) else (info or "local")
        ctx.k = k
        ctx.base_fun = base_fun
        ctx.save_for_backward(x, *(saved if need else ()))
        return feats

    @staticmethod
    def backward(ctx, ga):
        x, *saved = ctx.saved_tensors
        k = ctx.k
        gx = ga[..., 0] * BASE_FUNS[ctx.base_fun][1](x)
        if ctx.route == "dense":
            (grid,) = saved
            _, dvalues = bspline_dense(x, grid, k, derivative=True)
            return gx + (ga[..., 1:] * dvalues).sum(-1), None, None, None
        if ctx.route == "local":
            cols, dvalues = saved
            return gx.add_((ga.gather(2, cols).mul_(dvalues)).sum(-1)), None, None, None
        jf_all, u_all, cols_table, dcoef = saved
        B, n = x.shape
        for s, e in _blocks(B, n):
            jf, u = jf_all[s:e], u_all[s:e]
            cols = cols_table.index_select(0, jf.reshape(-1)).view(e - s, n, k + 1)
            dvalues = _horner(F.embedding(jf, dcoef).view(e - s, n, k, k + 1), u)
            gx[s:e] += ga[s:e].gather(2, cols).mul_(dvalues).sum(-1)
        return gx, None, None, None


def basis_features(x: torch.Tensor, grid: torch.Tensor, k: int, base_fun: str | Callable = "silu") -> torch.Tensor:
    """Features A (B, in, K+1) = [base(x_i), B_1(x_i) .. B_K(x_i)], differentiable in x.

    A callable ``base_fun`` is applied with autograd; the spline columns always use the
    hand-written backward.
    """
    if isinstance(base_fun, str):
        return BasisFeatures.apply(x, grid, k, base_fun)
    feats = BasisFeatures.apply(x, grid, k, "zero")
    return torch.cat([base_fun(x).unsqueeze(-1), feats[..., 1:]], dim=-1)


def kan_linear_reference(
    x: torch.Tensor, grid: torch.Tensor, weight: torch.Tensor, k: int, base_fun: str | Callable = "silu"
) -> torch.Tensor:
    """Reference KAN layer: x (B, in), grid (in, G+2k+1), weight (in, G+k+1, out) -> y (B, out)."""
    feats = basis_features(x, grid, k, base_fun)
    return feats.flatten(1) @ weight.reshape(-1, weight.shape[-1])


def feature_moments(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-input mean (in, K+1) and sample covariance (in, K+1, K+1) of features (B, in, K+1).

    Computed in float64: the covariance feeds quadratic forms whose result (an edge variance) can
    be far smaller than the covariance entries, and float32 cancellation would show there.
    """
    feats = feats.double()
    B = feats.shape[0]
    mean = feats.mean(0)
    centred = (feats - mean).transpose(0, 1)  # (in, B, K+1)
    cov = centred.transpose(1, 2) @ centred / max(B - 1, 1)
    return mean, cov


def basis_moments(
    x: torch.Tensor, grid: torch.Tensor, k: int, base_fun: str | Callable = "silu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-input mean (in, K+1) and sample covariance (in, K+1, K+1) of the features of x (B, in)."""
    return feature_moments(basis_features(x, grid, k, base_fun))


def edge_std(cov: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Sample std over the batch of every edge's output phi_ij, without a (batch, in, out) tensor.

    cov: (in, K+1, K+1) from ``basis_moments``; weight: (in, K+1, out). Returns (in, out) in the
    weight's dtype: std_ij = sqrt(w_ij^T Cov_i w_ij). Differentiable in weight and cov; the gradient
    at a zero std is 0 (torch.std's would be NaN): the variance is floored at 1e-36, i.e. a std of
    1e-18, far below float32 resolution of any score.
    """
    w = weight.double()
    var = (w * (cov @ w)).sum(1)
    return var.clamp_min(1e-36).sqrt().to(weight.dtype)
