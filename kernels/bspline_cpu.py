"""Compiled one-pass basis features of a KAN layer on CPU (``kernels/bspline_cpu.c``).

``kanswap.functional.basis_features`` builds the features A (B, in, K+1) = [base(x_i), B_1(x_i) ..
B_K(x_i)] with ~15 eager PyTorch passes over the points; the C kernels here visit each point once
(its interval, its k + 1 window values from the grid's per-interval tables, its base function) and,
in the backward, gather dA at those k + 1 columns. The GEMM y = A @ W stays in torch (BLAS).

- ``basis_features_fwd`` / ``basis_features_bwd``: the launchers (float32 and float64, C-contiguous);
- ``CPUBasisFeatures``: the autograd Function (backward to x by the C kernel; under
  ``create_graph`` the backward is the reference's torch ops, so double backward works as before);
- ``basis_features``: the dispatcher. The compiled path runs for CPU float32/float64 tensors with a
  named base function on tabled grids (k = 1..3, uniform or updated) when the library is built and
  ``KANSWAP_CPU_KERNELS`` is not ``0``; everything else (traced or ``torch.compile``d code, other
  dtypes, a callable base function, k = 0 or k > 3) takes the PyTorch reference, which stays the
  oracle.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import torch

from kanswap import functional as _ref
from kanswap.spline import _GridInfo

from .cpu_library import cpu_library

__all__ = ["CPUBasisFeatures", "basis_features_fwd", "basis_features_bwd", "basis_features", "compiled_path"]

_STEM = "bspline_cpu"
_BASE_CODES = {"silu": 0, "identity": 1, "zero": 2}
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_MAX_K = 3  # per-interval tables exist for k <= 3 (kanswap.spline._GridInfo)
_ARGTYPES_SET: set[int] = set()


def _library() -> ctypes.CDLL | None:
    """The loaded library with its argument types declared (once), or None."""
    lib = cpu_library(_STEM)
    if lib is not None and id(lib) not in _ARGTYPES_SET:
        p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
        for sfx in _SUFFIX.values():
            fwd = getattr(lib, f"kan_basis_fwd_{sfx}")
            fwd.argtypes = [p, p, i64, i64, p, i64, i32, p, p, p, p, p]
            fwd.restype = i32
            bwd = getattr(lib, f"kan_basis_bwd_{sfx}")
            bwd.argtypes = [p, p, p, i64, i64, p, i64, i32, p, p, p, p, p]
            bwd.restype = i32
        _ARGTYPES_SET.add(id(lib))
    return lib


def compiled_path(x: torch.Tensor, grid: torch.Tensor, k: int, base_fun: str | Callable) -> bool:
    """Whether ``basis_features`` runs the C kernels for these arguments (see the module docstring)."""
    if not (isinstance(base_fun, str) and base_fun in _BASE_CODES and 1 <= k <= _MAX_K):
        return False
    if x.device.type != "cpu" or x.dtype not in _SUFFIX or grid.dtype != x.dtype or grid.device != x.device:
        return False
    if x.dim() != 2 or grid.dim() != 2 or grid.shape[0] != x.shape[1] or grid.shape[1] < 2 * k + 2:
        return False
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    return _library() is not None


def _tables(grid: torch.Tensor, k: int) -> _GridInfo | None:
    """The grid's per-interval tables (cached on the grid by value) with the knots transposed to
    (P, n) for the kernels' interval count, or None where there are no tables (k > 3 on a
    non-uniform grid) or their offsets would not fit the kernels' int32 indices."""
    info = _GridInfo.of(grid, k)
    if info.coef is None or info.coef.numel() >= 2**31:
        return None
    if getattr(info, "knots_t", None) is None:
        info.knots_t = info.grid.t().contiguous()
    return info


def _check(ret: int, name: str) -> None:
    if ret != 0:
        raise RuntimeError(f"kanswap: compiled kernel {name} rejected its sizes (returned {ret})")


def basis_features_fwd(x: torch.Tensor, info: _GridInfo, base_fun: str) -> torch.Tensor:
    """Features (B, n, K+1) of x (B, n) on the grid of ``info`` (from ``_tables``; float32/float64, CPU).
    Column 0, the base function, is torch's (vectorised; the kernel copies it)."""
    lib = _library()
    x = x.contiguous()
    base = _ref.BASE_FUNS[base_fun][0](x).contiguous()
    B, n = x.shape
    P = info.grid.shape[1]
    feats = torch.empty(B, n, P - info.k, dtype=x.dtype)
    fn = getattr(lib, f"kan_basis_fwd_{_SUFFIX[x.dtype]}")
    _check(fn(x.data_ptr(), base.data_ptr(), B, n, info.knots_t.data_ptr(), P, info.k, info.lo.data_ptr(),
              info.inv_w.data_ptr(), info.coef.data_ptr(), info.first.data_ptr(), feats.data_ptr()),
           "kan_basis_fwd")
    return feats


def basis_features_bwd(x: torch.Tensor, ga: torch.Tensor, info: _GridInfo, base_fun: str) -> torch.Tensor:
    """dL/dx (B, n) from x (B, n) and dL/dA (B, n, K+1); the base derivative is torch's."""
    lib = _library()
    x = x.contiguous()
    ga = ga.contiguous()
    dbase = _ref.BASE_FUNS[base_fun][1](x).contiguous()
    B, n = x.shape
    gx = torch.empty_like(x)
    fn = getattr(lib, f"kan_basis_bwd_{_SUFFIX[x.dtype]}")
    _check(fn(x.data_ptr(), dbase.data_ptr(), ga.data_ptr(), B, n, info.knots_t.data_ptr(), info.grid.shape[1],
              info.k, info.lo.data_ptr(), info.inv_w.data_ptr(), info.dcoef.data_ptr(), info.first.data_ptr(),
              gx.data_ptr()), "kan_basis_bwd")
    return gx


class CPUBasisFeatures(torch.autograd.Function):
    """x (B, in) -> A (B, in, K+1) by the C kernel; backward to x by the C kernel (the grid takes no
    gradient, as in the reference)."""

    @staticmethod
    def forward(ctx, x, grid, k: int, base_fun: str, info: _GridInfo):
        ctx.info = info
        ctx.k = k
        ctx.base_fun = base_fun
        ctx.save_for_backward(x, grid)
        return basis_features_fwd(x, info, base_fun)

    @staticmethod
    def backward(ctx, ga):
        x, grid = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph: the reference Function's backward, made of differentiable torch ops on
            # the saved x, so a double backward sees what it sees on the reference path.
            feats = _ref.BasisFeatures.apply(x, grid, ctx.k, ctx.base_fun)
            (gx,) = torch.autograd.grad(feats, x, ga, create_graph=True)
            return gx, None, None, None, None
        return basis_features_bwd(x, ga, ctx.info, ctx.base_fun), None, None, None, None


def basis_features(x: torch.Tensor, grid: torch.Tensor, k: int, base_fun: str | Callable = "silu") -> torch.Tensor:
    """Features A (B, in, K+1) = [base(x_i), B_1(x_i) .. B_K(x_i)] of x (B, in) on grid (in, P),
    differentiable in x: the compiled kernels where they apply, else ``kanswap.functional``'s."""
    if compiled_path(x, grid, k, base_fun):
        info = _tables(grid, k)
        if info is not None:
            return CPUBasisFeatures.apply(x, grid, k, base_fun, info)
    return _ref.basis_features(x, grid, k, base_fun)
