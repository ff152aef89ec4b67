"""Device arguments: a clear error for an unknown device name or one this machine cannot use.

torch's own messages for these cases are a bare ``AssertionError: Torch not compiled with CUDA
enabled`` (``device="cuda"`` on a CPU-only build) or a long parser error (``device="gpu"``).
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "cuda_unavailable_reason"]


def cuda_unavailable_reason() -> str:
    """Why CUDA cannot be used here, e.g. 'torch 2.13.0+cpu, a CPU-only build'."""
    if torch.version.cuda:
        return f"torch {torch.__version__}, CUDA {torch.version.cuda} build but no usable GPU"
    return f"torch {torch.__version__}, a CPU-only build"


def resolve_device(device) -> torch.device:
    """``device`` (a str such as 'cpu', 'cuda', 'cuda:1', or a torch.device) as a torch.device that
    works on this machine; ValueError for a name torch does not know, RuntimeError for a device
    that is not available, each naming the device."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N' "
                         "(any torch.device name)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} was asked for but CUDA is not available "
                               f"({cuda_unavailable_reason()}); use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                               f"numbered 0..{torch.cuda.device_count() - 1}")
        return dev
    if dev.type not in ("cpu", "meta"):
        try:  # mps, xpu, ...: the only portable availability check is to allocate there
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError):
            raise RuntimeError(f"device={device!r} is not available on this machine (torch {torch.__version__} "
                               f"cannot allocate on {dev.type!r} here); use device='cpu'") from None
    return dev
