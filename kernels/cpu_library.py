"""Loads kanswap's compiled CPU kernels (``kernels/*_cpu.c``, built by ``pip install``) with ctypes.

``cpu_library(stem)`` returns the ``ctypes.CDLL`` of ``_<stem>``, or None when it is not built
(no compiler at install time, an odd platform) or when ``KANSWAP_CPU_KERNELS=0`` turns the
compiled path off; kanswap then runs its PyTorch path and says so once per library.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
import warnings
from functools import cache
from pathlib import Path

__all__ = ["cpu_kernels_enabled", "cpu_library", "cpu_library_built"]

_HERE = Path(__file__).parent


def cpu_kernels_enabled() -> bool:
    """False when the environment variable ``KANSWAP_CPU_KERNELS`` is ``0`` (read at each call)."""
    return os.environ.get("KANSWAP_CPU_KERNELS", "1") != "0"


@cache
def _load(stem: str) -> ctypes.CDLL | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = _HERE / f"_{stem}{suffix}"
        if path.exists():
            try:
                return ctypes.CDLL(str(path))
            except OSError as err:
                warnings.warn(f"kanswap: compiled CPU kernels {path.name} do not load ({err}); "
                              "using the PyTorch path", RuntimeWarning, stacklevel=3)
                return None
    warnings.warn(f"kanswap: compiled CPU kernels _{stem} are not built (no C compiler at install "
                  "time?); using the PyTorch path. Reinstall with a C compiler to build them.",
                  RuntimeWarning, stacklevel=3)
    return None


def cpu_library(stem: str) -> ctypes.CDLL | None:
    """The loaded library ``_<stem>`` or None (not built, or ``KANSWAP_CPU_KERNELS=0``)."""
    if not cpu_kernels_enabled():
        return None
    return _load(stem)


def cpu_library_built(stem: str) -> bool:
    """Whether ``_<stem>`` is built and loads, whatever ``KANSWAP_CPU_KERNELS`` says (for tests and CI)."""
    return _load(stem) is not None
