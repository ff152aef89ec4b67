"""The MLP's training objective with a hand-written gradient, for ``fit``'s closure.

objective = mean((MLP(x) - y)^2) + lamb * sum_l matrix_reg(|W_l|)  (pykan's ``reg_metric='w'``).
One closure call is one GEMM per layer forward, two backward, a few elementwise ops: about 30 ops
for [9,20,20,1] instead of ~150 through autograd (the issue's measurement: 118 us by hand against
1145 us with autograd and torch's LBFGS around it). The penalty is one compiled float64 call on a
CPU where the library is built (``kernels.kan_objective_cpu.WeightReg``: 16.5 us against BlockReg's
~50 torch ops, 173 us, on the reference MLP [9,20,20,1], bench/fit_parts.py), ``BlockReg`` otherwise. Gradients
equal autograd's within 1e-12 relative in float64 (tests/test_mlp_objective.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .kernels import kan_objective_cpu as cpu

__all__ = ["mlp_objective", "BlockReg"]

_LOG2 = math.log(2.0)


class BlockReg:
    """sum_l matrix_reg(|W_l|, lamb_l1, lamb_entropy) and its derivative in every W_l, in one pass over
    the block-diagonal matrix of all layers' weights (R, C): entries off the blocks are 0, so row and
    column sums are per layer, their entropy terms vanish and their gradient is masked by sign(0) = 0.
    One pass is ~50 ops for any depth, instead of ~45 per layer (measured with the torch profiler).

    With p = v / (rowsum(v) + 1) and E = -mean_rows sum p log2(p + 1e-4), dE/dp = -(log2(p + 1e-4) +
    p / ((p + 1e-4) ln 2)) / rows =: q, and dE/dv_ik = (q_ik - sum_j q_ij p_ij) / (rowsum_i + 1);
    the same along columns. |w|'s derivative is sign(w) (0 at 0, as autograd's).
    """

    def __init__(self, shapes: list[tuple[int, int]], lamb_l1: float, lamb_entropy: float, like: torch.Tensor):
        self.lamb_l1, self.lamb_entropy = lamb_l1, lamb_entropy
        kw = dict(dtype=like.dtype, device=like.device)
        rows = [torch.full((r, 1), -1.0 / r, **kw) for r, _ in shapes]
        cols = [torch.full((1, c), -1.0 / c, **kw) for _, c in shapes]
        # -1 / (rows of the row's layer) (R, 1) and -1 / (columns of the column's layer) (1, C)
        self.scale = {1: torch.cat(rows, 0), 0: torch.cat(cols, 1)}
        self.blocks, r0, c0 = [], 0, 0
        for r, c in shapes:
            self.blocks.append((slice(r0, r0 + r), slice(c0, c0 + c)))
            r0, c0 = r0 + r, c0 + c

    def __call__(self, weights: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """weights W_l (out_l, in_l) -> (the regularisation (0-d), its gradient for each W_l)."""
        w = torch.block_diag(*weights)
        v = w.abs()
        value = self.lamb_l1 * v.sum()
        grad = None
        for dim in (1, 0):
            denom = v.sum(dim=dim, keepdim=True) + 1
            p = v / denom
            shifted = p + 1e-4
            lp = torch.log2(shifted)
            value = value + self.lamb_entropy * (p * lp * self.scale[dim]).sum()
            q = (lp + p / shifted / _LOG2) * self.scale[dim]
            part = (q - (q * p).sum(dim=dim, keepdim=True)) / denom
            grad = part if grad is None else grad + part
        grad = (grad * self.lamb_entropy + self.lamb_l1) * torch.sign(w)
        return value, [grad[rows, cols] for rows, cols in self.blocks]


def _activation(name: str) -> tuple[Callable, Callable] | None:
    """(h -> act(h), (g, h, a) -> g * act'(h) given a = act(h)) for the activations with a fused backward
    op (aten's own, what autograd runs: 1 op where sigmoid, products and sums took 5, 2 ops fewer per
    hidden layer and call, measured with the torch profiler); None for the others."""
    if name == "silu":
        return torch.nn.functional.silu, lambda g, h, a: torch.ops.aten.silu_backward(g, h)
    if name == "tanh":
        return torch.tanh, lambda g, h, a: torch.ops.aten.tanh_backward(g, a)
    if name == "relu":
        return torch.relu, lambda g, h, a: torch.ops.aten.threshold_backward(g, a, 0)
    if name == "identity":
        return (lambda h: h), (lambda g, h, a: g)
    return None


def mlp_objective(model, *, lamb: float, reg_metric: str, lamb_l1: float, lamb_entropy: float,
                  loss_fn: Callable | None = None):
    """``f(x, y) -> (objective, train_loss, reg)`` (0-d, detached) writing d objective / d p into every
    parameter's ``.grad`` in place; None where it does not apply (a ``loss_fn``, a regularisation from
    activations with lamb > 0, an activation other than silu/tanh/relu/identity, frozen parameters)."""
    if loss_fn is not None or (lamb != 0.0 and reg_metric != "w"):
        return None
    activation = _activation(model.act_name)
    if activation is None or not all(p.requires_grad for p in model.parameters()):
        return None
    act, act_backward = activation
    linears = list(model.linears)
    weight = linears[0].weight
    zero = torch.zeros((), dtype=weight.dtype, device=weight.device)
    # the penalty: compiled (float64, one call) on a CPU when the library is built and the weights and their
    # gradients are contiguous (checked at each call: the gradients may be replaced), else BlockReg's torch ops
    compiled = weight.device.type == "cpu" and cpu.available(weight.dtype)
    weight_reg = cpu.WeightReg(len(linears)) if compiled else None
    block_reg = BlockReg([tuple(lin.weight.shape) for lin in linears], lamb_l1, lamb_entropy, zero)

    def f(x: torch.Tensor, y: torch.Tensor):
        with torch.no_grad():
            inputs, pre = [], []  # each layer's input and each hidden layer's pre-activation
            a = x
            for i, lin in enumerate(linears):
                inputs.append(a)
                h = torch.addmm(lin.bias, a, lin.weight.t())
                if i < len(linears) - 1:
                    pre.append(h)
                    a = act(h)
                else:
                    a = h
            r = a - y
            train_loss = (r * r).mean()
            dh = r * (2.0 / r.numel())
            for i in range(len(linears) - 1, -1, -1):
                lin = linears[i]
                torch.mm(dh.t(), inputs[i], out=lin.weight.grad)
                torch.sum(dh, dim=0, out=lin.bias.grad)
                if i > 0:
                    dh = act_backward(dh @ lin.weight, pre[i - 1], inputs[i])
            reg = zero
            if lamb != 0.0:
                weights, grads = [lin.weight for lin in linears], [lin.weight.grad for lin in linears]
                if weight_reg is not None and all(t.is_contiguous() for t in weights + grads):
                    reg = torch.tensor(weight_reg(weights, grads, lamb, lamb_l1, lamb_entropy), dtype=zero.dtype)
                else:
                    reg, reg_grads = block_reg(weights)
                    for grad, reg_grad in zip(grads, reg_grads, strict=True):
                        grad.add_(reg_grad, alpha=lamb)
            return train_loss + lamb * reg, train_loss, reg

    return f
