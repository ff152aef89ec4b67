"""Launcher of the compiled two-loop recursion of L-BFGS (``kernels/lbfgs_cpu.c``).

``direction(g, pairs(steps, dirs, rho), h_diag)``: -H g for flat contiguous CPU float32/float64 vectors;
``available(g)`` says whether the library is built and loaded (see ``cpu_library``) and takes g.
"""

from __future__ import annotations

import ctypes
from functools import cache
from typing import NamedTuple

import torch
from torch import Tensor

from .cpu_library import cpu_library

__all__ = ["Pairs", "available", "direction", "pairs"]

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


class Pairs(NamedTuple):
    """ctypes views of the stored pairs (built by ``pairs`` when they change, not at every iteration), and
    the tensors themselves, kept alive while the views are used."""

    h: int
    s_ptrs: ctypes.Array
    y_ptrs: ctypes.Array
    rho: ctypes.Array
    alpha: ctypes.Array
    tensors: tuple


def pairs(steps: list[Tensor], dirs: list[Tensor], rho: list[float]) -> Pairs:
    """The pairs (steps[i], dirs[i]) (N,), oldest first, with rho[i] = 1 / (dirs[i] . steps[i])."""
    h = len(steps)
    return Pairs(h, (_P * h)(*(t.data_ptr() for t in steps)), (_P * h)(*(t.data_ptr() for t in dirs)),
                 (ctypes.c_double * h)(*rho), (ctypes.c_double * h)(), (*steps, *dirs))


def direction(g: Tensor, p: Pairs, h_diag: float) -> Tensor:
    """r (N,) = -H g: the two-loop recursion over the pairs ``p`` (vectors contiguous, of g's dtype) with
    H0 = h_diag I."""
    r = torch.empty_like(g)
    _typed(f"lbfgs_direction_{_SUFFIX[g.dtype]}")(g.numel(), p.h, p.s_ptrs, p.y_ptrs, p.rho, h_diag, g.data_ptr(),
                                                  r.data_ptr(), p.alpha)
    return r
