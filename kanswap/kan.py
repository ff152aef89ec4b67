"""KAN: pykan's MultKAN API (the subset the reference workflow uses) on the fast layer.

Behaviour follows pykan 0.2.8 call by call; where pykan has a defect (D1-D24 in the README)
kanswap does the evident right thing instead, and the docstring of the affected method says so.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from . import swap as swap_math
from .attribution import attribute, node_attribute
from .device import resolve_device
from .history import log_version, start_history
from .kan_fit import fit_kan
from .layer import KANLayer, check_input, nan_rows, resolve_base_fun
from .model_kinds import register_kind
from .mult_swap import grouped_greedy_perms
from .records import batch_std, deepcopy_without_records, forward_with_records, sample_std
from .regularization import REG_METRICS, kan_reg
from .symbolic_layer import SymbolicKANLayer

__all__ = ["KAN", "MultKAN", "REG_METRICS"]

def _normalise_width(width) -> list[list[int]]:
    """[n or [n_sum, n_mult], ...] -> [[n_sum, n_mult], ...] as a new list (the caller's list is
    never mutated, unlike pykan's D16)."""
    if not isinstance(width, (list, tuple)) or len(width) < 2:
        raise ValueError(f"width must list at least two layers (input and output), got {width!r}")
    out = []
    for entry in width:
        if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
            pair = [int(entry), 0]
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            pair = [int(entry[0]), int(entry[1])]
        else:
            raise ValueError(f"width entries must be ints or [n_sum, n_mult] pairs, got {entry!r}")
        if pair[0] < 0 or pair[1] < 0 or pair[0] + pair[1] < 1:
            raise ValueError(f"every layer of width needs at least one node, got {entry!r} in {width!r}")
        out.append(pair)
    if out[0][1] or out[-1][1]:
        raise ValueError("the input and output layers cannot hold multiplication nodes")
    return out


def _per_layer(value, depth: int, name: str) -> list[int]:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * depth
    if len(values) != depth:
        raise ValueError(f"{name} has {len(values)} entries but the model has {depth} layers")
    for v in values:
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1 (or a list of them), got {value!r}")
    return [int(v) for v in values]


@register_kind("KAN")
class KAN(nn.Module):
    """A Kolmogorov-Arnold Network with pykan's MultKAN constructor, attributes and methods.

    width: list of ints or [n_sum, n_mult] pairs. ``KAN(width=[9, 10, 10, 1], seed=5)`` starts from
    the same parameters as pykan's ``KAN(width=[9, 10, 10, 1], seed=5)``. Like pykan, the
    constructor seeds the global torch, numpy and random RNGs with ``seed``. Nothing is written to
    disk unless ``auto_save=True`` is asked for (pykan defaults to writing ./model, D15).
    """

    def __init__(self, width=None, grid=3, k=3, mult_arity=2, noise_scale=0.3, scale_base_mu=0.0,
                 scale_base_sigma=1.0, base_fun="silu", symbolic_enabled=True, affine_trainable=False,
                 grid_eps=0.02, grid_range=(-1, 1), sp_trainable=True, sb_trainable=True, seed=1,
                 save_act=True, sparse_init=False, auto_save=False, first_init=True, ckpt_path="./model",
                 state_id=0, round=0, device="cpu", backend="auto"):
        """Build a KAN; pykan's MultKAN arguments.

        width: node layers, ints (sum nodes) or [n_sum, n_mult] pairs, e.g. [2, 5, 1] or
        [2, [3, 2], 1]. grid (intervals) and k (spline order) per model or per layer; mult_arity: an
        int or per-node lists. noise_scale, scale_base_mu, scale_base_sigma, base_fun ('silu', 'identity',
        'zero' or a callable), sp_trainable, sb_trainable, affine_trainable, grid_eps, grid_range,
        sparse_init: the initialisation and training switches of pykan. seed: seeds torch, numpy and
        random first, as pykan does, so the same seed gives pykan's parameters. device: 'cpu' or 'cuda'
        (clear error without CUDA); backend: 'auto', 'reference' or 'triton' for the layers. Unlike
        pykan nothing is written to disk unless ``auto_save=True``, and ``width`` is not modified.
        The model takes input (B, width[0]) and returns (B, width[-1])."""
        super().__init__()
        if width is None:
            raise ValueError("width is required, e.g. KAN(width=[2, 5, 1])")
        self.width = _normalise_width(width)
        depth = len(self.width) - 1
        self.grid = grid
        self.k = k
        grids = _per_layer(grid, depth, "grid")
        ks = _per_layer(k, depth, "k")
        self.mult_homo = isinstance(mult_arity, (int, np.integer))
        if self.mult_homo:
            if mult_arity < 1:
                raise ValueError(f"mult_arity must be >= 1, got {mult_arity}")
            self.mult_arity = int(mult_arity)
        else:
            self.mult_arity = [list(a) if isinstance(a, (list, tuple)) else [] for a in mult_arity]
            for l, pair in enumerate(self.width):
                if len(self.mult_arity) <= l or len(self.mult_arity[l]) != pair[1]:
                    raise ValueError(f"mult_arity[{l}] must list one arity per mult node ({pair[1]})")
        self.base_fun, self.base_fun_name = resolve_base_fun(base_fun)
        self.grid_eps = grid_eps
        self.grid_range = [float(grid_range[0]), float(grid_range[1])]
        self.symbolic_enabled = symbolic_enabled
        self.affine_trainable = affine_trainable
        self.sp_trainable, self.sb_trainable = sp_trainable, sb_trainable
        self.noise_scale = noise_scale
        self.scale_base_mu, self.scale_base_sigma = scale_base_mu, scale_base_sigma
        self.sparse_init = sparse_init
        self.seed = seed
        self.save_act = save_act
        self.auto_save = auto_save
        self.ckpt_path = ckpt_path
        self.state_id = state_id
        self.round = round
        self.backend = backend
        self.device = resolve_device(device)

        # pykan seeds the global RNGs here; scripts rely on it for reproducible splits and batches.
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)

        # Registration order is pykan's (it is also LBFGS's flattening order): node/subnode affine
        # per layer, then act_fun, then symbolic_fun.
        for l in range(depth):
            n_node, n_sub = self.width_in[l + 1], self.width_out[l + 1]
            for name, size, value in (("node_bias", n_node, 0.0), ("node_scale", n_node, 1.0),
                                      ("subnode_bias", n_sub, 0.0), ("subnode_scale", n_sub, 1.0)):
                setattr(self, f"{name}_{l}",
                        nn.Parameter(torch.full((size,), value), requires_grad=affine_trainable))
        self.act_fun = nn.ModuleList([
            KANLayer(self.width_in[l], self.width_out[l + 1], num=grids[l], k=ks[l], noise_scale=noise_scale,
                     scale_base_mu=scale_base_mu, scale_base_sigma=scale_base_sigma, scale_sp=1.0,
                     base_fun=self.base_fun, grid_eps=grid_eps, grid_range=self.grid_range,
                     sp_trainable=sp_trainable, sb_trainable=sb_trainable, sparse_init=sparse_init,
                     backend=backend)
            for l in range(depth)
        ])
        self.symbolic_fun = nn.ModuleList([SymbolicKANLayer(self.width_in[l], self.width_out[l + 1])
                                           for l in range(depth)])
        self.input_id = torch.arange(self.width_in[0])
        self.n_inputs = self.width_in[0]
        self._reset_records()
        self.cache_data = None
        self.to(self.device)
        if auto_save and first_init:
            os.makedirs(ckpt_path, exist_ok=True)
            self.saveckpt(os.path.join(ckpt_path, f"{self.round}.{self.state_id}"))
        # Versions for rewind/checkout/history, in memory unless auto_save (kanswap/history.py).
        self._versions = start_history(self) if first_init else None

    # -- structure ------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Number of layers of edges, L = len(width) - 1."""
        return len(self.width) - 1

    @property
    def width_in(self) -> list[int]:
        """Nodes per node layer, sum plus mult nodes: [n_0, ..., n_L] (pykan's ``width_in``)."""
        return [a + b for a, b in self.width]

    def _arities(self, l: int) -> list[int]:
        """Arities of the mult nodes of node layer l."""
        if self.mult_homo:
            return [self.mult_arity] * self.width[l][1]
        return list(self.mult_arity[l])

    @property
    def width_out(self) -> list[int]:
        """Subnodes per node layer (what the edges of the layer below end on): sum nodes plus the
        arities of the mult nodes; equal to ``width_in`` without mult nodes."""
        return [self.width[l][0] + sum(self._arities(l)) for l in range(len(self.width))]

    @property
    def n_sum(self) -> list[int]:
        """Sum nodes of each hidden layer: [width[1][0], ..., width[L-1][0]] (pykan's ``n_sum``)."""
        return [w[0] for w in self.width[1:-1]]

    @property
    def n_mult(self) -> list[int]:
        """Mult nodes of each hidden layer: [width[1][1], ..., width[L-1][1]] (pykan's ``n_mult``)."""
        return [w[1] for w in self.width[1:-1]]

    @property
    def input_dim(self) -> int:
        """Columns the model's input has; after prune_input, ``input_id`` selects a subset of them."""
        return self.n_inputs

    def _select_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Validate x (B, input_dim) and pick the columns in ``input_id``."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2:
            raise ValueError(f"input must be 2-D (batch, {self.n_inputs}), got shape {tuple(x.shape)}")
        if x.shape[1] != self.n_inputs:
            raise ValueError(f"input has {x.shape[1]} features but the model expects {self.n_inputs}: "
                             f"shape {tuple(x.shape)}")
        if len(self.input_id) != self.n_inputs:
            x = x[:, self.input_id.to(x.device)]
        check_input(x, self.width_in[0], self.act_fun[0].coef)
        return x

    def _affine(self, name: str, l: int) -> nn.Parameter:
        return getattr(self, f"{name}_{l}")

    @property
    def node_bias(self) -> list[nn.Parameter]:
        """Per layer of edges l, the bias added to node layer l+1: L parameters of shape (width_in[l+1],)."""
        return [self._affine("node_bias", l) for l in range(self.depth)]

    @property
    def node_scale(self) -> list[nn.Parameter]:
        """Per layer of edges l, the scale of node layer l+1: L parameters of shape (width_in[l+1],)."""
        return [self._affine("node_scale", l) for l in range(self.depth)]

    @property
    def subnode_bias(self) -> list[nn.Parameter]:
        """Per layer of edges l, the bias of its subnodes: L parameters of shape (width_out[l+1],)."""
        return [self._affine("subnode_bias", l) for l in range(self.depth)]

    @property
    def subnode_scale(self) -> list[nn.Parameter]:
        """Per layer of edges l, the scale of its subnodes: L parameters of shape (width_out[l+1],)."""
        return [self._affine("subnode_scale", l) for l in range(self.depth)]

    def subnode_groups(self, l: int) -> list[list[int]]:
        """For node layer l (1..L), the subnode ids feeding each node (one for sum nodes)."""
        n_sum = self.width[l][0]
        groups = [[i] for i in range(n_sum)]
        start = n_sum
        for a in self._arities(l):
            groups.append(list(range(start, start + a)))
            start += a
        return groups

    def _reset_records(self) -> None:
        """Forget what the last forward and attribution recorded (see _RECORD_KEYS)."""
        self.acts = None
        self.subnode_actscale = []
        self.edge_actscale = []
        self.acts_scale = []
        self.acts_scale_spline = []
        self.acts_scale_sum = []
        self.acts_premult = []
        self.node_scores = self.edge_scores = self.subnode_scores = None
        self.node_scores_all = self.edge_scores_all = self.subnode_scores_all = None
        self.node_attribute_scores = None

    # -- forward --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, singularity_avoiding: bool = False, y_th: float = 10.0) -> torch.Tensor:
        """x (B, n_in) -> (B, n_out). With ``save_act`` it records what attribution, regularisation
        and plots read: inputs per layer (``acts``), subnode and edge stds (from basis moments, no
        (B, in, out) tensor), and the model keeps x as ``cache_data`` (pykan's behaviour)."""
        raw = x
        x = self._select_inputs(x)
        self.cache_data = raw.detach()
        save = self.save_act and x.shape[0] > 0
        self._reset_records_for_forward()
        self.acts = [x.detach()]
        for l, layer in enumerate(self.act_fun):
            sym = self.symbolic_fun[l] if self.symbolic_enabled and self.symbolic_fun[l].active else None
            if save:
                y, edge = layer.output_and_std(x)
                edge = edge.t()  # (out, in), carries grad for reg
                norm = sample_std(x).unsqueeze(0) + 0.1  # std(x_i), not detached (as pykan)
                self.acts_scale_spline.append(edge / norm)  # numeric branch only, as pykan
                if sym is not None:
                    # scores see both branches: the std of every edge's whole output (B, out, in)
                    spost = sym.postacts(x, singularity_avoiding, y_th)
                    y = y + spost.sum(2)
                    edge = sample_std(layer.edge_outputs(x)[0].transpose(1, 2) + spost)
                self.subnode_actscale.append(batch_std(y.detach()))
                self.edge_actscale.append(edge)
                self.acts_scale_sum.append(edge / norm)
                self.acts_scale.append((edge / norm).detach())
            else:
                y = layer.output(x)
                if sym is not None:
                    y = y + sym.output(x, singularity_avoiding, y_th)
            x = self._to_nodes(l, y, self.acts_premult if save else None)
            self.acts.append(x.detach())
        return nan_rows(self.acts[0], x)

    def edgewise_forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, input_dim) -> (B, n_out) through every edge's spline (``KANLayer.edge_outputs``):
        autograd differentiates it any number of times (forward's hand-written backward gives first
        derivatives only), for the hypothesis tree's Hessians. Builds (B, in, out) tensors; no records."""
        if len(self.input_id) != self.n_inputs:
            x = x[:, self.input_id.to(x.device)]
        for l, layer in enumerate(self.act_fun):
            phi, _ = layer.edge_outputs(x)
            x = self._to_nodes(l, phi.sum(1))
        return x

    def _to_nodes(self, l: int, y: torch.Tensor, premult: list | None = None) -> torch.Tensor:
        """Layer l's outputs (B, width_out[l+1]) -> node values (B, width_in[l+1]): subnode affine,
        products of each mult node's subnodes, node affine. ``premult`` collects the subnode values."""
        y = self._affine("subnode_scale", l) * y + self._affine("subnode_bias", l)
        if premult is not None:
            premult.append(y.detach())
        n_sum = self.width[l + 1][0]
        if self.width[l + 1][1]:
            y = torch.cat([y[:, :n_sum]] + [y[:, g].prod(dim=1, keepdim=True)
                                            for g in self.subnode_groups(l + 1)[n_sum:]], dim=1)
        return self._affine("node_scale", l) * y + self._affine("node_bias", l)

    def _reset_records_for_forward(self) -> None:
        self.subnode_actscale, self.edge_actscale = [], []
        self.acts_scale, self.acts_scale_spline, self.acts_premult = [], [], []
        self.acts_scale_sum = []

    def get_act(self, x=None) -> None:
        """Run a forward with save_act on, on x (a dict means its train_input) or cache_data."""
        forward_with_records(self, x)

    def _ensure_acts(self) -> None:
        if self.acts is None or not self.edge_actscale:
            self.get_act()

    def edge_activations(self, l: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer l's inputs (B, in) and every edge's output phi (B, out, in), numeric plus symbolic
        branch, on the cached data, for plots and symbolic fits (pykan's acts[l] and
        spline_postacts[l]). Builds a (B, out, in) tensor."""
        self._ensure_acts()
        x = self.acts[l]
        with torch.no_grad():
            phi = self.act_fun[l].edge_outputs(x)[0].permute(0, 2, 1)
            if self.symbolic_enabled and self.symbolic_fun[l].active:
                phi = phi + self.symbolic_fun[l].postacts(x)
        return x, phi

    # -- attribution ----------------------------------------------------------------------------
    def attribute(self, l: int | None = None, i: int | None = None, out_score=None, plot: bool = True):
        """Backward attribution scores (``kanswap.attribution.attribute``).

        With l=None it sets ``node_scores`` (per node layer), ``edge_scores`` ((out, in) per layer)
        and ``subnode_scores`` as means over the output nodes. With l given it returns the
        attribution of layer-l nodes to the inputs, (width_in[l], n_0), or row i; unlike pykan
        (D17) the stored full scores are left intact.
        """
        return attribute(self, l, i, out_score, plot)

    def node_attribute(self) -> None:
        """pykan's node_attribute: ``node_attribute_scores = [attribute(l) for l in 1..L]``."""
        node_attribute(self)

    @property
    def feature_score(self) -> torch.Tensor:
        """Attribution score of each input feature: (n_0,)."""
        self.attribute()
        return self.node_scores[0]

    @property
    def n_edge(self) -> int:
        """Number of active edges (mask > 0) over all layers."""
        return int(sum((layer.mask > 0).sum().item() for layer in self.act_fun))

    # -- regularisation -------------------------------------------------------------------------
    def reg(self, reg_metric: str = "edge_forward_spline_n", lamb_l1: float = 1.0, lamb_entropy: float = 2.0,
            lamb_coef: float = 0.0, lamb_coefdiff: float = 0.0) -> torch.Tensor:
        """pykan's regularisation on the latest forward's records. Every metric
        has a gradient ('edge_forward_sum' included, unlike pykan's D13)."""
        return kan_reg(self, reg_metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff)

    def get_reg(self, reg_metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff) -> torch.Tensor:
        """pykan's name for ``reg(reg_metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff)``: a scalar
        tensor with a gradient, from the latest forward's records."""
        return self.reg(reg_metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff)

    # -- grids ----------------------------------------------------------------------------------
    def update_grid(self, x) -> None:
        """Refit every layer's grid to the activations it sees on x, layer by layer (pykan §6.2)."""
        if isinstance(x, dict):
            x = x["train_input"]
        h = self._select_inputs(x).detach()
        # Layer l sees the outputs of layers < l after their update, as pykan's L forwards do.
        for l in range(self.depth):
            self.act_fun[l].update_grid_from_samples(h)
            if l + 1 < self.depth:
                with torch.no_grad():
                    h = self._layer_forward(l, h)
        self.acts = None

    def update_grid_from_samples(self, x) -> None:
        """pykan's name for ``update_grid(x)``: x (B, input_dim) or a dataset dict (its ``train_input``)."""
        self.update_grid(x)

    def _layer_forward(self, l: int, x: torch.Tensor) -> torch.Tensor:
        """One layer with its subnode/mult/node stages, no records."""
        y = self.act_fun[l].output(x)
        if self.symbolic_enabled and self.symbolic_fun[l].active:
            y = y + self.symbolic_fun[l].output(x)
        return self._to_nodes(l, y)

    # -- training -------------------------------------------------------------------------------
    def fit(self, dataset: dict, opt: str = "LBFGS", steps: int = 100, log: int = 1, lamb: float = 0.0,
            lamb_l1: float = 1.0, lamb_entropy: float = 2.0, lamb_coef: float = 0.0, lamb_coefdiff: float = 0.0,
            update_grid: bool = True, grid_update_num: int = 10, loss_fn: Callable | None = None,
            lr: float = 1.0, start_grid_update_step: int = -1, stop_grid_update_step: int = 50,
            batch: int = -1, metrics: Sequence[Callable] | None = None, save_fig: bool = False,
            in_vars=None, out_vars=None, beta: float = 3, save_fig_freq: int = 1, img_folder: str = "./video",
            singularity_avoiding: bool = False, y_th: float = 1000.0,
            reg_metric: str = "edge_forward_spline_n", display_metrics: Sequence[str] | None = None,
            progress: bool | None = None) -> dict:
        """Train with pykan's signature and results dict (``train_loss``, ``test_loss``, ``reg`` and
        one list per metric). See ``kanswap.fit`` for the deliberate differences from pykan.

        progress: show the progress bar (default: on a terminal and in Jupyter, not when the output
        is piped; the environment variable ``KANSWAP_PROGRESS=0`` turns it off)."""
        return fit_kan(self, dataset, opt=opt, steps=steps, log=log, lamb=lamb, lamb_l1=lamb_l1,
                       lamb_entropy=lamb_entropy, lamb_coef=lamb_coef, lamb_coefdiff=lamb_coefdiff,
                       update_grid=update_grid, grid_update_num=grid_update_num, loss_fn=loss_fn, lr=lr,
                       start_grid_update_step=start_grid_update_step, stop_grid_update_step=stop_grid_update_step,
                       batch=batch, metrics=metrics, save_fig=save_fig, in_vars=in_vars, out_vars=out_vars,
                       beta=beta, save_fig_freq=save_fig_freq, img_folder=img_folder, reg_metric=reg_metric,
                       display_metrics=display_metrics, progress=progress)

    # -- swapping -------------------------------------------------------------------------------
    def _check_node_layer(self, l: int) -> None:
        if not isinstance(l, int) or isinstance(l, bool) or not 1 <= l <= self.depth - 1:
            raise ValueError(f"layer l must be a hidden node layer in 1..{self.depth - 1}, got {l!r}")

    @torch.no_grad()
    def permute_layer(self, l: int, perm) -> None:
        """Reorder the nodes of hidden node layer l: new node p is old node perm[p].

        Moves every parameter indexed by those nodes exactly once (incoming edges, outgoing edges
        and grid rows, node and subnode affine values, mult-node groups as a whole, their
        arities), so the model's function is unchanged, and reorders the recorded activations and
        scores to match.
        """
        self._check_node_layer(l)
        n = self.width_in[l]
        perm = torch.as_tensor(perm, dtype=torch.long).cpu()
        if perm.shape != (n,) or not torch.equal(perm.sort().values, torch.arange(n)):
            raise ValueError(f"perm must be a permutation of 0..{n - 1}, got {perm.tolist()}")
        n_sum = self.width[l][0]
        if (perm[:n_sum] >= n_sum).any():
            raise ValueError("perm may reorder sum nodes among themselves and mult nodes among "
                             "themselves, not exchange the two kinds")
        groups = self.subnode_groups(l)
        sub_perm = torch.tensor([s for p in perm.tolist() for s in groups[p]], dtype=torch.long)
        dev = self.act_fun[0].coef.device
        self.act_fun[l - 1].permute(sub_perm.to(dev), "out")
        self.symbolic_fun[l - 1].permute(sub_perm.to(dev), "out")
        self.act_fun[l].permute(perm.to(dev), "in")
        self.symbolic_fun[l].permute(perm.to(dev), "in")
        for name, p in (("node_bias", perm), ("node_scale", perm), ("subnode_bias", sub_perm),
                        ("subnode_scale", sub_perm)):
            param = self._affine(name, l - 1)
            param.data = param.data[p.to(dev)].contiguous()
        if not self.mult_homo and self.width[l][1]:
            arities = self.mult_arity[l]
            self.mult_arity[l] = [arities[int(p) - n_sum] for p in perm[n_sum:]]
        self._permute_records(l, perm.to(dev), sub_perm.to(dev))

    def _permute_records(self, l: int, perm: torch.Tensor, sub_perm: torch.Tensor) -> None:
        """Reorder what the last forward and attribution recorded as node layer l was reordered.

        A permutation leaves the function unchanged, so this is exactly what a new forward on the
        cached data would record (up to the summation order of float reductions), without running
        it; pykan leaves these stale (D3).
        """
        if self.acts is None or len(self.acts) != self.depth + 1:
            self._reset_records()
            return
        self.acts[l] = self.acts[l][:, perm]
        for name in ("acts_premult", "subnode_actscale"):
            records = getattr(self, name)
            if records:
                records[l - 1] = records[l - 1][..., sub_perm]
        for name in ("edge_actscale", "acts_scale", "acts_scale_spline", "acts_scale_sum"):
            records = getattr(self, name)
            if records:
                records[l - 1] = records[l - 1][sub_perm]
                records[l] = records[l][:, perm]
        if self.edge_scores is not None:
            self.node_scores[l] = self.node_scores[l][perm]
            self.subnode_scores[l - 1] = self.subnode_scores[l - 1][sub_perm]
            self.edge_scores[l - 1] = self.edge_scores[l - 1][sub_perm]
            self.edge_scores[l] = self.edge_scores[l][:, perm]
        self.node_attribute_scores = None

    def swap(self, l: int, i1: int, i2: int, log_history: bool = True) -> None:
        """Exchange nodes i1 and i2 of hidden node layer l (both sum or both mult nodes)."""
        self._check_node_layer(l)
        n = self.width_in[l]
        for name, i in (("i1", i1), ("i2", i2)):
            if not isinstance(i, (int, np.integer)) or not 0 <= i < n:
                raise ValueError(f"{name}={i!r} out of range for layer {l} of width {n}")
        perm = list(range(n))
        perm[i1], perm[i2] = perm[i2], perm[i1]
        self.permute_layer(l, perm)
        if log_history:
            self.log_history("swap")

    def _score_matrices(self) -> list[torch.Tensor]:
        """Edge scores recomputed on the cached data, as pykan's auto_swap does for each candidate
        (scores left by an earlier attribute() may describe other data or older parameters)."""
        self.get_act()
        self.attribute()
        return [s.detach() for s in self.edge_scores]

    def node_edge_scores(self) -> list[torch.Tensor]:
        """Edge scores between nodes on fresh scores, float64: L matrices (width_in[l+1], width_in[l]);
        a mult node's incoming edges end at its subnodes, so their rows are summed (find_modules)."""
        out = []
        for l, s in enumerate(self._score_matrices()):
            s = s.to(torch.float64)
            groups = self.subnode_groups(l + 1)
            if len(groups) != s.shape[0]:
                s = torch.stack([s[g].sum(0) for g in groups])
            out.append(s)
        return out

    @property
    def connection_cost(self) -> torch.Tensor:
        """sum_l sum_{a,b} |pos_a - pos_b| edge_scores[l][a, b] on fresh scores (0-d tensor)."""
        return swap_math.connection_cost(self._score_matrices())

    def auto_swap_l(self, l: int, method: str = "greedy") -> None:
        """Reorder the nodes of hidden layer l to lower the connection cost (others fixed)."""
        self._check_node_layer(l)
        self._auto_swap([l], method)

    def auto_swap(self, method: str = "greedy") -> None:
        """Reorder hidden nodes to minimise the connection cost, from one attribution pass.

        method='greedy' makes pykan's decisions (for i in 0..n-1 swap i with the best partner),
        layer after layer, each with its own width (pykan's D2 uses width_in[1] everywhere);
        'optimal' runs linear-assignment descents from several starts (exact for small layers; see
        kanswap.swap.optimal_perms) and puts each module's nodes side by side; it never ends above
        'greedy'. The model is never re-run per candidate.
        """
        self._auto_swap(list(range(1, self.depth)), method)
        self.log_history("auto_swap")

    def _auto_swap(self, layers: list[int], method: str) -> None:
        if method not in ("greedy", "optimal"):
            raise ValueError(f"unknown method {method!r}; use 'greedy' or 'optimal'")
        if not layers:
            return
        if any(self.width[l][1] for l in layers):
            perms = grouped_greedy_perms(self._score_matrices(), layers, {l: self.subnode_groups(l) for l in layers},
                                         {l: self.width[l][0] for l in layers})
        else:
            perms = swap_math.layer_perms(self._score_matrices(), layers, method)
        for l, perm in perms.items():
            if not torch.equal(perm.cpu(), torch.arange(len(perm))):
                self.permute_layer(l, perm)

    # -- pruning, plotting, checkpoints (kanswap/prune.py, plot.py, checkpoint.py) ---------------
    def log_history(self, name: str) -> None:
        """Record the model as version ``{round}.{state_id + 1}`` after ``name``: in memory, or as the
        checkpoint ``{ckpt_path}/{round}.{state_id}`` with auto_save (kanswap/history.py)."""
        log_version(self, name)

    def restart_history(self) -> None:
        """Start a new version history holding the model as it is now (after loading weights)."""
        self._versions = start_history(self)

    def config(self) -> dict:
        """Constructor arguments that rebuild this model's structure (plain Python values)."""
        return dict(width=copy.deepcopy(self.width), grid=self.grid, k=self.k,
                    mult_arity=copy.deepcopy(self.mult_arity), noise_scale=self.noise_scale,
                    scale_base_mu=self.scale_base_mu, scale_base_sigma=self.scale_base_sigma,
                    base_fun=self.base_fun_name if isinstance(self.base_fun, str) else "silu",
                    symbolic_enabled=self.symbolic_enabled, affine_trainable=self.affine_trainable,
                    grid_eps=self.grid_eps, grid_range=list(self.grid_range), sp_trainable=self.sp_trainable,
                    sb_trainable=self.sb_trainable, seed=self.seed, save_act=self.save_act,
                    sparse_init=self.sparse_init, auto_save=self.auto_save, ckpt_path=self.ckpt_path,
                    state_id=self.state_id, round=self.round, backend=self.backend)

    def saveckpt(self, path: str = "model") -> None:
        """Write the model to the single file ``path``: config, parameters and cached data (pykan writes
        three files, ``{path}_config.yml``, ``{path}_state``, ``{path}_cache_data``). Read it back with
        ``KAN.loadckpt(path)``."""
        from .checkpoint import save_model

        save_model(self, path)

    @staticmethod
    def loadckpt(path: str = "model") -> KAN:
        """A KAN read from ``path``: kanswap's one-file checkpoint (opened with ``weights_only=True``: no
        code runs) or pykan's three files. A file holding an MLP is a TypeError naming what it holds."""
        from .checkpoint import load_kind

        return load_kind(path, "KAN")

    def copy(self) -> KAN:
        """A deep copy without the latest forward's records (acts, scores); parameters are not shared."""
        return copy.deepcopy(self)

    def __deepcopy__(self, memo):
        return deepcopy_without_records(self, memo, _RECORD_KEYS)

    def to(self, *args, **kwargs):
        """``nn.Module.to``, keeping ``device`` in step (pykan's attribute)."""
        out = super().to(*args, **kwargs)
        self.device = self.act_fun[0].coef.device
        return out

    def prune_node(self, threshold: float = 1e-2, mode: str = "auto", active_neurons_id=None,
                   log_history: bool = True, compensate: bool = True) -> KAN:
        """A new, smaller model without the hidden nodes whose attribution score is at most
        ``threshold`` (mode 'auto'), or keeping the ids ``active_neurons_id[l-1]`` of each hidden layer
        (mode 'manual'). ``compensate=True`` folds a removed node's mean output (on the cached data)
        into the biases it fed. Unlike pykan, the original is untouched (pykan zeroes its masks) and
        every hyperparameter is kept, without reseeding the RNG."""
        from .prune import prune_node

        return prune_node(self, threshold, mode, active_neurons_id, log_history, compensate)

    def prune_edge(self, threshold: float = 3e-2, log_history: bool = True, compensate: bool = True) -> KAN:
        """A new model with every edge whose attribution score ``edge_scores[l][j, i]`` is at most
        ``threshold`` masked; ``compensate=True`` folds a removed edge's mean output into its node's
        bias. Unlike pykan it computes its own scores (no earlier ``attribute()`` needed) and returns
        a new model instead of changing this one."""
        from .prune import prune_edge

        return prune_edge(self, threshold, log_history, compensate)

    def prune(self, node_th: float = 1e-2, edge_th: float = 3e-2, compensate: bool = True) -> KAN:
        """``prune_node(node_th)`` and then, on the result's fresh scores, ``prune_edge(edge_th)``: a new,
        smaller model; this one is untouched (pykan zeroes its masks). ``compensate=True`` folds what
        is removed into the biases, keeping the accuracy (pykan drops it)."""
        from .prune import prune

        return prune(self, node_th, edge_th, compensate)

    def prune_input(self, threshold: float = 1e-2, active_inputs=None, log_history: bool = True,
                    compensate: bool = True) -> KAN:
        """A new model reading only the inputs whose attribution score is above ``threshold`` (or the
        ids in ``active_inputs``). It still takes data of shape (B, input_dim) and picks its columns
        with ``input_id``; ``plot(in_vars=...)`` takes the original names. ``compensate=True`` folds a
        removed input's mean contribution into the biases."""
        from .prune import prune_input

        return prune_input(self, threshold, active_inputs, log_history, compensate)

    def plot(self, folder=None, beta: float = 3, metric: str = "backward", scale: float = 0.5, tick: bool = False,
             sample: bool = False, in_vars=None, out_vars=None, title=None, varscale: float = 1.0,
             legend: bool = True, modules: bool = False, module_threshold: float = 0.1):
        """Draw the network and return the matplotlib Figure (pykan's returns None and writes a PNG
        per edge): nodes, edges with opacity tanh(beta * score), each visible edge's curve in a box
        on it, labels (``in_vars``: one name per remaining input or, after ``prune_input``, one per
        original input; ``$...$`` as math text), a colour bar; ``modules=True`` colours
        ``find_modules``' modules, with a key. In Jupyter a cell ending in ``model.plot()`` shows
        the figure once; it stays open and current, as pykan's (``plt.savefig`` works after it).
        Writes ``{folder}/kan.png`` only when ``folder`` is given. See ``kanswap.plot.plot_kan``."""
        from .plot import plot_kan

        return plot_kan(self, folder=folder, beta=beta, metric=metric, scale=scale, tick=tick, sample=sample,
                        in_vars=in_vars, out_vars=out_vars, title=title, varscale=varscale, legend=legend,
                        modules=modules, module_threshold=module_threshold)

    def find_modules(self, threshold: float = 0.1) -> list:
        """Per layer of edges, the groups of nodes that reach the next layer through separate edges
        scoring above ``threshold`` times the layer's largest (``kanswap.modules.LayerModules``)."""
        from .modules import find_modules

        return find_modules(self, threshold)

    # -- the rest of pykan's numeric API (kanswap/history.py, grid_ops.py, edit.py, introspect.py,
    #    tree.py); pykan's signatures, no files written unless auto_save ----------------------------
    def rewind(self, model_id: str) -> KAN:
        """Version ``model_id`` ('{round}.{state_id}') as a new model, renamed into a new round."""
        from .history import rewind

        return rewind(self, model_id)

    def checkout(self, model_id: str) -> KAN:
        """Version ``model_id`` as a new model; nothing else changes."""
        from .history import checkout

        return checkout(self, model_id)

    def history(self, k="all") -> None:
        """Print the last k lines of the version log (``kanswap.history.history_lines`` returns them)."""
        from .history import history

        history(self, k)

    def refine(self, new_grid: int) -> KAN:
        """A new model with ``new_grid`` grid intervals computing the same function on the cached data."""
        from .grid_ops import refine

        return refine(self, new_grid)

    def initialize_from_another_model(self, another_model: KAN, x: torch.Tensor) -> KAN:
        """Make this model (same width, any grid size) compute ``another_model``'s function on x
        (B, input_dim): refined grids, splines fitted by least squares, the other's scales, masks,
        affine values and input selection. Returns this model, as pykan's."""
        from .grid_ops import initialize_from_another_model

        return initialize_from_another_model(self, another_model, x)

    def initialize_grid_from_another_model(self, model: KAN, x: torch.Tensor) -> None:
        """Refit this model's grids from ``model``'s (same width) and fit the splines to its activations
        on x (B, input_dim); changes this model in place."""
        from .grid_ops import initialize_grid_from_another_model

        initialize_grid_from_another_model(self, model, x)

    def remove_edge(self, l: int, i: int, j: int, log_history: bool = True) -> None:
        """Mask edge (l, i, j): input i of layer of edges l to its output (subnode) j; in place, logged as
        a new model version unless ``log_history=False``."""
        from .edit import remove_edge

        remove_edge(self, l, i, j)
        if log_history:
            self.log_history("remove_edge")

    def remove_node(self, l: int, i: int, mode: str = "all", log_history: bool = True) -> None:
        """Mask node i of node layer l: its incoming edges (``mode='down'``), outgoing ones ('up') or both
        ('all'); in place, logged as a new version unless ``log_history=False``."""
        from .edit import remove_node

        remove_node(self, l, i, mode)
        if log_history:
            self.log_history("remove_node")

    def module(self, start_layer: int, chain: str) -> None:
        """pykan's module constraint: ``chain`` '[ins]->[outs]->[ins]->...' from layer ``start_layer``; in
        each layer, the edges between the group and the rest (both ways) are masked. In place."""
        from .edit import module

        module(self, start_layer, chain)
        self.log_history("module")

    def expand_width(self, layer_id: int, n_added_nodes: int, sum_bool: bool = True, mult_arity=2) -> None:
        """Add ``n_added_nodes`` nodes to hidden node layer ``layer_id`` (sum nodes, or mult nodes of
        ``mult_arity`` with ``sum_bool=False``). Existing edges are kept and the new ones masked, so the
        function is unchanged (pykan replaces both layers and loses it). In place."""
        from .edit import expand_width

        expand_width(self, layer_id, n_added_nodes, sum_bool, mult_arity)

    def expand_depth(self) -> None:
        """Append an identity layer at the output (exact on the output range of the cached data); pykan's
        needs a symbolic identity and fails with an int ``mult_arity``. In place."""
        from .edit import expand_depth

        expand_depth(self)

    def perturb(self, mag: float = 1.0, mode: str = "non-intrusive") -> None:
        """Switch on inactive edges (mask 0 -> ``mag``) by pykan's edge types; 'non-intrusive' switches on
        only edges into inactive nodes and keeps the function unchanged (pykan reads activity from
        symbolic functions only). In place, logged as a new version."""
        from .edit import perturb

        perturb(self, mag, mode)
        self.log_history("perturb")

    def get_fun(self, l: int, i: int, j: int, plot: bool = True):
        """The samples of edge (l, i, j) on the latest forward: sorted inputs and outputs, two numpy
        arrays of shape (B,); with ``plot=True`` also draws them (a 3x3 in figure), as pykan's."""
        from .introspect import get_fun

        return get_fun(self, l, i, j, plot)

    def get_range(self, l: int, i: int, j: int, verbose: bool = True):
        """(x_min, x_max, y_min, y_max) of edge (l, i, j) on the latest forward, numpy scalars; printed
        when ``verbose``."""
        from .introspect import get_range

        return get_range(self, l, i, j, verbose)

    def evaluate(self, dataset: dict) -> dict:
        """pykan's evaluate: {'test_loss': RMSE on dataset['test_input'/'test_label'], 'n_edge': active
        edges, 'n_grid': grid intervals}."""
        from .introspect import evaluate

        return evaluate(self, dataset)

    def speed(self, compile: bool = False):
        """Switch off recording, symbolic and auto_save for fast inference; returns the model, or
        ``torch.compile`` of it with ``compile=True``."""
        from .introspect import speed

        return speed(self, compile)

    def get_params(self):
        """The model's parameters (``self.parameters()``), as pykan's."""
        return self.parameters()

    def disable_symbolic_in_fit(self, lamb: float) -> tuple[bool, bool]:
        """pykan's fit helper: save_act off when lamb == 0, the symbolic branch off when no symbolic
        function is fixed; returns the old (save_act, symbolic_enabled) to restore."""
        old = (self.save_act, self.symbolic_enabled)
        if lamb == 0.0:
            self.save_act = False
        if not any(sym.active for sym in self.symbolic_fun):
            self.symbolic_enabled = False
        return old

    def feature_interaction(self, l: int, neuron_th: float = 1e-2, feature_th: float = 1e-2) -> dict:
        """For each node of node layer l (1..L) whose largest input attribution exceeds ``neuron_th``,
        the tuple of inputs scoring above ``feature_th`` times that largest; returns {tuple: count}."""
        from .introspect import feature_interaction

        return feature_interaction(self, l, neuron_th, feature_th)

    def tree(self, x=None, in_var=None, style: str = "tree", sym_th: float = 1e-3, sep_th: float = 1e-1,
             skip_sep_test: bool = False, verbose: bool = False):
        """Draw pykan's hypothesis tree of the model's separability (``style`` 'tree' or 'box') on x
        (B, input_dim; default the cached data) and return the Figure (pykan's returns None). Names:
        ``in_var`` (LaTeX without $)."""
        from .tree import plot_tree

        return plot_tree(self, x, in_var=in_var, style=style, sym_th=sym_th, sep_th=sep_th,
                         skip_sep_test=skip_sep_test, verbose=verbose)

    @staticmethod
    def score2alpha(score, beta: float = 3.0):
        """The plot's edge opacity for a score: tanh(beta * score), same type and shape back."""
        from .introspect import score2alpha

        return score2alpha(score, beta)

    def get_coordinate(self, n: int) -> torch.Tensor:
        """Positions (n,) of n nodes on [0, 1], (i + 1/2) / n: what ``connection_cost`` measures with."""
        from .introspect import get_coordinate

        return get_coordinate(n, self.device)

    # -- symbolic regression (kanswap/symbolic.py) ------------------------------------------------
    def set_mode(self, l: int, i: int, j: int, mode: str, mask_n: float | None = None) -> None:
        """pykan's ``set_mode``: edge (l, i, j) numeric (``mode="n"``), symbolic (``"s"``), both
        (``"ns"``/``"sn"``) or neither; ``mask_n`` overrides the numeric mask value."""
        from .symbolic import set_mode

        set_mode(self, l, i, j, mode, mask_n)

    def fix_symbolic(self, l: int, i: int, j: int, fun_name, fit_params_bool: bool = True, a_range=(-10, 10),
                     b_range=(-10, 10), verbose: bool = True, random: bool = False, log_history: bool = True):
        """pykan's ``fix_symbolic``: edge (l, i, j) becomes ``c * f(a * x + b) + d`` with ``f`` a library
        name (or a callable); with ``fit_params_bool`` (a, b, c, d) are fitted to the edge's recorded
        activations (batched search over ``a_range`` x ``b_range``), and the fit's r² is returned
        (None without fitting). The numeric branch of the edge is switched off."""
        from .symbolic import fix_symbolic

        return fix_symbolic(self, l, i, j, fun_name, fit_params_bool, a_range, b_range, verbose, random, log_history)

    def unfix_symbolic(self, l: int, i: int, j: int, log_history: bool = True) -> None:
        """pykan's ``unfix_symbolic``: edge (l, i, j) back to its numeric spline."""
        from .symbolic import unfix_symbolic

        unfix_symbolic(self, l, i, j, log_history)

    def unfix_symbolic_all(self, log_history: bool = True) -> None:
        """pykan's ``unfix_symbolic_all``: every edge back to its numeric spline."""
        from .symbolic import unfix_symbolic_all

        unfix_symbolic_all(self, log_history)

    def suggest_symbolic(self, l: int, i: int, j: int, a_range=(-10, 10), b_range=(-10, 10), lib=None, topk: int = 5,
                         verbose: bool = True, r2_loss_fun=None, c_loss_fun=None, weight_simple: float = 0.8):
        """pykan's ``suggest_symbolic``: fits every library function (or ``lib``) to edge (l, i, j) at once
        and returns (best name, its function, r², complexity), printing the ``topk`` table pykan prints.
        Unlike pykan, the model is left unchanged."""
        from .symbolic import suggest_symbolic

        return suggest_symbolic(self, l, i, j, a_range, b_range, lib, topk, verbose, r2_loss_fun, c_loss_fun,
                                weight_simple)

    def auto_symbolic(self, a_range=(-10, 10), b_range=(-10, 10), lib=None, verbose: int = 1,
                      weight_simple: float = 0.8, r2_threshold: float = 0.0) -> None:
        """pykan's ``auto_symbolic``: for every numeric edge picks the library function with the best
        score (r² against complexity, ``weight_simple``) in one batched fit of all (edge, function)
        pairs, and fixes it where its r² is at least ``r2_threshold``."""
        from .symbolic import auto_symbolic

        auto_symbolic(self, a_range, b_range, lib, verbose, weight_simple, r2_threshold)

    def symbolic_formula(self, var=None, normalizer=None, output_normalizer=None):
        """pykan's ``symbolic_formula``: the model as sympy expressions, a list of one per output, and
        the input variables (x_1..x_n, or ``var``)."""
        from .symbolic import symbolic_formula

        return symbolic_formula(self, var, normalizer, output_normalizer)


MultKAN = KAN

# What forward/attribute record on the model; reset together, never deep-copied.
_RECORD_KEYS = ("acts", "subnode_actscale", "edge_actscale", "acts_scale", "acts_scale_spline", "acts_scale_sum",
                "acts_premult",
                "node_scores", "edge_scores", "subnode_scores", "node_scores_all", "edge_scores_all",
                "subnode_scores_all", "node_attribute_scores")
