"""Modules of a network: which groups of nodes reach which nodes through separate strong edges.

For every layer of edges ``l`` (node layer ``l`` -> node layer ``l+1``), an edge is *strong* when
its score is above ``threshold`` times the layer's largest edge score. The modules of the layer are
the connected components of the bipartite graph of its strong edges: ``groups[m]`` are the layer-l
nodes of module ``m`` (a partition of all of them: a node without strong edges is a module of its
own that reaches nothing) and ``nodes[m]`` the layer-(l+1) nodes its strong edges reach. This is the
finest partition that keeps every strong edge inside one module, so it is unique, and it depends on
the scores only: a permutation of hidden nodes permutes the modules' members and nothing else.

``modularity`` is the share of the layer's total edge score (strong and weak edges) carried by
edges inside modules (``i in groups[m]`` and ``j in nodes[m]``); 1.0 means the layer is a sum of
separate blocks (also for a layer whose scores are all zero).

Scores: a KAN's edge attribution scores (``edge_scores`` of a fresh ``attribute()`` on the cached
data, what ``auto_swap`` and ``plot`` use), with a mult node's subnodes summed into the node; an
MLP's ``|W|`` (what its ``connection_cost``, ``auto_swap`` and ``plot`` use; no data needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["LayerModules", "ModuleReport", "find_modules", "modules_from_scores", "model_scores", "format_modules"]


@dataclass
class LayerModules:
    """The modules of one layer of edges (node layer ``layer`` -> node layer ``layer + 1``).

    Edge ``(i -> j)`` of the layer belongs to module ``m`` iff ``i in groups[m]`` and
    ``j in nodes[m]``. Modules are listed in the order of their smallest ``groups`` member; members
    are sorted.
    """

    layer: int  # l: groups of layer l's nodes (inputs of layer l's edges) ...
    groups: list[list[int]]  # ... a partition of range(width of node layer l) into modules
    nodes: list[list[int]]  # for each group, the node indices of layer l+1 that it reaches (disjoint across groups)
    modularity: float  # share of layer l's edge score that stays inside groups (1.0 = separable)


class ModuleReport(list):
    """``find_modules``' result: a list of :class:`LayerModules` (0-based indices, as in ``width``,
    ``swap`` and ``edge_scores``) that prints as ``format_modules`` does: layers and nodes counted
    from 1, inputs named x1.. (by original input after ``prune_input``) and outputs y1.."""

    def __init__(self, modules=(), in_vars: Sequence[str] | None = None, out_vars: Sequence[str] | None = None):
        super().__init__(modules)
        self.in_vars = None if in_vars is None else list(in_vars)
        self.out_vars = None if out_vars is None else list(out_vars)

    def __str__(self) -> str:
        return format_modules(self, self.in_vars, self.out_vars)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p, cycle: bool) -> None:  # IPython: the readable text, not a list's repr
        p.text(str(self))


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
        raise ValueError(f"threshold must be a number in [0, 1) (a fraction of the layer's largest edge score), "
                         f"got {threshold!r}")
    return float(threshold)


def _layer_modules(layer: int, s: np.ndarray, threshold: float) -> LayerModules:
    """Modules of one layer from its node-level scores ``s`` of shape ``(n_out, n_in)``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_out, n_in = s.shape
    top = s.max() if s.size else 0.0
    rows, cols = np.nonzero(s > threshold * top) if top > 0 else (np.zeros(0, int), np.zeros(0, int))
    # the bipartite graph of strong edges: inputs are vertices 0..n_in-1, outputs n_in..n_in+n_out-1
    # (vectorised: a 1024 x 1024 layer has ~1e6 strong edges)
    graph = coo_matrix((np.ones(rows.size), (cols, n_in + rows)), shape=(n_in + n_out,) * 2)
    labels = connected_components(graph, directed=False)[1]
    lab_in, lab_out = labels[:n_in], labels[n_in:]
    index = {int(c): m for m, c in enumerate(dict.fromkeys(lab_in.tolist()))}  # in order of smallest input
    groups: list[list[int]] = [[] for _ in index]
    nodes: list[list[int]] = [[] for _ in index]
    for i, c in enumerate(lab_in.tolist()):
        groups[index[c]].append(i)
    for j, c in enumerate(lab_out.tolist()):
        if c in index:  # otherwise an output node without strong edges, a component of its own
            nodes[index[c]].append(j)
    total = float(s.sum())
    inside = float(s[lab_out[:, None] == lab_in[None, :]].sum())
    return LayerModules(layer=layer, groups=groups, nodes=nodes, modularity=inside / total if total > 0 else 1.0)


def modules_from_scores(scores: Sequence[Tensor], threshold: float = 0.1) -> list[LayerModules]:
    """Modules of every layer from node-level edge scores.

    Args:
        scores: ``L`` non-negative matrices, ``scores[l]`` of shape ``(n_{l+1}, n_l)`` (pykan's
            ``edge_scores`` orientation).
        threshold: an edge is strong when its score is above ``threshold`` times its layer's largest
            (in ``[0, 1)``).

    Returns:
        ``L`` :class:`LayerModules`, one per layer of edges.
    """
    threshold = _check_threshold(threshold)
    if isinstance(scores, Tensor) or not isinstance(scores, Sequence) or len(scores) == 0:
        raise ValueError("scores must be a non-empty list of 2-D score matrices (one per layer)")
    out = []
    for l, s in enumerate(scores):
        if not isinstance(s, Tensor) or s.dim() != 2:
            raise ValueError(f"scores[{l}] must be a 2-D tensor, got "
                             f"{tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__}")
        if l and s.shape[1] != scores[l - 1].shape[0]:
            raise ValueError(f"scores[{l}] has {s.shape[1]} columns but scores[{l - 1}] has "
                             f"{scores[l - 1].shape[0]} rows: they must be the same node layer")
        a = s.detach().to(torch.float64).cpu().numpy()
        if not np.isfinite(a).all() or (a < 0).any():
            raise ValueError(f"scores[{l}] must be finite and non-negative")
        out.append(_layer_modules(l, a, threshold))
    return out


def model_scores(model) -> list[Tensor]:
    """Node-level edge scores of a KAN (fresh attribution on the cached data; a mult node's
    subnode rows summed) or an MLP (``|W|``): ``L`` matrices, ``(n_{l+1}, n_l)``, float64.
    Each model class says what its scores are (``node_edge_scores``)."""
    scores = getattr(model, "node_edge_scores", None)
    if scores is None:
        raise TypeError(f"find_modules needs a kanswap KAN or MLP, got {type(model).__name__}")
    return scores()


def find_modules(model, threshold: float = 0.1) -> list[LayerModules]:
    """The modules of every layer of a KAN or MLP (see the module docstring).

    Args:
        model: a kanswap ``KAN`` (which must have seen data: scores come from its cached data) or
            ``MLP``.
        threshold: an edge is strong when its score is above ``threshold`` times its layer's largest.

    Returns:
        A :class:`ModuleReport`: one :class:`LayerModules` per layer of edges, ``result[l].layer == l``
        (0-based), printing as ``format_modules`` (1-based, as the drawing is read).
    """
    threshold = _check_threshold(threshold)
    mods = modules_from_scores(model_scores(model), threshold)
    input_id = getattr(model, "input_id", None)
    in_vars = None if input_id is None else [f"x{int(i) + 1}" for i in input_id.tolist()]
    return ModuleReport(mods, in_vars=in_vars)


def format_modules(modules: Sequence[LayerModules], in_vars: Sequence[str] | None = None,
                   out_vars: Sequence[str] | None = None) -> str:
    """A readable listing, counted from 1 as a drawing is read: per layer of edges (``layer 1`` reads
    the inputs), each module that reaches at least one node, as ``{x1,x2,x3} -> {2}``, its
    modularity, and how many nodes reach nothing. Inputs are named ``in_vars`` (default x1..),
    outputs ``out_vars`` (default y1..), hidden nodes by their position from the left (1 = leftmost).
    """
    last = max((mod.layer for mod in modules), default=0) + 1

    def name(i: int, layer: int) -> str:
        if layer == 0:
            return in_vars[i] if in_vars is not None else f"x{i + 1}"
        if layer == last:
            return out_vars[i] if out_vars is not None else f"y{i + 1}"
        return str(i + 1)

    lines = []
    for mod in modules:
        parts = ["{" + ",".join(name(i, mod.layer) for i in g) + "} -> {"
                 + ",".join(name(j, mod.layer + 1) for j in nd) + "}"
                 for g, nd in zip(mod.groups, mod.nodes, strict=True) if nd]
        idle = sum(1 for nd in mod.nodes if not nd)
        line = f"layer {mod.layer + 1}: " + "  ".join(parts) + f"  (modularity {mod.modularity:.3f}"
        line += f", {idle} node(s) reach nothing)" if idle else ")"
        lines.append(line)
    return "\n".join(lines)
