"""pykan's regularisation: the sparsity penalty of one non-negative score matrix (l1 plus row and
column entropy), and a KAN's whole penalty from its latest forward's records (``kan_reg``).

``matrix_reg`` is used by ``KAN.reg``, ``MLP.reg`` and the autograd part of the KAN objective; the hand-written
block-diagonal versions with gradients (``kan_objective._l1_entropy``, ``mlp_objective``) are
checked against this one.
"""

from __future__ import annotations

import torch

__all__ = ["REG_METRICS", "kan_reg", "matrix_reg"]

# KAN.fit's reg_metric values, each naming the records it penalises (see kan_reg).
REG_METRICS = ("edge_forward_spline_n", "edge_forward_sum", "edge_forward_spline_u", "edge_backward",
               "node_backward")


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


def kan_reg(model, reg_metric: str = "edge_forward_spline_n", lamb_l1: float = 1.0, lamb_entropy: float = 2.0,
            lamb_coef: float = 0.0, lamb_coefdiff: float = 0.0) -> torch.Tensor:
    """pykan's regularisation of a KAN on its latest forward's records (``save_act``; the backward
    metrics also need ``attribute``/``node_attribute``): the sum over layers of ``matrix_reg`` of the
    chosen (out, in) score matrices, plus the coefficient penalties; a 0-d tensor with a gradient
    ('edge_forward_sum' included, unlike pykan's D13)."""
    if reg_metric == "edge_forward_spline_n":
        mats = model.acts_scale_spline
    elif reg_metric == "edge_forward_sum":
        # pykan's acts_scale (numeric + symbolic), which pykan detaches (D13): here with a gradient
        mats = model.acts_scale_sum
    elif reg_metric == "edge_forward_spline_u":
        mats = model.edge_actscale
    elif reg_metric == "edge_backward":
        mats = model.edge_scores
    elif reg_metric == "node_backward":
        mats = model.node_attribute_scores
    else:
        raise ValueError(f"unknown reg_metric {reg_metric!r}; use one of {list(REG_METRICS)}")
    if not mats:
        raise RuntimeError(f"reg({reg_metric!r}) needs saved activations: run a forward with save_act=True"
                           + (" and attribute()" if "backward" in reg_metric else ""))
    total = 0.0
    for v in mats:
        total = total + matrix_reg(v, lamb_l1, lamb_entropy)
    if lamb_coef or lamb_coefdiff:
        for layer in model.act_fun:
            coef = layer.coef
            total = total + lamb_coef * coef.abs().mean(1).sum()
            total = total + lamb_coefdiff * torch.diff(coef).abs().mean(1).sum()
    return total
