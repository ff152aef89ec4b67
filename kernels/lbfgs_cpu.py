"""Launcher of the compiled two-loop recursion of L-BFGS (``kernels/lbfgs_cpu.c``).

``direction(g, steps, dirs, rho, h_diag)``: -H g for flat contiguous CPU float32/float64 vectors;
``available(g)`` says whether the library is built and loaded (see ``cpu_library``) and takes g.
"""

from __future__ import annotations

import ctypes
from functools import cache

import torch
from torch import Tensor

from .cpu_library import cpu_library

__all__ = ["available", "direction"]

_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_I64, _P = ctypes.c_int64, ctypes.c_void_p


@cache
def _typed(name: str):
    lib = cpu_library("lbfgs_cpu")
    fn = getattr(lib, name)
    fn.argtypes = [_I64, _I64, _P, _P, _P, ctypes.c_double, _P, _P, _P]
    return fn


def available(g: Tensor) -> bool:
    """True when the compiled library is loaded and handles g: a contiguous CPU float32/float64 vector."""
    return (g.dtype in _SUFFIX and g.device.type == "cpu" and g.dim() == 1 and g.is_contiguous()
            and cpu_library("lbfgs_cpu") is not None)


def direction(g: Tensor, steps: list[Tensor], dirs: list[Tensor], rho: list[float], h_diag: float) -> Tensor:
    """r (N,) = -H g: the two-loop recursion over the pairs (steps[i], dirs[i]) (N,), oldest first, with
    rho[i] = 1 / (dirs[i] . steps[i]) and H0 = h_diag I. All vectors contiguous, of g's dtype."""
    h = len(steps)
    r = torch.empty_like(g)
    s_ptrs = (_P * h)(*(t.data_ptr() for t in steps))
    y_ptrs = (_P * h)(*(t.data_ptr() for t in dirs))
    rho_arr = (ctypes.c_double * h)(*rho)
    alpha = (ctypes.c_double * h)()
    _typed(f"lbfgs_direction_{_SUFFIX[g.dtype]}")(g.numel(), h, s_ptrs, y_ptrs, rho_arr, h_diag, g.data_ptr(),
                                                  r.data_ptr(), alpha)
    return r
