"""The placement-cost matrix of one hidden node layer and every neuron's best swap partner.

The arithmetic under ``kanswap.swap`` (which holds the conventions: score matrices ``(n_out, n_in)``,
node ``k`` of ``n`` at ``(k + 1/2) / n``, ``delta(i, j) = M[i, j] + M[j, i] - M[i, i] - M[j, j]``)
and the PyTorch reference of the Triton kernels in ``kanswap.kernels.swap_cost``. Both import it,
so the kernels never import ``kanswap.swap``, which dispatches to them.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_matrix", "check_pair", "positions", "distances", "placement_cost", "swap_deltas",
           "best_partners"]


def check_matrix(t: object, name: str) -> Tensor:
    """t itself if it is a 2-D floating matrix of finite non-negative scores; else a ValueError naming ``name``."""
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {t.dtype}")
    if t.numel() > 0:
        if bool(torch.isnan(t).any()):
            raise ValueError(f"{name} contains NaN scores")
        if bool((t < 0).any()):
            raise ValueError(f"{name} contains negative scores (scores must be >= 0)")
        if bool(torch.isinf(t).any()):
            raise ValueError(f"{name} contains infinite scores")
    return t


def check_pair(a_in: Tensor, b_out: Tensor) -> None:
    """ValueError unless a_in (n_prev, n) and b_out (n, n_next) are score matrices of one layer of n >= 1 nodes."""
    check_matrix(a_in, "a_in")
    check_matrix(b_out, "b_out")
    if a_in.shape[1] != b_out.shape[0]:
        raise ValueError(
            f"a_in has shape {tuple(a_in.shape)} (n_prev, n) and b_out has shape {tuple(b_out.shape)} "
            f"(n, n_next): a_in.shape[1] must equal b_out.shape[0]"
        )
    if a_in.shape[1] == 0:
        raise ValueError("the hidden layer must have at least one neuron")


def positions(n: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """Positions ``(arange(n) + 0.5) / n`` of the ``n`` nodes of a layer, shape ``(n,)``."""
    return (torch.arange(n, dtype=dtype, device=device) + 0.5) / n


def distances(n_a: int, n_b: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``|positions(n_a)[:, None] - positions(n_b)[None, :]|``, shape ``(n_a, n_b)``."""
    return (positions(n_a, dtype, device)[:, None] - positions(n_b, dtype, device)[None, :]).abs()


def placement_cost(a_in: Tensor, b_out: Tensor) -> Tensor:
    """Placement cost matrix ``M`` of one hidden node layer.

    ``M[i, p] = sum_a |x_a - y_p| a_in[a, i] + sum_b |y_p - z_b| b_out[i, b]`` with ``x, y, z`` the
    positions of the previous, this and the next node layer. Computed as two matrix products with the
    small distance matrices ``D_x = |x_a - y_p|`` (``n_prev, n``) and ``D_z = |z_b - y_p|``
    (``n_next, n``): ``M = a_in^T @ D_x + b_out @ D_z``.

    Args:
        a_in: incoming scores ``S_{l-1}^T``, shape ``(n_prev, n)``.
        b_out: outgoing scores ``S_l^T``, shape ``(n, n_next)``.

    Returns:
        ``M``, shape ``(n, n)``, in the promoted dtype of the inputs.
    """
    check_pair(a_in, b_out)
    dtype = torch.promote_types(a_in.dtype, b_out.dtype)
    a_in, b_out = a_in.to(dtype), b_out.to(dtype)
    n_prev, n = a_in.shape
    n_next = b_out.shape[1]
    d_x = distances(n_prev, n, dtype, a_in.device)
    d_z = distances(n_next, n, dtype, a_in.device)
    return a_in.T @ d_x + b_out @ d_z


def _check_square(m: Tensor) -> None:
    if not isinstance(m, Tensor) or m.dim() != 2 or m.shape[0] != m.shape[1]:
        shape = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
        raise ValueError(f"m must be a square (n, n) placement-cost matrix, got {shape}")
    if bool(torch.isnan(m).any()):
        raise ValueError("m contains NaN")


def swap_deltas(m: Tensor) -> Tensor:
    """Exact change of the connection cost for every pairwise swap.

    Args:
        m: placement cost matrix, shape ``(n, n)`` (see :func:`placement_cost`).

    Returns:
        ``delta``, shape ``(n, n)``, ``delta[i, j] = m[i, j] + m[j, i] - m[i, i] - m[j, j]``;
        symmetric, with an exactly zero diagonal.
    """
    _check_square(m)
    d = torch.diagonal(m)
    return (m + m.T) - d[:, None] - d[None, :]


def best_partners(m: Tensor) -> tuple[Tensor, Tensor]:
    """Best swap partner of every neuron.

    Args:
        m: placement cost matrix, shape ``(n, n)``.

    Returns:
        ``(delta_min, argmin)``, both shape ``(n,)``: per row ``i`` the minimal ``delta(i, j)``
        (always ``<= 0`` since ``j = i`` gives 0) and the first ``j`` attaining it.
    """
    delta = swap_deltas(m)
    argmin = torch.argmin(delta, dim=1)  # documented to return the first minimal index
    return delta.gather(1, argmin[:, None]).squeeze(1), argmin
