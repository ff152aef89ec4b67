"""The symbolic branch of a KAN layer: pykan's ``Symbolic_KANLayer`` tensors, held so that
checkpoints and state_dicts move both ways (kanswap does not evaluate symbolic formulas yet)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SymbolicStub"]


class SymbolicStub(nn.Module):
    """Holds pykan's symbolic-branch tensors so checkpoints move both ways.

    ``mask`` (out, in) and ``affine`` (out, in, 4) have pykan's names and shapes. kanswap does not
    evaluate symbolic formulas: loading weights whose symbolic mask is non-zero is refused.
    """

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.mask = nn.Parameter(torch.zeros(out_dim, in_dim), requires_grad=False)
        self.affine = nn.Parameter(torch.zeros(out_dim, in_dim, 4), requires_grad=False)
        self.funs_name = [["0"] * in_dim for _ in range(out_dim)]

    def permute(self, perm: torch.Tensor, mode: str) -> None:
        with torch.no_grad():
            if mode == "out":
                self.mask.data = self.mask.data[perm].contiguous()
                self.affine.data = self.affine.data[perm].contiguous()
            else:
                self.mask.data = self.mask.data[:, perm].contiguous()
                self.affine.data = self.affine.data[:, perm].contiguous()

    def get_subset(self, in_id, out_id) -> SymbolicStub:
        new = SymbolicStub(len(in_id), len(out_id)).to(self.mask.device)
        with torch.no_grad():
            new.mask.data = self.mask.data[out_id][:, in_id].clone()
            new.affine.data = self.affine.data[out_id][:, in_id].clone()
        return new
