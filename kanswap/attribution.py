"""Backward attribution scores of a KAN (pykan's ``attribute`` / ``node_attribute``).

Scores start at the output nodes and flow down: a node's score goes to the subnodes that feed it
(a mult node passes its whole score to each of its inputs), a subnode's score splits over its
incoming edges in proportion to their output std, ``edge = std(phi_ij) * score_j / (std(y_j) +
1e-4)``, and a node's score is the sum of its outgoing edges' scores. The same propagation serves
``KAN.attribute`` (on the records of the last forward) and the KAN objective's backward metrics
(on edge stds it differentiates), so it takes the stds as arguments; ``attribute`` takes the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .records import forward_with_records

__all__ = ["node_to_subnode", "backpropagate", "attribute", "node_attribute"]


def node_to_subnode(score: Tensor, n_sum: int, arities: Sequence[int]) -> Tensor:
    """Node scores (q, n_sum + len(arities)) -> subnode scores (q, n_sum + sum(arities)): a sum node
    keeps its score, a mult node of arity a passes its score to each of its a subnodes."""
    if not arities:
        return score
    parts = [score[:, :n_sum]]
    for m, a in enumerate(arities):
        parts.append(score[:, n_sum + m:n_sum + m + 1].expand(score.shape[0], a))
    return torch.cat(parts, dim=1)


def backpropagate(edges: Sequence[Tensor], sub_std: Sequence[Tensor], top: Tensor, l_top: int,
                  to_subnodes: Callable[[int, Tensor], Tensor]):
    """Propagate node scores ``top`` (q, n_{l_top}) down to the inputs.

    edges[l]: (m_l, n_l) edge output stds of layer l; sub_std[l]: (m_l,) its subnode stds plus
    1e-4; to_subnodes(l, score): node scores of node layer l -> its subnode scores. Returns lists,
    input -> output order, of node scores (q, n_l) for l = 0..l_top, subnode scores (q, m_l) and
    edge scores (q, m_l, n_l) for the layers below l_top.
    """
    nodes, subnodes, edge_scores = [top], [], []
    score = top
    for l in range(l_top, 0, -1):
        sub = to_subnodes(l, score)
        edge = edges[l - 1].unsqueeze(0) * (sub / sub_std[l - 1]).unsqueeze(-1)
        score = edge.sum(1)
        subnodes.append(sub)
        edge_scores.append(edge)
        nodes.append(score)
    return nodes[::-1], subnodes[::-1], edge_scores[::-1]


def _model_backpropagate(model, top: Tensor, l_top: int):
    """``backpropagate`` on the model's records of its last forward."""
    def to_subnodes(l: int, score: Tensor) -> Tensor:
        n_sum = model.width[l][0]
        return node_to_subnode(score, n_sum, [len(g) for g in model.subnode_groups(l)[n_sum:]])

    sub_std = [s + 1e-4 for s in model.subnode_actscale[:l_top]]
    return backpropagate(model.edge_actscale, sub_std, top, l_top, to_subnodes)


def attribute(model, l: int | None = None, i: int | None = None, out_score=None, plot: bool = True):
    """Backward attribution scores of a KAN (see ``KAN.attribute``).

    With l=None it sets ``node_scores`` (per node layer), ``edge_scores`` ((out, in) per layer)
    and ``subnode_scores`` on the model, as means over the output nodes, and returns None. With l
    given it returns the attribution of layer-l nodes to the inputs, (width_in[l], n_0), or its
    row i (n_0,); unlike pykan (D17) the stored full scores are left intact.
    """
    if model.acts is None or not model.edge_actscale:
        forward_with_records(model)
    L = model.depth
    if l is None:
        n_L = model.width_in[L]
        ref = model.edge_actscale[-1]
        if out_score is None:
            top = torch.full((1, n_L), 1.0 / n_L, dtype=ref.dtype, device=ref.device)
        else:
            top = torch.as_tensor(out_score, dtype=ref.dtype, device=ref.device).reshape(1, n_L) / n_L
        nodes, subnodes, edges = _model_backpropagate(model, top, L)
        model.node_scores = [s[0] for s in nodes]
        model.subnode_scores = [s[0] for s in subnodes]
        model.edge_scores = [e[0] for e in edges]
        return None
    if not isinstance(l, int) or not 1 <= l <= L:
        raise ValueError(f"attribute: layer l must be in 1..{L}, got {l!r}")
    attribute(model)
    scores = model.node_scores[l] if out_score is None else torch.as_tensor(out_score)
    nodes, _, _ = _model_backpropagate(model, torch.diag(scores), l)
    result = nodes[0]
    if i is None:
        return result
    if not 0 <= i < result.shape[0]:
        raise ValueError(f"attribute: node i={i} out of range for layer {l} of width {result.shape[0]}")
    if plot:
        import matplotlib.pyplot as plt

        in_dim = model.width_in[0]
        plt.figure(figsize=(1 * in_dim, 3))
        plt.bar(range(in_dim), result[i].detach().cpu().numpy())
        plt.xticks(range(in_dim))
    return result[i]


def node_attribute(model) -> None:
    """pykan's node_attribute: ``model.node_attribute_scores = [attribute(model, l) for l in 1..L]``."""
    model.node_attribute_scores = [attribute(model, l) for l in range(1, model.depth + 1)]
