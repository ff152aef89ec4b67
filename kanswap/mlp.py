"""MLP: pykan's ``kan.MLP.MLP`` baseline with a fast, exact auto_swap.

Importing this module touches no RNG (pykan's module import reseeds torch, D20).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from . import swap as swap_math
from .device import resolve_device
from .fit import fit as run_fit
from .layer import check_input
from .mlp_objective import mlp_objective
from .model_kinds import register_kind
from .records import batch_std, deepcopy_without_records, forward_with_records
from .regularization import matrix_reg

__all__ = ["MLP", "MLP_REG_METRICS"]

MLP_REG_METRICS = ("w", "act", "fa", "a")
# What forward/attribute record on the model: never deep-copied (they can hold autograd graphs).
_MLP_RECORDS = ("acts", "acts_scale", "wa_forward", "node_scores", "edge_scores", "wa_backward")

_ACTS = {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "identity": nn.Identity}


@register_kind("MLP")
class MLP(nn.Module):
    """A multilayer perceptron with pykan's MLP API: fit, attribute, connection_cost, swap, auto_swap.

    width: list of ints. Weights use PyTorch's default nn.Linear init after
    ``torch.manual_seed(seed)`` (so they equal pykan's). ``act`` picks the hidden activation
    ('silu' default; pykan ignores it, D20).
    """

    def __init__(self, width: Sequence[int], act: str = "silu", save_act: bool = True, seed: int = 0,
                 device="cpu"):
        """Build an MLP of ``width`` (list of ints) with the hidden activation ``act`` ('silu' by
        default; pykan ignores the argument), weights from ``torch.manual_seed(seed)`` (pykan's values;
        pykan's module import also reseeds, kanswap's does not). Input (B, width[0]) -> (B, width[-1])."""
        super().__init__()
        if not isinstance(width, (list, tuple)) or len(width) < 2:
            raise ValueError(f"width must list at least two layers, got {width!r}")
        if any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in width):
            raise ValueError(f"width entries must be positive integers, got {width!r}")
        if act not in _ACTS:
            raise ValueError(f"unknown act {act!r}; use one of {sorted(_ACTS)}")
        device = resolve_device(device)
        torch.manual_seed(seed)
        self.width = list(width)
        self.seed = seed
        self.depth = len(width) - 1
        self.linears = nn.ModuleList([nn.Linear(width[i], width[i + 1]) for i in range(self.depth)])
        self.act_name = act
        self.act_fun = _ACTS[act]()
        self.save_act = save_act
        self.acts = None
        self.cache_data = None
        self.node_scores = self.edge_scores = self.wa_backward = None
        self.to(device)

    def to(self, *args, **kwargs):
        """``nn.Module.to``, keeping ``device`` in step (pykan's attribute)."""
        out = super().to(*args, **kwargs)
        self.device = self.linears[0].weight.device
        return out

    @property
    def input_dim(self) -> int:
        """Columns the model's input has: width[0]."""
        return self.width[0]

    def copy(self) -> MLP:
        """A deep copy (parameters not shared)."""
        return copy.deepcopy(self)

    def config(self) -> dict:
        """Constructor arguments that rebuild this model's structure (plain Python values)."""
        return dict(width=list(self.width), act=self.act_name, save_act=self.save_act, seed=self.seed)

    def saveckpt(self, path: str = "model") -> None:
        """Write the model to ``path`` (one file; see kanswap.checkpoint)."""
        from .checkpoint import save_model

        save_model(self, path)

    @staticmethod
    def loadckpt(path: str = "model") -> MLP:
        """Read a model written by ``saveckpt`` (loaded with torch.load(weights_only=True))."""
        from .checkpoint import load_kind

        return load_kind(path, "MLP")

    def __deepcopy__(self, memo):
        return deepcopy_without_records(self, memo, _MLP_RECORDS)

    @property
    def w(self) -> list[torch.Tensor]:
        """The weight matrices, one per layer: L tensors of shape (width[l+1], width[l]) (pykan's ``w``)."""
        return [lin.weight for lin in self.linears]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, width[0]) -> (B, width[-1]); with save_act, records acts, acts_scale, wa_forward."""
        check_input(x, self.width[0], self.linears[0].weight)
        self.cache_data = x.detach()
        self.acts, self.acts_scale, self.wa_forward = [], [], []
        for i, lin in enumerate(self.linears):
            if self.save_act:
                scale = batch_std(x)
                self.acts.append(x.detach())
                if i > 0:
                    self.acts_scale.append(scale)
                self.wa_forward.append(scale[None, :] * lin.weight)
            x = lin(x)
            if i < self.depth - 1:
                x = self.act_fun(x)
            elif self.save_act:
                self.acts_scale.append(batch_std(x))
        if not self.save_act:
            self.acts = None
        return x

    def get_act(self, x=None) -> None:
        """Run a forward with save_act on, on x (a dict means its train_input) or cache_data."""
        forward_with_records(self, x)

    def attribute(self) -> None:
        """Edge and node scores, output to input, starting from ones (pykan's MLP rule)."""
        if self.acts is None or not self.wa_forward:
            self.get_act()
        ref = self.linears[0].weight
        score = torch.ones(self.width[-1], dtype=ref.dtype, device=ref.device)
        nodes, edges = [score], []
        for l in range(self.depth, 0, -1):
            edge = self.wa_forward[l - 1].abs() * (score / (self.acts_scale[l - 1] + 1e-4))[:, None]
            score = edge.sum(0) / (self.width[l - 1] ** 0.5)
            edges.append(edge)
            nodes.append(score)
        self.node_scores = nodes[::-1]
        self.edge_scores = edges[::-1]
        self.wa_backward = self.edge_scores

    def reg(self, reg_metric: str = "w", lamb_l1: float = 1.0, lamb_entropy: float = 2.0) -> torch.Tensor:
        """pykan's MLP regularisation of the weights ('w'), of weight x input std ('act') or of the
        attribution scores ('fa') of the latest forward: L1 plus ``lamb_entropy`` x entropy, summed over
        layers; a scalar tensor with a gradient."""
        if reg_metric == "w":
            mats = self.w
        elif reg_metric == "act":
            mats = self.wa_forward
        elif reg_metric == "fa":
            mats = self.wa_backward
        elif reg_metric == "a":
            mats = self.acts_scale
        else:
            raise ValueError(f"unknown reg_metric {reg_metric!r}; use one of {list(MLP_REG_METRICS)}")
        if not mats:
            raise RuntimeError(f"reg({reg_metric!r}) needs saved activations: run a forward with save_act=True")
        total = 0.0
        for v in mats:
            total = total + matrix_reg(v.abs(), lamb_l1, lamb_entropy)
        return total

    def get_reg(self, reg_metric, lamb_l1, lamb_entropy) -> torch.Tensor:
        """pykan's name for ``reg(reg_metric, lamb_l1, lamb_entropy)``."""
        return self.reg(reg_metric, lamb_l1, lamb_entropy)

    def fit(self, dataset: dict, opt: str = "LBFGS", steps: int = 100, log: int = 1, lamb: float = 0.0,
            lamb_l1: float = 1.0, lamb_entropy: float = 2.0, loss_fn: Callable | None = None, lr: float = 1.0,
            batch: int = -1, metrics: Sequence[Callable] | None = None, in_vars=None, out_vars=None,
            beta: float = 3, device=None, reg_metric: str = "w",
            display_metrics: Sequence[str] | None = None, progress: bool | None = None) -> dict:
        """pykan's MLP fit (same loop as KAN.fit, no grid updates). 'fa' works with Adam too (D20).

        progress: show the progress bar (default: on a terminal and in Jupyter, not when the output
        is piped; the environment variable ``KANSWAP_PROGRESS=0`` turns it off)."""
        if reg_metric not in MLP_REG_METRICS:
            raise ValueError(f"unknown reg_metric {reg_metric!r}; use one of {list(MLP_REG_METRICS)}")

        def reg() -> torch.Tensor:
            if reg_metric == "fa":
                self.attribute()
            return self.reg(reg_metric, lamb_l1, lamb_entropy)

        def fast_objective(lamb_: float):
            return mlp_objective(self, lamb=lamb_, reg_metric=reg_metric, lamb_l1=lamb_l1, lamb_entropy=lamb_entropy,
                                 loss_fn=loss_fn)

        return run_fit(self, dataset, opt=opt, steps=steps, log=log, lamb=lamb, reg=reg, loss_fn=loss_fn, lr=lr,
                       batch=batch, metrics=metrics, display_metrics=display_metrics, fast_objective=fast_objective,
                       progress=progress)

    # -- swapping -------------------------------------------------------------------------------
    @property
    def connection_cost(self) -> torch.Tensor:
        """sum over layers of |pos_out - pos_in| |W|: the weights, as pykan's MLP (0-d tensor)."""
        with torch.no_grad():
            return swap_math.connection_cost([lin.weight.abs() for lin in self.linears])

    def _check_node_layer(self, l: int) -> None:
        if not isinstance(l, int) or isinstance(l, bool) or not 1 <= l <= self.depth - 1:
            raise ValueError(f"layer l must be a hidden layer in 1..{self.depth - 1}, got {l!r}")

    @torch.no_grad()
    def permute_layer(self, l: int, perm) -> None:
        """Reorder hidden layer l's neurons: new neuron p is old neuron perm[p]. Output unchanged."""
        self._check_node_layer(l)
        n = self.width[l]
        perm = torch.as_tensor(perm, dtype=torch.long).cpu()
        if perm.shape != (n,) or not torch.equal(perm.sort().values, torch.arange(n)):
            raise ValueError(f"perm must be a permutation of 0..{n - 1}, got {perm.tolist()}")
        perm = perm.to(self.device)
        prev, nxt = self.linears[l - 1], self.linears[l]
        prev.weight.data = prev.weight.data[perm].contiguous()
        prev.bias.data = prev.bias.data[perm].contiguous()
        nxt.weight.data = nxt.weight.data[:, perm].contiguous()
        if self.cache_data is not None and self.acts is not None:
            had_scores = self.edge_scores is not None
            self.get_act()
            if had_scores:
                self.attribute()

    def swap(self, l: int, i1: int, i2: int) -> None:
        """Swap hidden neurons i1 and i2 of node layer l (1..L-1): rows of the layer below, columns of the
        layer above; the function is unchanged."""
        self._check_node_layer(l)
        n = self.width[l]
        for name, i in (("i1", i1), ("i2", i2)):
            if not isinstance(i, int) or not 0 <= i < n:
                raise ValueError(f"{name}={i!r} out of range for layer {l} of width {n}")
        perm = list(range(n))
        perm[i1], perm[i2] = perm[i2], perm[i1]
        self.permute_layer(l, perm)

    def auto_swap_l(self, l: int, method: str = "greedy") -> None:
        """Reorder the hidden neurons of node layer l to lower the connection cost (``method`` 'greedy',
        pykan's decisions, or 'optimal'); the function is unchanged."""
        self._check_node_layer(l)
        self._auto_swap([l], method)

    def auto_swap(self, method: str = "greedy") -> None:
        """Reorder hidden neurons to lower the weight-based connection cost ('greedy': pykan's
        decisions; 'optimal': assignment descents from several starts, kanswap.swap.optimal_perms),
        from the weights alone."""
        self._auto_swap(list(range(1, self.depth)), method)

    def _auto_swap(self, layers: list[int], method: str) -> None:
        if method not in ("greedy", "optimal"):
            raise ValueError(f"unknown method {method!r}; use 'greedy' or 'optimal'")
        if not layers:
            return
        scores = [lin.weight.detach().abs() for lin in self.linears]
        for l, perm in swap_math.layer_perms(scores, layers, method).items():
            if not torch.equal(perm.cpu(), torch.arange(len(perm))):
                self.permute_layer(l, perm)

    def node_edge_scores(self) -> list[torch.Tensor]:
        """``|W_l|`` per layer, float64, (width[l+1], width[l]): the scores find_modules reads."""
        return [lin.weight.detach().abs().to(torch.float64) for lin in self.linears]

    def plot(self, beta: float = 3, scale: float = 1.0, metric: str = "w", folder=None, in_vars=None,
             out_vars=None, title=None, legend: bool = True, modules: bool = False, module_threshold: float = 0.1):
        """Draw the MLP and return the Figure: weights coloured by sign (blue > 0, red < 0), opacity
        tanh(beta |p|), a colour bar saying so, input/output labels (``modules=True``: coloured by
        module instead, with a key). In Jupyter a cell ending in ``model.plot()`` shows it once.
        See ``kanswap.plot.plot_mlp``."""
        from .plot import plot_mlp

        return plot_mlp(self, beta=beta, scale=scale, metric=metric, folder=folder, in_vars=in_vars,
                        out_vars=out_vars, title=title, legend=legend, modules=modules,
                        module_threshold=module_threshold)

    def find_modules(self, threshold: float = 0.1) -> list:
        """Per layer, the groups of neurons that reach the next layer through separate weights with
        ``|w|`` above ``threshold`` times the layer's largest (``kanswap.modules.LayerModules``)."""
        from .modules import find_modules

        return find_modules(self, threshold)

    # -- pykan's hypothesis tree (kanswap/tree.py; pykan's MLP.tree raises NameError) ------------
    def tree(self, x=None, in_var=None, style: str = "tree", sym_th: float = 1e-3, sep_th: float = 1e-1,
             skip_sep_test: bool = False, verbose: bool = False):
        """Draw the separability/symmetry tree of the function on x (default: cached data); returns the Figure."""
        from .tree import plot_tree

        return plot_tree(self, x, in_var=in_var, style=style, sym_th=sym_th, sep_th=sep_th,
                         skip_sep_test=skip_sep_test, verbose=verbose)
