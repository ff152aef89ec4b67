"""Trainable parameters as views into one flat buffer, their gradients as views into another.

The optimizer then works on two vectors (n,) instead of lists of tensors: one op moves every
parameter, no gather of gradients per closure call. ``fit`` rebuilds the views at its start, so
anything that replaces a parameter's ``.data`` between fits (``swap``, ``prune``, ``.to()``,
``load_state_dict``) needs no care; ``state_dict`` and checkpoints see ordinary parameters.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FlatParams"]


class FlatParams:
    """``params`` (trainable, one dtype and device) re-seated as views: ``p.data`` into ``x`` (n,),
    ``p.grad`` into ``g`` (n,), in the given order; ``x`` starts as the parameters' values, ``g`` zero."""

    def __init__(self, params: list[nn.Parameter]):
        if not params:
            raise ValueError("the model has no trainable parameters to fit")
        kinds = {(p.dtype, p.device) for p in params}
        if len(kinds) > 1:
            raise ValueError("fit needs all trainable parameters on one dtype and device, "
                             f"got {sorted(map(str, kinds))}")
        self.params = params
        self.x = torch.cat([p.detach().reshape(-1) for p in params])
        self.g = torch.zeros_like(self.x)
        offset = 0
        for p in params:
            n = p.numel()
            p.data = self.x[offset:offset + n].view(p.shape)
            p.grad = self.g[offset:offset + n].view(p.shape)
            offset += n

    def is_seated(self) -> bool:
        """Whether every parameter still lives in ``x`` (something may have replaced a ``.data``)."""
        offset, base = 0, self.x.data_ptr()
        for p in self.params:
            if p.data_ptr() != base + offset * self.x.element_size() or not p.is_contiguous():
                return False
            offset += p.numel()
        return True

    def set_grads(self, grads: tuple[torch.Tensor | None, ...]) -> None:
        """Write autograd's gradients (one per parameter, None = zero) into ``g`` in one op."""
        parts = [torch.zeros_like(p).reshape(-1) if gr is None else gr.reshape(-1)
                 for p, gr in zip(self.params, grads, strict=True)]
        torch.cat(parts, out=self.g)
