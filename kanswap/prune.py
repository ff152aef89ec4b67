"""Pruning KANs: pykan's criteria and signatures, returning new models.

Differences from pykan 0.2.8, each deliberate:
- the original model is never modified (D6) and the pruned model keeps every hyperparameter of the
  original (D7), including its RNG-free construction: nothing is reseeded;
- ``compensate=True`` (default): a removed node's or edge's mean output over the data the scores
  were computed on is folded into the bias of the subnode it fed, so the function changes only by
  the removed parts' variance. pykan drops the constant too (D8: the reference KAN falls from
  accuracy 1.0 to 0.84). ``compensate=False`` reproduces pykan's numbers;
- ``prune_edge`` needs no earlier ``attribute()`` (D9) and returns a new model like the others;
- a threshold that would remove every node of a layer raises a ValueError instead of building an
  empty layer.
"""

from __future__ import annotations

import copy

import torch

__all__ = ["prune_node", "prune_edge", "prune", "prune_input"]


def _scores_ready(model) -> None:
    """Fresh activations and attribution scores on the model's cached data."""
    model.get_act()
    model.attribute()


def _edge_means(layer, x: torch.Tensor) -> torch.Tensor:
    """Mean over x (B, in) of every edge output phi of the layer: (in, out)."""
    from .functional import basis_moments

    with torch.no_grad():
        mean, _ = basis_moments(x, layer.grid, layer.k, layer.base_fun)
        return torch.einsum("if,ifo->io", mean, layer.weight().double()).to(layer.coef.dtype)


def _fold(model, l: int, x: torch.Tensor, removed: torch.Tensor) -> None:
    """Add the mean over x (layer l's inputs) of the layer's edges flagged in ``removed`` (in, out),
    numeric and symbolic branch, to the biases of the subnodes they feed."""
    means = _edge_means(model.act_fun[l], x)
    sym = model.symbolic_fun[l]
    if model.symbolic_enabled and sym.active:
        with torch.no_grad():
            means = means + sym.postacts(x).mean(0).t().to(means.dtype)
    means = means * removed
    with torch.no_grad():
        bias = model._affine("subnode_bias", l)
        bias.add_(model._affine("subnode_scale", l) * means.sum(0))


def _subset(model, keep_nodes: list[list[int]]):
    """A copy of model keeping, for every node layer l, the nodes keep_nodes[l] (with all subnodes
    of kept mult nodes). Every hyperparameter is kept; the original is not touched."""
    new = copy.deepcopy(model)
    L = model.depth
    keep_sub = []
    for l in range(L + 1):
        groups = model.subnode_groups(l) if l > 0 else [[i] for i in range(model.width_in[0])]
        keep_sub.append([s for n in keep_nodes[l] for s in groups[n]])
    with torch.no_grad():
        for l in range(L):
            rows, cols = keep_nodes[l], keep_sub[l + 1]
            new.act_fun[l] = model.act_fun[l].get_subset(rows, cols)
            new.symbolic_fun[l] = model.symbolic_fun[l].get_subset(rows, cols)
            dev = model.act_fun[l].coef.device
            for name, ids in (("node_bias", keep_nodes[l + 1]), ("node_scale", keep_nodes[l + 1]),
                              ("subnode_bias", cols), ("subnode_scale", cols)):
                p = model._affine(name, l)
                setattr(new, f"{name}_{l}", torch.nn.Parameter(
                    p.data[torch.tensor(ids, dtype=torch.long, device=dev)].clone(), requires_grad=p.requires_grad))
    width = []
    arities = []
    for l in range(L + 1):
        n_sum = model.width[l][0]
        kept = keep_nodes[l]
        width.append([sum(1 for n in kept if n < n_sum), sum(1 for n in kept if n >= n_sum)])
        if not model.mult_homo:
            arities.append([model.mult_arity[l][n - n_sum] for n in kept if n >= n_sum])
    new.width = width
    if not model.mult_homo:
        new.mult_arity = arities
    new._reset_records()
    new.cache_data = model.cache_data
    return new


def _log(model, new, name: str, log_history: bool) -> None:
    if log_history:
        new.log_history(name)  # in memory unless auto_save (kanswap/history.py)


def prune_node(model, threshold: float = 1e-2, mode: str = "auto", active_neurons_id=None,
               log_history: bool = True, compensate: bool = True):
    """Keep hidden node n of layer l iff its attribution score ``node_scores[l][n] > threshold``
    (mode 'auto'), or the ids ``active_neurons_id[l-1]`` (mode 'manual'). Returns a new model."""
    if active_neurons_id is not None:
        mode = "manual"
    if mode not in ("auto", "manual"):
        raise ValueError(f"mode must be 'auto' or 'manual', got {mode!r}")
    _scores_ready(model)
    L = model.depth
    keep = [list(range(model.width_in[0]))]
    for l in range(1, L):
        if mode == "auto":
            scores = model.node_scores[l].detach()
            kept = torch.nonzero(scores > threshold).flatten().tolist()
            if not kept:
                raise ValueError(f"prune_node(threshold={threshold}) would remove every node of layer {l} "
                                 f"(highest score {scores.max().item():.3g}); use a lower threshold")
        else:
            if len(active_neurons_id) != L - 1:
                raise ValueError(f"active_neurons_id needs one list per hidden layer ({L - 1}), "
                                 f"got {len(active_neurons_id)}")
            kept = sorted(int(i) for i in active_neurons_id[l - 1])
            if not kept or kept[0] < 0 or kept[-1] >= model.width_in[l]:
                raise ValueError(f"active_neurons_id[{l - 1}] must list ids in 0..{model.width_in[l] - 1}, "
                                 f"got {active_neurons_id[l - 1]}")
        keep.append(kept)
    keep.append(list(range(model.width_in[L])))
    source = model
    if compensate:
        # Fold on a copy: the caller's model stays as it was.
        source = copy.deepcopy(model)
        for l in range(1, L):
            removed = torch.ones(model.width_in[l], model.width_out[l + 1], device=model.device)
            removed[keep[l]] = 0.0
            _fold(source, l, model.acts[l], removed)
    new = _subset(source, keep)
    _log(model, new, "prune_node", log_history)
    return new


def prune_edge(model, threshold: float = 3e-2, log_history: bool = True, compensate: bool = True):
    """Mask every edge whose attribution score ``edge_scores[l][j, i] <= threshold``. New model."""
    _scores_ready(model)
    new = copy.deepcopy(model)
    for l in range(model.depth):
        mask = new.act_fun[l].mask
        keep = (model.edge_scores[l].detach() > threshold).t().to(mask.dtype)
        if compensate:
            _fold(new, l, model.acts[l], (mask.data * (1 - keep)) > 0)
        with torch.no_grad():
            mask.data = keep * mask.data
        new.act_fun[l]._feat_cache = None
    new._reset_records()
    _log(model, new, "prune_edge", log_history)
    return new


def prune(model, node_th: float = 1e-2, edge_th: float = 3e-2, compensate: bool = True):
    """prune_node(node_th) then, on the result's fresh scores, prune_edge(edge_th)."""
    m = prune_node(model, node_th, log_history=False, compensate=compensate)
    m = prune_edge(m, edge_th, log_history=False, compensate=compensate)
    _log(model, m, "prune", True)
    return m


def prune_input(model, threshold: float = 1e-2, active_inputs=None, log_history: bool = True,
                compensate: bool = True):
    """Keep input i iff its attribution score ``node_scores[0][i] > threshold`` (or the ids in
    ``active_inputs``). The new model still takes the full input and selects its columns."""
    _scores_ready(model)
    if active_inputs is None:
        scores = model.node_scores[0].detach()
        kept = torch.nonzero(scores > threshold).flatten().tolist()
        if not kept:
            raise ValueError(f"prune_input(threshold={threshold}) would remove every input "
                             f"(highest score {scores.max().item():.3g}); use a lower threshold")
        print("keep:", (scores > threshold).tolist())
    else:
        kept = sorted(int(i) for i in active_inputs)
        if not kept or kept[0] < 0 or kept[-1] >= model.width_in[0]:
            raise ValueError(f"active_inputs must list ids in 0..{model.width_in[0] - 1}, got {active_inputs}")
    source = model
    if compensate:
        source = copy.deepcopy(model)
        removed = torch.ones(model.width_in[0], model.width_out[1], device=model.device)
        removed[kept] = 0.0
        _fold(source, 0, model.acts[0], removed)
    keep = [kept] + [list(range(n)) for n in model.width_in[1:]]
    new = _subset(source, keep)
    new.input_id = model.input_id[torch.tensor(kept, dtype=torch.long)]
    _log(model, new, "prune_input", log_history)
    return new
