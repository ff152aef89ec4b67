"""Structural edits of a KAN in place: pykan's remove_edge, remove_node, module, expand_width,
expand_depth and perturb, on the numeric splines (kanswap has no symbolic branch).

Differences from pykan 0.2.8, each a pykan defect on a model without symbolic functions (which is
every kanswap model):
- ``expand_width`` replaces both adjacent layers by fresh layers with all masks 0, so the model's
  function is lost (its symbolic copies are all '0'); kanswap keeps every existing edge and adds
  the new nodes' edges with mask 0, so the function is unchanged.
- ``expand_depth`` appends ``[]`` to an int ``mult_arity`` (AttributeError on a default model) and
  relies on a symbolic identity; kanswap appends a numeric identity layer: scale_base 0, identity
  mask, and a spline fitted to y = x on a grid covering the outputs on the cached data (cubic
  B-splines reproduce linear functions exactly on their interior).
- ``perturb`` reads edge activity from the symbolic functions only: on a numeric model every edge
  is "inactive", and the 'non-intrusive' mode zeroes the whole last layer. kanswap reads activity
  from the masks (an edge with mask != 0 is active) and switches on only inactive edges.
- ``remove_node(l, i, 'down')`` on layer 0 (and 'all') wraps to the last layer through index -1,
  and mult nodes mix node and subnode ids; kanswap uses the node's subnodes and raises on l = 0
  with mode 'down'.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .layer import KANLayer
from .spline import curve_to_coef, extend_grid
from .symbolic_layer import SymbolicStub

__all__ = ["remove_edge", "remove_node", "module", "expand_width", "expand_depth", "perturb"]


def _check_edge_layer(model, l: int) -> None:
    if not isinstance(l, (int, np.integer)) or isinstance(l, bool) or not 0 <= l < model.depth:
        raise ValueError(f"layer l must be in 0..{model.depth - 1}, got {l!r}")


def _check_index(name: str, i, n: int, what: str) -> None:
    if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not 0 <= i < n:
        raise ValueError(f"{name}={i!r} out of range for {what} of size {n}")


def _touched(model) -> None:
    """Masks changed: the recorded statistics and scores no longer describe the model."""
    for layer in model.act_fun:
        layer._feat_cache = None
    model._reset_records()


@torch.no_grad()
def remove_edge(model, l: int, i: int, j: int) -> None:
    """Set the mask of edge (l, i, j) (input i of layer l -> its output j) to 0."""
    _check_edge_layer(model, l)
    _check_index("i", i, model.width_in[l], f"layer {l}'s inputs")
    _check_index("j", j, model.width_out[l + 1], f"layer {l}'s outputs")
    model.act_fun[l].mask.data[i, j] = 0.0
    model.symbolic_fun[l].mask.data[j, i] = 0.0
    _touched(model)


@torch.no_grad()
def remove_node(model, l: int, i: int, mode: str = "all") -> None:
    """Mask node i of node layer l: its incoming edges ('down'), outgoing edges ('up'), or both
    ('all': those that exist; the input layer has no incoming edges, the output layer no outgoing)."""
    if mode not in ("all", "up", "down"):
        raise ValueError(f"mode must be 'all', 'up' or 'down', got {mode!r}")
    if not isinstance(l, (int, np.integer)) or isinstance(l, bool) or not 0 <= l <= model.depth:
        raise ValueError(f"node layer l must be in 0..{model.depth}, got {l!r}")
    _check_index("i", i, model.width_in[l], f"node layer {l}")
    if mode == "down" and l == 0 or mode == "up" and l == model.depth:
        raise ValueError(f"node layer {l} has no {'incoming' if mode == 'down' else 'outgoing'} edges")
    if mode in ("up", "all") and l < model.depth:
        model.act_fun[l].mask.data[i, :] = 0.0
        model.symbolic_fun[l].mask.data[:, i] = 0.0
    if mode in ("down", "all") and l > 0:
        subs = model.subnode_groups(l)[i]
        model.act_fun[l - 1].mask.data[:, subs] = 0.0
        model.symbolic_fun[l - 1].mask.data[subs, :] = 0.0
    _touched(model)


def _parse_ids(text: str) -> list[int]:
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"module chain groups look like '[0,1]', got {text!r}")
    return [int(v) for v in text[1:-1].split(",") if v.strip()]


@torch.no_grad()
def module(model, start_layer: int, chain: str) -> None:
    """pykan's module: ``chain`` '[ins]->[outs]->[ins]->[outs]...' starting at layer start_layer;
    in each layer, edges between the group and the rest (both ways) get mask 0."""
    groups = chain.split("->")
    if len(groups) < 2:
        raise ValueError(f"chain needs at least '[ins]->[outs]', got {chain!r}")
    for step in range(len(groups) // 2):
        l = start_layer + step
        _check_edge_layer(model, l)
        ids_in, ids_out = _parse_ids(groups[2 * step]), _parse_ids(groups[2 * step + 1])
        n_in, n_out = model.width_in[l], model.width_out[l + 1]
        for i in ids_in:
            _check_index("input id", i, n_in, f"layer {l}'s inputs")
        for j in ids_out:
            _check_index("output id", j, n_out, f"layer {l}'s outputs")
        in_other = sorted(set(range(n_in)) - set(ids_in))
        out_other = sorted(set(range(n_out)) - set(ids_out))
        mask, sym = model.act_fun[l].mask.data, model.symbolic_fun[l].mask.data
        mask[np.ix_(in_other, ids_out)] = 0.0
        mask[np.ix_(ids_in, out_other)] = 0.0
        sym[np.ix_(ids_out, in_other)] = 0.0
        sym[np.ix_(out_other, ids_in)] = 0.0
    _touched(model)


def _grown_layer(old: KANLayer, in_id: list[int] | None, out_id: list[int] | None, n_in: int, n_out: int,
                 model) -> KANLayer:
    """A layer of n_in x n_out whose rows in_id / columns out_id hold old's parameters; the new
    edges are freshly initialised (pykan's init, global RNG) with mask 0."""
    new = KANLayer(n_in, n_out, num=old.num, k=old.k, noise_scale=model.noise_scale,
                   scale_base_mu=model.scale_base_mu, scale_base_sigma=model.scale_base_sigma,
                   base_fun=old.base_fun, grid_eps=old.grid_eps, grid_range=old.grid_range,
                   sp_trainable=old.scale_sp.requires_grad, sb_trainable=old.scale_base.requires_grad,
                   backend=old.backend, device=old.coef.device).to(old.coef.dtype)
    rows = list(range(n_in)) if in_id is None else in_id
    cols = list(range(n_out)) if out_id is None else out_id
    r = torch.tensor(rows, dtype=torch.long, device=old.coef.device)
    c = torch.tensor(cols, dtype=torch.long, device=old.coef.device)
    with torch.no_grad():
        new.mask.zero_()
        new.grid.data[r] = old.grid.data
        for name in ("coef", "mask", "scale_base", "scale_sp"):
            getattr(new, name).data[r[:, None], c[None, :]] = getattr(old, name).data
    return new


def _grown_symbolic(old, rows: list[int], cols: list[int], n_in: int, n_out: int):
    new = SymbolicStub(n_in, n_out).to(old.mask.device)
    r = torch.tensor(rows, dtype=torch.long, device=old.mask.device)
    c = torch.tensor(cols, dtype=torch.long, device=old.mask.device)
    with torch.no_grad():
        new.mask.data[c[:, None], r[None, :]] = old.mask.data
        new.affine.data[c[:, None], r[None, :]] = old.affine.data
    return new


def _to_hetero_arity(model) -> None:
    if model.mult_homo:
        model.mult_arity = [[model.mult_arity] * w[1] for w in model.width]
        model.mult_homo = False


def _set_affine(model, name: str, l: int, value: torch.Tensor, like: nn.Parameter) -> None:
    setattr(model, f"{name}_{l}", nn.Parameter(value.to(like.device, like.dtype), requires_grad=like.requires_grad))


@torch.no_grad()
def expand_width(model, layer_id: int, n_added_nodes: int, sum_bool: bool = True, mult_arity=2) -> None:
    """Add n_added_nodes nodes to hidden node layer layer_id: sum nodes in front (as pykan), mult
    nodes (of arity mult_arity, an int or one int per node) at the end. Existing edges are kept;
    the new nodes' edges have mask 0 (switch them on with perturb), so the function is unchanged."""
    L = model.depth
    if not isinstance(layer_id, (int, np.integer)) or not 1 <= layer_id <= L - 1:
        raise ValueError(f"layer_id must be a hidden node layer in 1..{L - 1}, got {layer_id!r}")
    if not isinstance(n_added_nodes, (int, np.integer)) or n_added_nodes < 1:
        raise ValueError(f"n_added_nodes must be a positive integer, got {n_added_nodes!r}")
    l = layer_id
    n_sum, n_mult = model.width[l]
    n_nodes, n_sub = model.width_in[l], model.width_out[l]
    if sum_bool:
        added_sub = n_added_nodes
        node_id = list(range(n_added_nodes, n_added_nodes + n_nodes))
        sub_id = list(range(n_added_nodes, n_added_nodes + n_sub))
    else:
        arities = [mult_arity] * n_added_nodes if isinstance(mult_arity, (int, np.integer)) else list(mult_arity)
        if len(arities) != n_added_nodes or any(int(a) < 1 for a in arities):
            raise ValueError(f"mult_arity must be an int >= 1 or one per added node, got {mult_arity!r}")
        added_sub = int(sum(arities))
        node_id, sub_id = list(range(n_nodes)), list(range(n_sub))
    prev, nxt = model.act_fun[l - 1], model.act_fun[l]
    model.act_fun[l - 1] = _grown_layer(prev, None, sub_id, prev.in_dim, n_sub + added_sub, model)
    model.symbolic_fun[l - 1] = _grown_symbolic(model.symbolic_fun[l - 1], list(range(prev.in_dim)), sub_id,
                                                prev.in_dim, n_sub + added_sub)
    model.act_fun[l] = _grown_layer(nxt, node_id, None, n_nodes + n_added_nodes, nxt.out_dim, model)
    model.symbolic_fun[l] = _grown_symbolic(model.symbolic_fun[l], node_id, list(range(nxt.out_dim)),
                                            n_nodes + n_added_nodes, nxt.out_dim)
    for name, ids, size, fill in (("node_bias", node_id, n_nodes + n_added_nodes, 0.0),
                                  ("node_scale", node_id, n_nodes + n_added_nodes, 1.0),
                                  ("subnode_bias", sub_id, n_sub + added_sub, 0.0),
                                  ("subnode_scale", sub_id, n_sub + added_sub, 1.0)):
        old = model._affine(name, l - 1)
        value = torch.full((size,), fill, dtype=old.dtype, device=old.device)
        value[torch.tensor(ids, dtype=torch.long, device=old.device)] = old.data
        _set_affine(model, name, l - 1, value, old)
    if sum_bool:
        model.width[l] = [n_sum + n_added_nodes, n_mult]
    else:
        if not (model.mult_homo and all(int(a) == model.mult_arity for a in arities)):
            _to_hetero_arity(model)
            model.mult_arity[l] = list(model.mult_arity[l]) + [int(a) for a in arities]
        model.width[l] = [n_sum, n_mult + n_added_nodes]
    _touched(model)


def _identity_layer(model, n: int, lo: torch.Tensor, hi: torch.Tensor) -> KANLayer:
    """n -> n layer computing y_j = x_j on [lo_j, hi_j]: identity mask, scale_base 0, scale_sp 1,
    splines fitted to y = x on a uniform grid over each range."""
    last = model.act_fun[-1]
    layer = KANLayer(n, n, num=last.num, k=last.k, noise_scale=model.noise_scale, base_fun=last.base_fun,
                     grid_eps=last.grid_eps, grid_range=model.grid_range, sp_trainable=model.sp_trainable,
                     sb_trainable=model.sb_trainable, backend=last.backend, device=last.coef.device)
    layer.to(last.coef.dtype)
    steps = torch.linspace(0, 1, last.num + 1, dtype=lo.dtype, device=lo.device)
    inner = lo[:, None] + steps[None, :] * (hi - lo)[:, None]
    layer.grid.data = extend_grid(inner, last.k)
    pts = lo[None, :] + torch.linspace(0, 1, 4 * (last.num + last.k), dtype=lo.dtype, device=lo.device)[:, None] * (
        hi - lo)[None, :]
    target = pts[:, :, None].expand(-1, n, n)
    layer.coef.data = curve_to_coef(pts, target, layer.grid.data, last.k)
    eye = torch.eye(n, dtype=layer.mask.dtype, device=layer.mask.device)
    layer.mask.data = eye
    layer.scale_base.data = torch.zeros_like(layer.scale_base.data)
    layer.scale_sp.data = torch.ones_like(layer.scale_sp.data)
    return layer


@torch.no_grad()
def expand_depth(model) -> None:
    """Append an identity layer at the output (width gains a copy of the output layer). Exact
    while the outputs stay in the range they span on the cached data (the model's grid_range
    without data), widened by 10% each side."""
    L, n = model.depth, model.width_in[-1]
    dev, dtype = model.act_fun[-1].coef.device, model.act_fun[-1].coef.dtype
    lo = torch.full((n,), model.grid_range[0], dtype=dtype, device=dev)
    hi = torch.full((n,), model.grid_range[1], dtype=dtype, device=dev)
    if model.cache_data is not None and model.cache_data.shape[0] > 0:
        out = model(model.cache_data)
        span = (out.max(0).values - out.min(0).values).clamp_min(1e-3)
        lo = torch.minimum(lo, out.min(0).values - 0.1 * span)
        hi = torch.maximum(hi, out.max(0).values + 0.1 * span)
    model.act_fun.append(_identity_layer(model, n, lo, hi))
    model.symbolic_fun.append(SymbolicStub(n, n).to(dev))
    like = model._affine("node_bias", L - 1)
    for name, fill in (("node_bias", 0.0), ("node_scale", 1.0), ("subnode_bias", 0.0), ("subnode_scale", 1.0)):
        _set_affine(model, name, L, torch.full((n,), fill), like)
    model.width.append([n, 0])
    if not model.mult_homo:
        model.mult_arity.append([])
    if isinstance(model.grid, (list, tuple)):
        model.grid = list(model.grid) + [model.act_fun[-1].num]
    if isinstance(model.k, (list, tuple)):
        model.k = list(model.k) + [model.act_fun[-1].k]
    _touched(model)


PERTURB_MODES = {  # edge type -> switched on; types: input node active?, output active?, edge active?
    "all": {"aa_a": True, "aa_i": True, "ai": True, "ia": True, "ii": True},
    "non-intrusive": {"aa_a": False, "aa_i": False, "ai": True, "ia": False, "ii": True},
    "minimal": {"aa_a": True, "aa_i": False, "ai": False, "ia": False, "ii": False},
}


@torch.no_grad()
def perturb(model, mag: float = 1.0, mode: str = "non-intrusive") -> None:
    """Switch on inactive edges (mask 0 -> mag) by pykan's edge types: an edge's type is 'a'/'i'
    for whether its input node has any active edge in the layer, then the same for its output
    (subnode), then, for 'aa', '_a'/'_i' for the edge itself. Active edges are left as they are.
    'non-intrusive' switches on only edges into inactive nodes, and in the last layer sets
    mask 1 with zero scales (zero output, trainable), so the function is unchanged."""
    if mode not in PERTURB_MODES:
        raise ValueError(f"mode not recognized: {mode!r}; valid modes are {sorted(PERTURB_MODES)}")
    switch = PERTURB_MODES[mode]
    for l in range(model.depth):
        layer = model.act_fun[l]
        active = layer.mask.data != 0  # (in, out)
        in_active = active.any(1)
        out_active = active.any(0)
        last_quiet = l == model.depth - 1 and mode == "non-intrusive"
        for i in range(layer.in_dim):
            for j in range(layer.out_dim):
                if active[i, j]:
                    continue
                kind = ("a" if in_active[i] else "i") + ("a" if out_active[j] else "i")
                if kind == "aa":
                    kind += "_i"
                if last_quiet:
                    layer.mask.data[i, j] = 1.0
                    layer.scale_base.data[i, j] = 0.0
                    layer.scale_sp.data[i, j] = 0.0
                elif switch[kind]:
                    layer.mask.data[i, j] = mag
    _touched(model)
    if model.cache_data is not None:
        model.get_act()
