"""pykan's sparsity penalty of one non-negative score matrix: l1 plus row and column entropy.

Used by ``KAN.reg``, ``MLP.reg`` and the autograd part of the KAN objective; the hand-written
block-diagonal versions with gradients (``kan_objective._l1_entropy``, ``mlp_objective``) are
checked against this one.
"""

from __future__ import annotations

import torch

__all__ = ["matrix_reg"]


def matrix_reg(v: torch.Tensor, lamb_l1: float, lamb_entropy: float) -> torch.Tensor:
    """pykan's l1 + row/column entropy penalty of a non-negative matrix (out, in) or vector (n,) v:
    a 0-d tensor."""
    l1 = v.sum()
    if v.dim() == 1:
        p = v / (v.sum() + 1)
        return lamb_l1 * l1 + lamb_entropy * -(p * torch.log2(p + 1e-4)).sum()
    p_row = v / (v.sum(dim=1, keepdim=True) + 1)
    p_col = v / (v.sum(dim=0, keepdim=True) + 1)
    entropy_row = -torch.mean(torch.sum(p_row * torch.log2(p_row + 1e-4), dim=1))
    entropy_col = -torch.mean(torch.sum(p_col * torch.log2(p_col + 1e-4), dim=0))
    return lamb_l1 * l1 + lamb_entropy * (entropy_row + entropy_col)
