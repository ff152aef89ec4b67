"""Compiled one-pass basis features of a KAN layer on CPU (``kernels/bspline_cpu.c``).

``kanswap.functional.basis_features`` builds the features A (B, in, K+1) = [base(x_i), B_1(x_i) ..
B_K(x_i)] with ~15 eager PyTorch passes over the points; the C kernels here visit each point once
(its interval, its k + 1 window values from the grid's per-interval tables, its base function) and,
in the backward, gather dA at those k + 1 columns. The GEMM y = A @ W stays in torch (BLAS).

- ``basis_features_fwd`` / ``basis_features_bwd``: the launchers (float32 and float64, C-contiguous);
- ``kan_linear_fwd`` / ``kan_linear_bwd``: the layer y = A(x) @ W block by block of rows: a block's
  features go to a reused scratch buffer and straight into the GEMM, and the backward recomputes
  them (dW) and gathers dA (dx); A is never kept whole;
- ``CPUBasisFeatures`` (features) and ``CPUKANLinear`` (the layer): the autograd Functions; under
  ``create_graph`` their backward is the reference's torch ops, so double backward works as before;
- ``basis_features``, ``kan_linear`` (``compiled_kan_linear``: the same, or None where the compiled
  path does not apply): the dispatchers. The compiled path runs for CPU float32/float64 tensors with
  a named base function on tabled grids (k = 1..3, uniform or updated) when the library is built and
  ``KANSWAP_CPU_KERNELS`` is not ``0``; everything else (traced or ``torch.compile``d code, other
  dtypes, a callable base function, k = 0 or k > 3) takes the PyTorch reference, which stays the
  oracle.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

import torch

from kanswap import functional as _ref
from kanswap.spline import _GridInfo

from .cpu_library import cpu_library

__all__ = [
    "CPUBasisFeatures",
    "CPUKANLinear",
    "basis_features_fwd",
    "basis_features_bwd",
    "kan_linear_fwd",
    "kan_linear_bwd",
    "basis_features",
    "kan_linear",
    "compiled_kan_linear",
    "compiled_path",
]

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


def basis_features_fwd(x: torch.Tensor, info: _GridInfo, base_fun: str, base: torch.Tensor | None = None,
                       out: torch.Tensor | None = None) -> torch.Tensor:
    """Features (B, n, K+1) of x (B, n) on the grid of ``info`` (from ``_tables``; float32/float64, CPU).
    Column 0, the base function, is torch's (vectorised; the kernel copies it): ``base`` (B, n) when
    the caller has it. ``out``: a contiguous (B, n, K+1) tensor to write into."""
    lib = _library()
    x = x.contiguous()
    base = (_ref.BASE_FUNS[base_fun][0](x) if base is None else base).contiguous()
    B, n = x.shape
    P = info.grid.shape[1]
    feats = torch.empty(B, n, P - info.k, dtype=x.dtype) if out is None else out
    fn = getattr(lib, f"kan_basis_fwd_{_SUFFIX[x.dtype]}")
    _check(fn(x.data_ptr(), base.data_ptr(), B, n, info.knots_t.data_ptr(), P, info.k, info.lo.data_ptr(),
              info.inv_w.data_ptr(), info.coef.data_ptr(), info.first.data_ptr(), feats.data_ptr()),
           "kan_basis_fwd")
    return feats


def basis_features_bwd(x: torch.Tensor, ga: torch.Tensor, info: _GridInfo, base_fun: str,
                       dbase: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """dL/dx (B, n) from x (B, n) and dL/dA (B, n, K+1); the base derivative ``dbase`` (B, n) is
    torch's. ``out``: a contiguous (B, n) tensor to write into."""
    lib = _library()
    x = x.contiguous()
    ga = ga.contiguous()
    dbase = (_ref.BASE_FUNS[base_fun][1](x) if dbase is None else dbase).contiguous()
    B, n = x.shape
    gx = torch.empty_like(x) if out is None else out
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


# Feature rows per block of the fused layer: a block's features (and, in the backward, their
# gradient) live in a reused ~1 MiB buffer that stays in cache between the kernel and the GEMM.
# Materialising all of A instead costs its page faults on every call: at (1024, 256, 256), one
# thread, the basis took 4.2 ms a call inside the layer against 1.2 ms on a reused buffer.
_BLOCK_BYTES = 1 << 20
_buffers = threading.local()


def _buffer(slot: str, numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A flat scratch tensor of at least numel elements, kept per thread and reused across calls
    (it never leaves this module: every use finishes before the call returns)."""
    buf = getattr(_buffers, slot, None)
    if buf is None or buf.numel() < numel or buf.dtype != dtype:
        buf = torch.empty(numel, dtype=dtype)
        setattr(_buffers, slot, buf)
    return buf[:numel]


def _block_rows(n: int, width: int, itemsize: int) -> int:
    return max(1, _BLOCK_BYTES // (n * width * itemsize))


def kan_linear_fwd(x: torch.Tensor, info: _GridInfo, weight: torch.Tensor, base_fun: str,
                   keep: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(y (B, out) = A(x) @ W, A or None) for x (B, n), weight (n, K+1, out), block by block of
    rows. ``keep``: when A fits one block it is built in a tensor of its own and returned, so that
    the backward does not rebuild it (KANLinear forward+backward at (512, 9, 10), one thread,
    interleaved medians: 599 µs kept, 662 µs rebuilt)."""
    x = x.contiguous()
    B, n = x.shape
    width, n_out = weight.shape[1], weight.shape[2]
    w2 = weight.reshape(n * width, n_out)
    base = _ref.BASE_FUNS[base_fun][0](x)
    y = torch.empty(B, n_out, dtype=x.dtype)
    rows = _block_rows(n, width, x.element_size())
    if keep and B <= rows:
        feats = basis_features_fwd(x, info, base_fun, base)
        torch.mm(feats.view(B, n * width), w2, out=y)
        return y, feats
    buf = _buffer("feats", min(rows, B) * n * width, x.dtype)
    for s in range(0, B, rows):
        e = min(s + rows, B)
        feats = basis_features_fwd(x[s:e], info, base_fun, base[s:e], buf[: (e - s) * n * width].view(e - s, n, width))
        torch.mm(feats.view(e - s, n * width), w2, out=y[s:e])
    return y, None


def kan_linear_bwd(dy: torch.Tensor, x: torch.Tensor, info: _GridInfo, weight: torch.Tensor, base_fun: str,
                   need_dx: bool, need_dw: bool, feats: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(dx (B, n), dW (n, K+1, out)) of y = A(x) @ W; the features are recomputed block by block
    (one basis pass, 1.2 ms at 262144 points) unless the forward kept them (``feats``)."""
    x = x.contiguous()
    dy = dy.contiguous()
    B, n = x.shape
    width, n_out = weight.shape[1], weight.shape[2]
    w2 = weight.reshape(n * width, n_out)
    if feats is not None and need_dw:
        dw = torch.mm(feats.view(B, n * width).t(), dy).view(n, width, n_out)
        dx, _ = kan_linear_bwd(dy, x, info, weight, base_fun, need_dx, False) if need_dx else (None, None)
        return dx, dw
    dx = torch.empty_like(x) if need_dx else None
    dw = (torch.empty if B else torch.zeros)(n * width, n_out, dtype=x.dtype) if need_dw else None
    dbase = _ref.BASE_FUNS[base_fun][1](x) if need_dx else None
    base = _ref.BASE_FUNS[base_fun][0](x) if need_dw else None
    rows = _block_rows(n, width, x.element_size())
    size = min(rows, B) * n * width
    fbuf = _buffer("feats", size, x.dtype) if need_dw else None
    gbuf = _buffer("grads", size, x.dtype) if need_dx else None
    for s in range(0, B, rows):
        e = min(s + rows, B)
        m = (e - s) * n * width
        if need_dw:
            feats = basis_features_fwd(x[s:e], info, base_fun, base[s:e], fbuf[:m].view(e - s, n, width))
            a_t = feats.view(e - s, n * width).t()
            # the first block writes dW, the others add to it in block order (deterministic)
            torch.mm(a_t, dy[s:e], out=dw) if s == 0 else dw.addmm_(a_t, dy[s:e])
        if need_dx:
            ga = torch.mm(dy[s:e], w2.t(), out=gbuf[:m].view(e - s, n * width))
            basis_features_bwd(x[s:e], ga.view(e - s, n, width), info, base_fun, dbase[s:e], dx[s:e])
    return dx, (dw.view(n, width, n_out) if need_dw else None)


class CPUKANLinear(torch.autograd.Function):
    """y = A(x) @ W with the features built block by block by the C kernel and never kept whole:
    x (B, in), weight (in, K+1, out) -> y (B, out); gradients for x and weight."""

    @staticmethod
    def forward(ctx, x, grid, weight, k: int, base_fun: str, info: _GridInfo):
        ctx.info = info
        ctx.k = k
        ctx.base_fun = base_fun
        y, feats = kan_linear_fwd(x, info, weight, base_fun, keep=ctx.needs_input_grad[2])
        ctx.save_for_backward(x, grid, weight, feats)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, grid, weight, feats = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph: the reference layer's differentiable ops (see CPUBasisFeatures).
            y = _ref.kan_linear_reference(x, grid, weight, ctx.k, ctx.base_fun)
            wanted = [t for t, need in zip((x, weight), (ctx.needs_input_grad[0], ctx.needs_input_grad[2]),
                                           strict=True) if need]
            grads = iter(torch.autograd.grad(y, wanted, dy, create_graph=True))
            gx = next(grads) if ctx.needs_input_grad[0] else None
            gw = next(grads) if ctx.needs_input_grad[2] else None
            return gx, None, gw, None, None, None
        dx, dw = kan_linear_bwd(dy, x, ctx.info, weight, ctx.base_fun, ctx.needs_input_grad[0],
                                ctx.needs_input_grad[2], feats)
        return dx, None, dw, None, None, None


def compiled_kan_linear(x: torch.Tensor, grid: torch.Tensor, weight: torch.Tensor, k: int,
                        base_fun: str | Callable = "silu") -> torch.Tensor | None:
    """``kan_linear`` on the blocked compiled path, or None where that path does not apply."""
    if compiled_path(x, grid, k, base_fun) and weight.dtype == x.dtype and weight.device == x.device:
        info = _tables(grid, k)
        if info is not None:
            return CPUKANLinear.apply(x, grid, weight, k, base_fun, info)
    return None


def kan_linear(x: torch.Tensor, grid: torch.Tensor, weight: torch.Tensor, k: int,
               base_fun: str | Callable = "silu") -> torch.Tensor:
    """KAN layer y = A(x) @ W: x (B, in), grid (in, G+2k+1), weight (in, G+k+1, out) -> y (B, out),
    differentiable in x and weight: the blocked compiled path where it applies, else
    ``kanswap.functional.kan_linear_reference``."""
    y = compiled_kan_linear(x, grid, weight, k, base_fun)
    return _ref.kan_linear_reference(x, grid, weight, k, base_fun) if y is None else y


def basis_features(x: torch.Tensor, grid: torch.Tensor, k: int, base_fun: str | Callable = "silu") -> torch.Tensor:
    """Features A (B, in, K+1) = [base(x_i), B_1(x_i) .. B_K(x_i)] of x (B, in) on grid (in, P),
    differentiable in x: the compiled kernels where they apply, else ``kanswap.functional``'s."""
    if compiled_path(x, grid, k, base_fun):
        info = _tables(grid, k)
        if info is not None:
            return CPUBasisFeatures.apply(x, grid, k, base_fun, info)
    return _ref.basis_features(x, grid, k, base_fun)
