"""pykan's greedy auto_swap for node layers that hold multiplication nodes.

A mult node of arity a owns a subnodes (rows of the score matrix below it), so moving it moves a
block of rows: the placement-cost shortcut of ``kanswap.swap`` (one row per node) does not apply.
Each candidate swap is scored instead by the connection cost of the permuted score matrices:
still no forward of the model per candidate, as pykan's auto_swap needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from .swap import connection_cost

__all__ = ["grouped_greedy_perms"]


def grouped_greedy_perms(scores: Sequence[Tensor], layers: Sequence[int],
                         groups: Mapping[int, Sequence[Sequence[int]]], n_sum: Mapping[int, int]) -> dict[int, Tensor]:
    """Greedy permutations of the hidden node layers ``layers``, in order, each on the scores as
    the layers before it left them.

    scores: L edge-score matrices, ``scores[l]`` (subnodes of node layer l+1, nodes of layer l).
    groups[l]: for node layer l, the subnode ids feeding each node (one for a sum node);
    n_sum[l]: its number of sum nodes (they come first; a swap exchanges two sum or two mult nodes).
    Returns {l: perm (n_l,) int64}, new position p holding old node perm[p]: for i in 0..n-1, i is
    exchanged with the partner of its kind that gives the lowest connection cost (pykan's order).
    """
    scores = [s.double() for s in scores]

    def cost(l: int, order: list[int], layer_groups: Sequence[Sequence[int]]) -> float:
        mats = list(scores)
        mats[l - 1] = scores[l - 1][[s for p in order for s in layer_groups[p]]]
        mats[l] = scores[l][:, order]
        return float(connection_cost(mats))

    perms = {}
    for l in layers:
        layer_groups, n_s = groups[l], n_sum[l]
        n = len(layer_groups)
        order = list(range(n))
        for i in range(n):
            same = range(n_s) if i < n_s else range(n_s, n)
            best_j, best = i, cost(l, order, layer_groups)
            for j in same:
                trial = list(order)
                trial[i], trial[j] = trial[j], trial[i]
                c = cost(l, trial, layer_groups)
                if c < best:
                    best_j, best = j, c
            order[i], order[best_j] = order[best_j], order[i]
        perms[l] = torch.tensor(order)
        scores[l - 1] = scores[l - 1][[s for p in order for s in layer_groups[p]]]
        scores[l] = scores[l][:, order]
    return perms
