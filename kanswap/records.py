"""What a forward records on a KAN or an MLP (pykan's ``save_act``): the batch statistics it
keeps, the forward that records them, and a deep copy that leaves them behind.

Shared by ``kan.py`` and ``mlp.py``; nothing here knows either class (they pass themselves).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["batch_std", "sample_std", "forward_with_records", "deepcopy_without_records"]


def batch_std(x: torch.Tensor) -> torch.Tensor:
    """Sample std over the batch (dim 0, divides by B - 1); a batch of one row has std 0, as the
    per-edge stds from basis covariances, instead of torch's NaN and degrees-of-freedom warning."""
    return x.std(0, correction=1 if x.shape[0] > 1 else 0)


def sample_std(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Sample std (divides by B - 1; 0 for one row) with a zero gradient where the std is 0
    (torch.std's is NaN, which would poison a whole L-BFGS step once a hidden node goes constant).
    The variance floor, 1e-24, moves a zero std to 1e-12: far below anything the scores resolve."""
    return x.var(dim, correction=1 if x.shape[dim] > 1 else 0).clamp_min(1e-24).sqrt()


def forward_with_records(model: nn.Module, x=None) -> None:
    """pykan's get_act for KAN and MLP: a forward with save_act on, on x (a dict means its
    train_input) or, when x is None, on the model's cached data."""
    if isinstance(x, dict):
        x = x["train_input"]
    if x is None:
        if model.cache_data is None:
            raise ValueError("missing input data x: the model has not seen any data; pass x")
        x = model.cache_data
    old = model.save_act
    model.save_act = True
    try:
        model.forward(x)
    finally:
        model.save_act = old


def deepcopy_without_records(module: nn.Module, memo: dict, keys: Sequence[str]) -> nn.Module:
    """Deep copy of module without the records named in keys (set to None in the copy).

    Records from the last forward can hold autograd graphs, which deepcopy refuses; the copy
    recomputes them on its next forward and the original keeps its own.
    """
    new = module.__class__.__new__(module.__class__)
    memo[id(module)] = new
    state = {key: (None if key in keys else val) for key, val in module.__dict__.items()}
    new.__dict__.update(copy.deepcopy(state, memo))
    return new
