"""KANLayer (pykan's parameters, init and 4-tuple forward) and KANLinear (a drop-in for nn.Linear).

Parameters are named and shaped as pykan's KANLayer so state_dicts move both ways:
``grid`` (in, G+2k+1), ``coef`` (in, out, G+k), ``mask`` (in, out), ``scale_base`` (in, out),
``scale_sp`` (in, out). The output is computed as one contraction of the features
(batch, in*(G+k+1)) with the folded weight; per-edge (batch, out, in) tensors are built only when
a caller asks for them (``forward`` of KANLayer returns them, as pykan's does).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .device import resolve_device
from .functional import BASE_FUNS, basis_features, basis_moments, edge_std, feature_moments, fold_weight
from .spline import coef_to_curve, curve_to_coef, grid_from_samples, uniform_grid

__all__ = ["KANLayer", "KANLinear", "LAYER_BACKENDS", "resolve_base_fun", "check_input", "nan_rows"]

# The kernel module's BACKENDS, repeated here so that checking a name does not import triton.
LAYER_BACKENDS = ("auto", "triton", "reference")


def resolve_base_fun(base_fun) -> tuple[str | Callable, str]:
    """Map pykan's base_fun values to (function or name, name): 'silu', 'identity', 'zero',
    an ``nn.SiLU`` instance, or any callable (kept as is, evaluated with autograd)."""
    if isinstance(base_fun, str):
        if base_fun not in BASE_FUNS:
            raise ValueError(f"unknown base_fun {base_fun!r}; use one of {sorted(BASE_FUNS)} or a callable")
        return base_fun, base_fun
    if isinstance(base_fun, nn.SiLU) or base_fun is torch.nn.functional.silu:
        return "silu", "silu"
    if callable(base_fun):
        return base_fun, getattr(base_fun, "__name__", type(base_fun).__name__)
    raise TypeError(f"base_fun must be a name or a callable, got {type(base_fun).__name__}")


def autocast_input(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Under torch.autocast, a lower-precision input (e.g. bf16 from a previous autocast layer) is
    brought to the parameters' dtype: the basis and its folded weights are evaluated in fp32."""
    if (isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != ref.dtype
            and torch.is_autocast_enabled(x.device.type)):
        return x.to(ref.dtype)
    return x


def check_input(x: torch.Tensor, in_dim: int, ref: torch.Tensor, what: str = "input") -> None:
    """Raise a clear error unless x is a float (B, in_dim) tensor on ref's device and dtype."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{what} must be 2-D (batch, {in_dim}), got shape {tuple(x.shape)}")
    if x.shape[1] != in_dim:
        raise ValueError(f"{what} has {x.shape[1]} features but the layer expects {in_dim}: shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{what} must be a floating-point tensor, got {x.dtype}; convert with x.float()")
    if x.device != ref.device:
        raise ValueError(f"{what} is on {x.device} but the model is on {ref.device}; move one with .to()")
    if x.dtype != ref.dtype:
        raise TypeError(f"{what} dtype {x.dtype} does not match the model's {ref.dtype}; "
                        f"use x.to({ref.dtype}) or model.to({x.dtype})")


def nan_rows(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """y (B, out) with NaN in each row whose input row of x (B, in) holds a NaN or inf.

    Left to torch, +inf through silu stays inf and -inf becomes NaN, and a second layer mixes
    +-inf into NaN: one rule for every depth is simpler to state and to rely on."""
    bad = ~torch.isfinite(x).all(dim=1, keepdim=True)
    return y.masked_fill(bad, float("nan"))


def _use_reference(x: torch.Tensor, backend: str) -> bool:
    """CPU tensors on 'auto' stay on the reference path without importing triton (its import
    alone costs about a second); everything else goes to the kernel module's dispatcher."""
    return backend == "reference" or (backend == "auto" and x.device.type != "cuda")


def _sparse_mask(in_dim: int, out_dim: int) -> torch.Tensor:
    """pykan's sparse_init mask: each input links to its nearest output and vice versa."""
    pin = (torch.arange(in_dim) + 0.5) / in_dim
    pout = (torch.arange(out_dim) + 0.5) / out_dim
    dist = (pin[:, None] - pout[None, :]).abs()
    mask = torch.zeros(in_dim, out_dim)
    mask[torch.arange(in_dim), dist.argmin(1)] = 1.0
    mask[dist.argmin(0), torch.arange(out_dim)] = 1.0
    return mask


class KANLayer(nn.Module):
    """One KAN layer: in_dim inputs, out_dim outputs, one learnable activation per edge.

    phi_ij(x) = mask_ij (scale_base_ij base(x_i) + scale_sp_ij spline_ij(x_i)); y_j = sum_i phi_ij.
    ``forward`` returns pykan's tuple ``(y, preacts, postacts, postspline)``; ``output`` returns y.
    Initialisation draws from ``generator`` (default: torch's global RNG) in pykan's order, so a
    seeded model starts from pykan's parameters.
    """

    def __init__(
        self,
        in_dim: int = 3,
        out_dim: int = 2,
        num: int = 5,
        k: int = 3,
        noise_scale: float = 0.5,
        scale_base_mu: float = 0.0,
        scale_base_sigma: float = 1.0,
        scale_sp: float = 1.0,
        base_fun="silu",
        grid_eps: float = 0.02,
        grid_range: Sequence[float] = (-1, 1),
        sp_trainable: bool = True,
        sb_trainable: bool = True,
        save_plot_data: bool = True,
        device="cpu",
        sparse_init: bool = False,
        backend: str = "auto",
        generator: torch.Generator | None = None,
    ):
        """Build one layer with pykan's KANLayer arguments: ``num`` grid intervals of order ``k``
        on ``grid_range``, ``coef`` (in_dim, out_dim, num + k) fitted to uniform noise of amplitude
        ``noise_scale`` / num, ``scale_base`` (in_dim, out_dim) = (scale_base_mu + scale_base_sigma
        U(-1, 1)) / sqrt(in_dim), ``scale_sp`` / sqrt(in_dim), ``mask`` (in_dim, out_dim) of ones
        (random sparse with ``sparse_init``). ``backend`` 'auto' uses the fused Triton kernel on CUDA with triton, else
        the reference path. ``generator``: draw the initialisation from it instead of torch's global
        RNG (pykan has no such argument)."""
        super().__init__()
        for name, value, low in (("in_dim", in_dim, 1), ("out_dim", out_dim, 1), ("num (grid)", num, 1),
                                 ("k", k, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not (len(grid_range) == 2 and float(grid_range[0]) < float(grid_range[1])):
            raise ValueError(f"grid_range must be (low, high) with low < high, got {grid_range!r}")
        self.in_dim, self.out_dim, self.num, self.k = in_dim, out_dim, num, k
        self.base_fun, self.base_fun_name = resolve_base_fun(base_fun)
        self.grid_eps = grid_eps
        self.grid_range = [float(grid_range[0]), float(grid_range[1])]
        self.backend = backend

        grid = uniform_grid(in_dim, num, k, self.grid_range)
        noise = (torch.rand(num + 1, in_dim, out_dim, generator=generator) - 0.5) * noise_scale / num
        coef = curve_to_coef(grid[:, k:-k].t(), noise, grid, k)
        mask = _sparse_mask(in_dim, out_dim) if sparse_init else torch.ones(in_dim, out_dim)
        sb = (scale_base_mu / math.sqrt(in_dim)
              + scale_base_sigma * (torch.rand(in_dim, out_dim, generator=generator) * 2 - 1) / math.sqrt(in_dim))
        sp = torch.ones(in_dim, out_dim) * scale_sp / math.sqrt(in_dim) * mask
        # Registration order = pykan's: grid, coef, mask, scale_base, scale_sp.
        self.grid = nn.Parameter(grid, requires_grad=False)
        self.coef = nn.Parameter(coef)
        self.mask = nn.Parameter(mask, requires_grad=False)
        self.scale_base = nn.Parameter(sb, requires_grad=sb_trainable)
        self.scale_sp = nn.Parameter(sp, requires_grad=sp_trainable)
        self.to(device)

    def extra_repr(self) -> str:
        """The sizes shown by ``print(layer)``."""
        return (f"in_dim={self.in_dim}, out_dim={self.out_dim}, num={self.num}, k={self.k}, "
                f"base_fun={self.base_fun_name}")

    # -- the math ---------------------------------------------------------------------------
    def weight(self) -> torch.Tensor:
        """Folded weight (in, G+k+1, out): row 0 multiplies base(x_i), rows 1.. the basis."""
        return fold_weight(self.coef, self.scale_base, self.scale_sp, self.mask)

    def output(self, x: torch.Tensor, backend: str | None = None) -> torch.Tensor:
        """y (B, out) for x (B, in), without per-edge tensors."""
        x = autocast_input(x, self.coef)
        check_input(x, self.in_dim, self.coef)
        backend = backend or self.backend
        if _use_reference(x, backend):
            return self._reference(x, self.weight(), with_std=False)[0]
        return self._kernel(x, self.weight(), backend)

    def _kernel(self, x: torch.Tensor, weight: torch.Tensor, backend: str) -> torch.Tensor:
        from .kernels.bspline import kan_linear

        return kan_linear(x, self.grid, weight, self.k, self.base_fun, backend=backend)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """basis_features(x), reused while x and the grid are unchanged and x needs no gradient.

        A first layer sees the same batch in every closure call of an L-BFGS step (~21 calls on
        the reference fit), so its basis is computed once per step instead of each call.
        """
        if x.requires_grad:
            return basis_features(x, self.grid, self.k, self.base_fun)
        key = (x.data_ptr(), x._version, tuple(x.shape), x.stride(), self.grid.data_ptr(), self.grid._version)
        cache = self.__dict__.get("_feat_cache")
        if cache is not None and cache[0] is x and cache[1] == key:
            return cache[2]
        feats = basis_features(x, self.grid, self.k, self.base_fun)
        self._feat_cache = [x, key, feats, None]  # the last slot: their covariance, once asked for
        return feats

    def _reference(self, x: torch.Tensor, weight: torch.Tensor, with_std: bool):
        feats = self._features(x)
        y = feats.flatten(1) @ weight.reshape(-1, self.out_dim)
        if not with_std:
            return y, None
        cache = self.__dict__.get("_feat_cache")
        if cache is not None and cache[2] is feats:
            # A cached basis (fixed batch, no gradient) has a fixed covariance too: one per step.
            if cache[3] is None:
                cache[3] = feature_moments(feats)[1]
            cov = cache[3]
        else:
            cov = feature_moments(feats)[1]
        return y, edge_std(cov, weight)

    def output_and_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y (B, out) and the per-edge std of phi over the batch (in, out), from one basis
        evaluation on the reference path. Both differentiable."""
        x = autocast_input(x, self.coef)
        check_input(x, self.in_dim, self.coef)
        weight = self.weight()
        if _use_reference(x, self.backend):
            return self._reference(x, weight, with_std=True)
        return self._kernel(x, weight, self.backend), self.edge_std(x, weight)

    def edge_std(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Sample std over the batch of each edge's phi: (in, out), differentiable, no (B, in, out).
        ``weight``: the folded weight when the caller already has it."""
        # The moments kernel has no backward: when x carries a graph (reg inside fit), the
        # reference moments keep the gradient through earlier layers, as pykan's std does.
        if _use_reference(x, self.backend) or (torch.is_grad_enabled() and x.requires_grad):
            _, cov = basis_moments(x, self.grid, self.k, self.base_fun)
        else:
            from .kernels.bspline import basis_moments as moments

            _, cov = moments(x, self.grid, self.k, self.base_fun, backend=self.backend)
        return edge_std(cov, self.weight() if weight is None else weight)

    def edge_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-edge outputs phi (B, in, out) and raw splines (B, in, out). Builds them: use sparingly."""
        spline = coef_to_curve(x, self.grid, self.coef, self.k)
        fun = BASE_FUNS[self.base_fun][0] if isinstance(self.base_fun, str) else self.base_fun
        phi = self.mask * (self.scale_base * fun(x).unsqueeze(-1) + self.scale_sp * spline)
        return phi, spline

    def forward(self, x: torch.Tensor):
        """pykan's forward: x (B, in) -> (y (B, out), preacts, postacts, postspline), the last three
        (B, out, in). Use ``output`` when only y is needed."""
        x = autocast_input(x, self.coef)
        check_input(x, self.in_dim, self.coef)
        phi, spline = self.edge_outputs(x)
        y = phi.sum(1)
        preacts = x[:, None, :].expand(x.shape[0], self.out_dim, self.in_dim)
        return y, preacts, phi.permute(0, 2, 1), spline.permute(0, 2, 1)

    # -- grids ------------------------------------------------------------------------------
    @torch.no_grad()
    def update_grid_from_samples(self, x: torch.Tensor, mode: str = "sample") -> None:
        """Move the grid to the samples' quantiles (mixed with a uniform grid by grid_eps) and refit
        coef so the spline part is unchanged at the samples, as pykan does."""
        if mode != "sample":
            raise ValueError(f"update_grid_from_samples: only mode='sample' is supported, got {mode!r}")
        check_input(x, self.in_dim, self.coef)
        if x.shape[0] < 2:
            raise ValueError(f"update_grid needs at least 2 samples, got {x.shape[0]}")
        if not torch.isfinite(x).all():
            raise ValueError("update_grid: samples contain NaN or inf")
        xs = torch.sort(x, dim=0).values
        y_old = coef_to_curve(xs, self.grid, self.coef, self.k)
        new_grid = grid_from_samples(xs, self.num, self.k, self.grid_eps)
        self._feat_cache = None
        self.grid.data.copy_(new_grid)
        self.coef.data.copy_(curve_to_coef(xs, y_old, self.grid, self.k))

    # -- structure --------------------------------------------------------------------------
    def _clone_with(self, in_id, out_id) -> KANLayer:
        """A new layer of the same class and settings keeping rows in_id and columns out_id."""
        new = self.__class__.__new__(self.__class__)
        nn.Module.__init__(new)
        new.__dict__.update({key: val for key, val in self.__dict__.items() if not key.startswith("_")})
        new._feat_cache = None
        in_id = torch.as_tensor(in_id, dtype=torch.long, device=self.coef.device)
        out_id = torch.as_tensor(out_id, dtype=torch.long, device=self.coef.device)
        new.in_dim, new.out_dim = len(in_id), len(out_id)
        for name in ("grid", "coef", "mask", "scale_base", "scale_sp"):
            p = getattr(self, name)
            val = p.data[in_id]
            if name != "grid":
                val = val[:, out_id]
            setattr(new, name, nn.Parameter(val.clone(), requires_grad=p.requires_grad))
        return new

    def get_subset(self, in_id, out_id) -> KANLayer:
        """pykan's get_subset: a smaller layer with inputs in_id and outputs out_id (settings kept)."""
        return self._clone_with(list(in_id), list(out_id))

    @torch.no_grad()
    def permute(self, perm: torch.Tensor, mode: str) -> None:
        """Reorder inputs ('in') or outputs ('out') in place: new index p holds old perm[p]."""
        perm = torch.as_tensor(perm, dtype=torch.long, device=self.coef.device)
        self._feat_cache = None
        if mode == "in":
            for name in ("grid", "coef", "mask", "scale_base", "scale_sp"):
                getattr(self, name).data = getattr(self, name).data[perm].contiguous()
        elif mode == "out":
            self.coef.data = self.coef.data[:, perm].contiguous()
            for name in ("mask", "scale_base", "scale_sp"):
                getattr(self, name).data = getattr(self, name).data[:, perm].contiguous()
        else:
            raise ValueError(f"mode must be 'in' or 'out', got {mode!r}")

    def swap(self, i1: int, i2: int, mode: str = "in") -> None:
        """pykan's swap of two inputs ('in') or outputs ('out')."""
        n = self.in_dim if mode == "in" else self.out_dim
        perm = list(range(n))
        perm[i1], perm[i2] = perm[i2], perm[i1]
        self.permute(perm, mode)


class KANLinear(KANLayer):
    """A drop-in replacement for ``nn.Linear``: (*, in_features) -> (*, out_features).

    Same math and parameters as KANLayer (grid, coef, mask, scale_base, scale_sp), plus ``bias``
    (out_features,) added to the output, as nn.Linear's. ``bias=True`` by default, as nn.Linear
    (and as a KAN, whose every node has a bias, pykan's ``node_bias``); it starts at zero so the
    layer's initial function is pykan's KANLayer's. A row of input holding NaN or inf gives NaN in
    every output of that row, as in ``KAN``. On CUDA with triton installed the fused kernel runs;
    elsewhere the reference path.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, grid: int = 5, k: int = 3,
                 noise_scale: float = 0.3, grid_range: Sequence[float] = (-1, 1), base_fun="silu",
                 backend: str = "auto", device=None, dtype=None, **kwargs):
        """Build a layer taking (*, in_features) to (*, out_features): ``grid`` intervals of order
        ``k`` on ``grid_range``, ``bias`` (zeros) as nn.Linear's, ``base_fun``, ``backend`` ('auto',
        'reference', 'triton'), ``device`` and ``dtype`` as nn.Linear's; other KANLayer arguments by
        keyword. Bad arguments raise at construction, naming KANLinear."""
        for name, value in (("in_features", in_features), ("out_features", out_features), ("grid", grid),
                            ("k", k)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"KANLinear: {name} must be an integer >= 1, got {value!r}")
        if not isinstance(bias, bool):
            raise TypeError(f"KANLinear: bias must be True or False, got {bias!r}")
        if backend not in LAYER_BACKENDS:
            raise ValueError(f"KANLinear: backend must be one of {LAYER_BACKENDS}, got {backend!r}")
        unknown = sorted(set(kwargs) - _KANLINEAR_EXTRA_ARGS)
        if unknown:
            raise TypeError(f"KANLinear got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
                            f"it also accepts {sorted(_KANLINEAR_EXTRA_ARGS)}")
        super().__init__(in_features, out_features, num=grid, k=k, noise_scale=noise_scale,
                         grid_range=grid_range, base_fun=base_fun, backend=backend,
                         device=resolve_device("cpu" if device is None else device), **kwargs)
        self.bias = nn.Parameter(torch.zeros(out_features, device=self.coef.device)) if bias else None
        if dtype is not None:
            self.to(dtype)

    @property
    def in_features(self) -> int:
        """Input features (nn.Linear's name): the last dimension of the input."""
        return self.in_dim

    @property
    def out_features(self) -> int:
        """Output features (nn.Linear's name): the last dimension of the output."""
        return self.out_dim

    def extra_repr(self) -> str:
        """The sizes shown by ``print(layer)``."""
        return (f"in_features={self.in_dim}, out_features={self.out_dim}, bias={self.bias is not None}, "
                f"grid={self.num}, k={self.k}, base_fun={self.base_fun_name}")

    def _clone_with(self, in_id, out_id) -> KANLinear:
        new = super()._clone_with(in_id, out_id)
        if self.bias is not None:
            out_id = torch.as_tensor(out_id, dtype=torch.long, device=self.bias.device)
            new.bias = nn.Parameter(self.bias.data[out_id].clone(), requires_grad=self.bias.requires_grad)
        else:
            new.bias = None
        return new

    @torch.no_grad()
    def permute(self, perm: torch.Tensor, mode: str) -> None:
        """KANLayer's ``permute``; reordering the outputs ('out') also reorders ``bias``."""
        super().permute(perm, mode)
        if mode == "out" and self.bias is not None:
            self.bias.data = self.bias.data[torch.as_tensor(perm, dtype=torch.long, device=self.bias.device)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (*, in_features), a floating tensor -> (*, out_features); leading dimensions are kept."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"KANLinear input must be a torch.Tensor, got {type(x).__name__}; "
                            "convert with torch.as_tensor(x, dtype=torch.float32)")
        if x.dim() == 0:
            raise ValueError("KANLinear input must have at least 1 dimension (*, in_features)")
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        y = nan_rows(flat, self.output(flat))
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)  # under autocast y is bf16, as nn.Linear's output: keep it so
        return y.reshape(*lead, self.out_dim)


# Keyword arguments KANLinear passes on to KANLayer (the rest are its own or nn.Linear's).
_KANLINEAR_EXTRA_ARGS = frozenset(inspect.signature(KANLayer.__init__).parameters) - {
    "self", "in_dim", "out_dim", "num", "k", "noise_scale", "grid_range", "base_fun", "backend", "device"}
