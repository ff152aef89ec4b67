"""Launchers of the compiled per-layer loops of KAN's objective (``kernels/kan_objective_cpu.c``).

Tensors in, tensors out; the C code takes raw pointers of contiguous CPU float32/float64 tensors.
``available(dtype)`` says whether the library is built and loaded (see ``cpu_library``). Shapes:
B samples, n inputs, m outputs, grid (n, P) sorted, k the spline order, K = P - 1 - k basis
functions per input, W the folded weight (n, K + 1, m) (row 0 base weight, rows 1.. scale_sp * coef).
"""

from __future__ import annotations

import ctypes
from functools import cache
from typing import NamedTuple

import torch
from torch import Tensor

from .cpu_library import cpu_library

__all__ = ["BASE_KINDS", "MAX_K", "Basis", "RegForward", "WeightReg", "available", "basis", "forward", "backward",
           "fold", "fold_grad", "inverse_spans"]

BASE_KINDS = {"silu": 0, "identity": 1, "zero": 2}
MAX_K = 15  # the C code's local de Boor triangle holds at most MAX_K + 1 values
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_I64, _P = ctypes.c_int64, ctypes.c_void_p


class Basis(NamedTuple):
    """One layer's basis windows for x (B, n): start (B, n) int32 (first coef index of the window),
    val and dval (B, n, k + 1) values and x-derivatives of the k + 1 B-splines from start on, base
    and dbase (B, n) the base branch and its derivative; dval and dbase None when not asked; xstat
    (2, n) float64 every input column's mean and sample variance (None when not asked)."""

    start: Tensor
    val: Tensor
    dval: Tensor | None
    base: Tensor
    dbase: Tensor | None
    xstat: Tensor | None


def _library():
    lib = cpu_library("kan_objective_cpu")
    if lib is not None and not getattr(lib, "_kanswap_typed", False):
        for suffix in _SUFFIX.values():
            getattr(lib, f"kan_basis_{suffix}").argtypes = [_I64] * 4 + [_P] * 4 + [_I64] + [_P] * 6
            getattr(lib, f"kan_forward_{suffix}").argtypes = [_I64] * 5 + [_P] * 9
            getattr(lib, f"kan_fold_{suffix}").argtypes = [_I64] * 3 + [_P] * 5
            getattr(lib, f"kan_fold_grad_{suffix}").argtypes = [_I64] * 3 + [_P] * 8
            getattr(lib, f"kan_backward_{suffix}").argtypes = [_I64] * 5 + [_P] * 8 + [_I64] + [_P] * 8
        lib.kan_reg_forward.argtypes = [_I64] + [_P] * 4 + [_I64] * 2 + [ctypes.c_double] * 3 + [_P] * 2
        lib.kan_reg_forward.restype = ctypes.c_double
        for suffix in _SUFFIX.values():
            fn = getattr(lib, f"mlp_reg_{suffix}")
            fn.argtypes = [_I64] + [_P] * 3 + [ctypes.c_double] * 3 + [_P]
            fn.restype = ctypes.c_double
        lib._kanswap_typed = True
    return lib


def available(dtype: torch.dtype) -> bool:
    """True when the compiled library is loaded and handles ``dtype``."""
    return dtype in _SUFFIX and _library() is not None


def _buffer(ws: dict | None, key: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """An uninitialised tensor, kept in ``ws`` (a dict owned by the caller) and handed out again on the
    next call with the same key and shape: a fit calls each layer's loops ~400 times with the same
    shapes, and fresh MiB-sized tensors cost page faults each time (basis with derivative at
    (2048, 64): 4.0 ms fresh against 1.6 ms reused)."""
    if ws is None:
        return torch.empty(shape, dtype=dtype)
    t = ws.get(key)
    if t is None or t.shape != shape or t.dtype != dtype:
        t = ws[key] = torch.empty(shape, dtype=dtype)
    return t


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


@cache
def _fn(name: str, dtype: torch.dtype):
    # looked up once: the objective checks ``available`` when it is built, and a fit then calls ~15 of
    # these per closure call (1.3 us each through the environment check, 0.1 us cached)
    return getattr(_library(), f"{name}_{_SUFFIX[dtype]}")


def inverse_spans(grid: Tensor, k: int) -> Tensor:
    """(k, n, P - 1): row j - 1 holds 1 / (g[c + j] - g[c]) for c < P - j, 0 for a zero span and
    beyond (repeated knots contribute nothing, as in ``spline``)."""
    n, P = grid.shape
    out = grid.new_zeros(k, n, P - 1)
    for j in range(1, k + 1):
        span = grid[:, j:] - grid[:, :-j]
        out[j - 1, :, :P - j] = torch.where(span > 0, 1.0 / torch.where(span > 0, span, torch.ones_like(span)), 0.0)
    return out


def basis(x: Tensor, grid: Tensor, inv: Tensor, k: int, base_fun: str, derivative: bool, ws: dict | None = None,
          stats: bool = False) -> Basis:
    """Basis windows of x (B, n) contiguous on grid (n, P) with ``inv = inverse_spans(grid, k)``;
    with ``stats`` also the columns' mean and variance. ws: reuse the output tensors of the last call
    with this dict (see ``_buffer``)."""
    B, n = x.shape
    P = grid.shape[1]
    kind = BASE_KINDS[base_fun]
    sig = torch.sigmoid(x) if kind == 0 else None  # torch's exp is vectorised; libm's is not
    dt = x.dtype
    start = _buffer(ws, "start", (B, n), torch.int32)
    val = _buffer(ws, "val", (B, n, k + 1), dt)
    dval = _buffer(ws, "dval", (B, n, k + 1), dt) if derivative else None
    base = _buffer(ws, "base", (B, n), dt)
    dbase = _buffer(ws, "dbase", (B, n), dt) if derivative else None
    xstat = _buffer(ws, "xstat", (2, n), torch.float64) if stats else None
    _fn("kan_basis", x.dtype)(B, n, P, k, _ptr(x), _ptr(grid), _ptr(inv), _ptr(sig), kind, _ptr(start), _ptr(val),
                              _ptr(dval), _ptr(base), _ptr(dbase), _ptr(xstat))
    return Basis(start, val, dval, base, dbase, xstat)


def forward(bas: Basis, W: Tensor, stats: bool, ws: dict | None = None) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """y (B, m) = sum_i phi_i, phi_ij = W[i, 0, j] base_i + sum_t W[i, 1 + start_i + t, j] val_it; with
    ``stats`` also every edge's mean and sample variance over the batch (n, m), float64. ws: as ``basis``."""
    B, n = bas.start.shape
    _, K1, m = W.shape
    k = bas.val.shape[-1] - 1
    y = _buffer(ws, "y", (B, m), W.dtype)
    mean = var = work = None
    if stats:
        mean = _buffer(ws, "mean", (n, m), torch.float64)
        var = _buffer(ws, "var", (n, m), torch.float64)
        work = _buffer(ws, "work", (2, n, m), torch.float64)
    phi = _buffer(ws, "phi", (m,), W.dtype)
    _fn("kan_forward", W.dtype)(B, n, m, k, K1, _ptr(bas.start), _ptr(bas.val), _ptr(bas.base), _ptr(W), _ptr(y),
                                _ptr(mean), _ptr(var), _ptr(work), _ptr(phi))
    return y, mean, var


def backward(bas: Basis, W: Tensor, gz: Tensor, c: Tensor | None, mean: Tensor | None, input_grad: bool,
             ws: dict | None = None, x: Tensor | None = None, dxv: Tensor | None = None
             ) -> tuple[Tensor, Tensor | None]:
    """From gz (B, m) = d objective / d y and, if not None, the per-edge coefficient c (n, m) with the
    edge means (n, m) (both float64; c's rows may be strided, e.g. a column slice of a wider buffer):
    d objective / d phi_bij = gz_bj + c_ij (phi_bij - mean_ij).
    Returns dW (n, K + 1, m) and, with ``input_grad`` (needs dval, dbase), gx (B, n). ws: as ``basis``.
    With x (B, n) the layer's contiguous input and dxv (n,) float64 (needs ``bas.xstat``), gx also gets
    (x_bi - mean_i) dxv_i, mean_i the input column's mean (the regularisation's pull through the input stds)."""
    B, n = bas.start.shape
    _, K1, m = W.shape
    k = bas.val.shape[-1] - 1
    dW = _buffer(ws, "dW", tuple(W.shape), W.dtype)
    gx = _buffer(ws, "gx", (B, n), W.dtype) if input_grad else None
    scratch = _buffer(ws, "scratch", (2, m), W.dtype)
    if c is not None and (c.dtype != torch.float64 or c.stride(1) != 1 or mean.dtype != torch.float64
                          or not mean.is_contiguous()):
        raise ValueError("backward: c needs float64 rows of unit stride and mean a contiguous float64 tensor")
    if dxv is not None and (not input_grad or x is None or bas.xstat is None or dxv.dtype != torch.float64
                            or x.dtype != W.dtype or not x.is_contiguous() or not dxv.is_contiguous()):
        raise ValueError("backward: dxv needs input_grad, the basis' xstat, x contiguous and dxv contiguous float64")
    ldc = c.stride(0) if c is not None else 0
    _fn("kan_backward", W.dtype)(B, n, m, k, K1, _ptr(bas.start), _ptr(bas.val), _ptr(bas.dval), _ptr(bas.base),
                                 _ptr(bas.dbase), _ptr(W), _ptr(gz), _ptr(c), ldc, _ptr(mean), _ptr(dW), _ptr(gx),
                                 _ptr(scratch), _ptr(scratch) + m * scratch.element_size(),  # rows: no select
                                 _ptr(x), _ptr(bas.xstat) if dxv is not None else None, _ptr(dxv))
    return dW, gx


def fold(coef: Tensor, scale_base: Tensor, scale_sp: Tensor, mask: Tensor | None, ws: dict | None = None) -> Tensor:
    """The folded weight W (n, K + 1, m) of coef (n, m, K) and scale_base, scale_sp, mask (n, m) (mask
    None: all ones), as ``functional.fold_weight``: row 0 mask * scale_base, rows 1.. (mask * scale_sp) * coef.
    All contiguous, one dtype."""
    n, m, K = coef.shape
    W = _buffer(ws, "W", (n, K + 1, m), coef.dtype)
    _fn("kan_fold", coef.dtype)(n, m, K, _ptr(coef), _ptr(scale_base), _ptr(scale_sp), _ptr(mask), _ptr(W))
    return W


def fold_grad(dW: Tensor, coef: Tensor, scale_sp: Tensor, mask: Tensor | None, dcoef_reg: Tensor | None,
              g_coef: Tensor | None, g_base: Tensor | None, g_sp: Tensor | None) -> None:
    """From dW (n, K + 1, m) of the folded weight, write the gradients of coef (n, m, K, plus dcoef_reg
    if given), scale_base and scale_sp (n, m) into the given contiguous tensors (None: not trainable)."""
    n, m, K = coef.shape
    _fn("kan_fold_grad", coef.dtype)(n, m, K, _ptr(dW), _ptr(coef), _ptr(scale_sp), _ptr(mask), _ptr(dcoef_reg),
                                     _ptr(g_coef), _ptr(g_base), _ptr(g_sp))


class RegForward:
    """The forward metrics' l1 + row/column entropy penalty of all layers (pykan's ``matrix_reg`` of each
    layer's (out, in) edge-std matrix, divided by the input stds + 0.1 when ``normed``) and its gradient,
    in one compiled float64 pass. Per layer l (n, m): ``c[l]`` (n, m) and ``dvar2[l]`` (n,), float64 buffers
    kept here, the coefficients of the edge outputs' and the inputs' centred values in d(lamb reg) / d phi
    and d(lamb reg) / d x."""

    def __init__(self, sizes: list[tuple[int, int]]):
        L = len(sizes)
        self.L = L
        self.ns = (ctypes.c_int64 * L)(*(n for n, _ in sizes))
        self.ms = (ctypes.c_int64 * L)(*(m for _, m in sizes))
        self.c = [torch.empty(n, m, dtype=torch.float64) for n, m in sizes]
        self.dvar2 = [torch.empty(n, dtype=torch.float64) for n, _ in sizes]
        self._c_ptrs = (_P * L)(*(t.data_ptr() for t in self.c))
        self._d_ptrs = (_P * L)(*(t.data_ptr() for t in self.dvar2))
        self._in_key = None
        self._in_ptrs = None

    def __call__(self, var: list[Tensor], xstat: list[Tensor], B: int, normed: bool, lamb: float, lamb_l1: float,
                 lamb_entropy: float) -> float:
        """var[l] (n, m) edge variances, xstat[l] (2, n) input means and variances: contiguous float64
        (the buffers of ``forward`` and ``basis``, the same from call to call). Returns reg."""
        key = tuple(t.data_ptr() for t in var) + tuple(t.data_ptr() for t in xstat)
        if key != self._in_key:
            self._in_ptrs = ((_P * self.L)(*key[:self.L]), (_P * self.L)(*key[self.L:]))
            self._in_key = key
        return _library().kan_reg_forward(self.L, self.ns, self.ms, self._in_ptrs[0], self._in_ptrs[1], B,
                                          int(normed), lamb, lamb_l1, lamb_entropy, self._c_ptrs, self._d_ptrs)


class WeightReg:
    """An MLP's ``reg_metric='w'`` penalty: pykan's ``matrix_reg`` of every layer's |W| (out, in), summed,
    and ``lamb`` times its gradient added to the weights' gradients, in one compiled float64 pass (the C
    code's ``matrix_reg`` is the one the KAN penalty above uses)."""

    def __init__(self, L: int):
        self.L = L
        self._key = None
        self._args = None

    def __call__(self, weights: list[Tensor], grads: list[Tensor], lamb: float, lamb_l1: float,
                 lamb_entropy: float) -> float:
        """weights[l] (out, in) and grads[l] (out, in): contiguous, one float dtype. Returns the penalty
        (without lamb); grads[l] += lamb * d penalty / d weights[l]."""
        key = tuple(w.data_ptr() for w in weights) + tuple(g.data_ptr() for g in grads)
        if key != self._key:  # pointer arrays rebuilt only when a tensor moved
            L = self.L
            self._args = ((_I64 * L)(*(w.shape[0] for w in weights)), (_I64 * L)(*(w.shape[1] for w in weights)),
                          (_P * L)(*key[:L]), (_P * L)(*key[L:]))
            self._key = key
        rows, cols, w_ptrs, g_ptrs = self._args
        return _fn("mlp_reg", weights[0].dtype)(self.L, rows, cols, w_ptrs, lamb, lamb_l1, lamb_entropy, g_ptrs)
