"""KAN's training objective with a hand-written backward: one closure call in few tensor ops.

``kan_objective(model, ...)`` returns ``f(x, y)`` that computes, for the model as it is now,

    objective = mean((model(x) - y) ** 2) + lamb * reg

with ``reg`` exactly what ``KAN.fit`` regularises (``KAN.reg`` on the records of a forward with
``save_act``, after ``attribute``/``node_attribute`` for the backward metrics), and writes
d objective / d p into ``p.grad`` (in place) for every trainable parameter. Autograd is the oracle:
values and gradients agree with it to float rounding (tests: 1e-10 relative in float64, measured 5e-13).

Why by hand: on the reference fit (KAN [9,10,10,1], 409 samples) autograd's closure is ~2000 ops
(~400 recorded forward, the rest its backward), each tiny; here it is ~320 (~200 that compute,
the rest views). Per layer: the folded weight once; features (B, in, K+1) and their derivative in
one dense Cox-de Boor pass; one GEMM forward and two backward. The edge stds come from the
features' covariance (float64, as ``edge_std``), and the l1 + entropy penalties of all layers are
evaluated as one block-diagonal matrix. The first layer's features, covariance and input std
depend only on x and its grid, so they are computed once per x (fit passes one x object to the
~21 closure calls of an L-BFGS step).

Covered: every reg_metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff; masks; uniform and
updated grids (repeated knots included); mult nodes of any arity; node/subnode affine parameters,
trainable or not; sp/sb trainable flags; base_fun 'silu', 'identity', 'zero' (or ``nn.SiLU``); any
float dtype and device (plain torch). ``kan_objective`` returns None, and fit keeps autograd, for:
a ``loss_fn``; a callable ``base_fun`` other than SiLU; fixed symbolic functions (a non-zero
``symbolic_fun[l].mask``); any trainable tensor other than coef, scale_base, scale_sp and the
node/subnode affine parameters (e.g. a grid or mask set to ``requires_grad``); an unknown reg_metric.

``f`` reads the parameters and grids at each call, but takes the model's structure, its masks and
its frozen affine parameters as they were when it was built (fit changes none of them).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .attribution import backpropagate, node_to_subnode
from .regularization import matrix_reg

__all__ = ["kan_objective"]

_FORWARD_METRICS = ("edge_forward_spline_n", "edge_forward_sum", "edge_forward_spline_u")
_METRICS = _FORWARD_METRICS + ("edge_backward", "node_backward")
_BASE_FUNS = ("silu", "identity", "zero")  # the names whose value and derivative _Basis writes out


def kan_objective(model, *, lamb: float, reg_metric: str, lamb_l1: float, lamb_entropy: float,
                  lamb_coef: float, lamb_coefdiff: float, loss_fn=None, objective_type: type | None = None
                  ) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]] | None:
    """The closure body for ``KAN.fit``: ``f(x (B, n_in), y (B, n_out)) -> (objective, train_loss,
    reg)``, detached 0-d tensors, with d objective / d p written into every trainable ``p.grad``.

    Returns None when the case is not covered (see the module docstring); the caller then uses
    autograd. reg is 0 (and not computed) when lamb == 0 or the model's ``save_act`` is off, as fit
    computes it only then. objective_type: the class built, ``_Objective`` (this module's PyTorch
    path) or a subclass (``kan_objective_fused.FusedObjective``: the compiled CPU loops, which
    dispatches between the two).
    """
    if loss_fn is not None or reg_metric not in _METRICS or model.base_fun not in _BASE_FUNS:
        return None
    if any(bool((sym.mask != 0).any()) for sym in model.symbolic_fun):
        return None
    covered = set()
    for layer in model.act_fun:
        if layer.base_fun not in _BASE_FUNS or layer.grid.requires_grad or layer.mask.requires_grad:
            return None
        covered.update((id(layer.coef), id(layer.scale_base), id(layer.scale_sp)))
    for l in range(model.depth):
        covered.update(id(model._affine(name, l)) for name in _AFFINE)
    if any(p.requires_grad and id(p) not in covered for p in model.parameters()):
        return None
    return (objective_type or _Objective)(model, float(lamb), reg_metric, float(lamb_l1), float(lamb_entropy),
                                          float(lamb_coef), float(lamb_coefdiff))


_AFFINE = ("subnode_scale", "subnode_bias", "node_scale", "node_bias")


def _grad(p: Tensor) -> Tensor:
    """p.grad, allocated if the caller has not (fit preallocates it, possibly as a view into one
    flat buffer: it is only ever written in place)."""
    if p.grad is None:
        p.grad = torch.zeros_like(p)
    return p.grad


def _write_grad(p: Tensor, g: Tensor) -> None:
    _grad(p).copy_(g)


def _affine_backward(scale: Tensor, bias: Tensor, value: Tensor, grad: Tensor) -> Tensor:
    """For out = scale * value + bias (value, grad: (B, n); scale, bias: (n,)): write the trainable
    ones' gradients and return d objective / d value."""
    if scale.requires_grad:
        _write_grad(scale, (grad * value).sum(0))
    if bias.requires_grad:
        _write_grad(bias, grad.sum(0))
    return grad * scale


class _Basis:
    """The dense basis of one layer by Cox-de Boor on (B, n, P) tensors, with its derivative.

    Every order is 3 ops on whole rows (no per-point interval search or table lookup): features and
    derivative in ~40 ops (half of them views) against ~70 for ``spline.bspline_local`` plus the
    scatter into dense columns, and faster at every size measured (features + derivative after a
    grid update, one thread, medians on the shared machine): (409, 10) G=3 1.0 ms vs 2.1 ms,
    (2048, 64) G=3 153 vs 219 ms, (1024, 256) G=5 291 vs 380 ms; so there is no second path. It is
    also 1.3-2.2x faster than ``spline.bspline_dense`` (the traced route's recursion) plus the base
    function at those sizes (``python bench/basis_paths.py``): the reciprocal knot spans of each
    order are computed once per grid value (zero spans give 0: the repeated-knot rule of ``spline``)
    and the order-0 indicator is one comparison per knot.
    """

    def __init__(self, layer):
        self.layer = layer
        self.k = layer.k
        self.base_name = layer.base_fun
        self.grid = None
        self.inv_spans: list[Tensor] = []

    def _tables(self) -> Tensor:
        grid = self.layer.grid
        if self.grid is None or self.grid.shape != grid.shape or not torch.equal(self.grid, grid):
            self.grid = grid.detach().clone()
            spans = [self.grid[:, j:] - self.grid[:, :-j] for j in range(1, self.k + 1)]
            self.inv_spans = [torch.where(s > 0, 1.0 / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))
                              for s in spans]
        return self.grid

    def __call__(self, x: Tensor, derivative: bool) -> tuple[Tensor, Tensor | None]:
        """x (B, n) -> features (B, n, K+1) = [base(x_i), B_1(x_i) .. B_K(x_i)] and, if asked,
        their derivative in x_i (B, n, K+1)."""
        grid = self._tables()
        k = self.k
        xg = x.unsqueeze(-1) - grid  # (B, n, P): x - g_i
        # Order 0: [x >= g_i] - [x >= g_{i+1}] = [g_i <= x < g_{i+1}] on a sorted grid (half-open, so
        # nothing at or beyond the last knot, NaN nowhere). A float difference: 145 us against 175 us
        # for a comparison of the boolean slices at (409, 10, 10).
        at_or_right = (xg >= 0).to(x.dtype)
        values = at_or_right[..., :-1] - at_or_right[..., 1:]
        w = values
        for j in range(1, k + 1):
            # B_{i,j} = (x - g_i) w_i - (x - g_{i+j+1}) w_{i+1}, w_i = B_{i,j-1} / (g_{i+j} - g_i)
            w = values * self.inv_spans[j - 1]
            values = torch.addcmul(xg[..., :-j - 1] * w[..., :-1], xg[..., j + 1:], w[..., 1:], value=-1.0)
        base = x if self.base_name == "identity" else None
        if self.base_name == "silu":
            sig = torch.sigmoid(x)
            base = x * sig
        first = base.unsqueeze(-1) if base is not None else x.new_zeros(*x.shape, 1)
        feats = torch.cat([first, values], dim=-1)
        if not derivative:
            return feats, None
        # d/dx B_{i,k} = k (w_i - w_{i+1}) with w of the last order.
        dvalues = (w[..., :-1] - w[..., 1:]) * float(k)
        if self.base_name == "silu":
            dbase = torch.addcmul(sig, base, 1.0 - sig).unsqueeze(-1)  # silu' = s + silu (1 - s)
        else:
            dbase = x.new_full((*x.shape, 1), 1.0 if self.base_name == "identity" else 0.0)
        return feats, torch.cat([dbase, dvalues], dim=-1)


class _Layer:
    """Static facts of one layer for one fit: sizes, mult groups, which affine stages are active.

    Decided once per fit (fit changes none of them): masks that are all ones and affine stages that
    are the identity and not trained are skipped (2 ops per layer each way for the mask, 2 forward
    and up to 6 backward for an affine stage).
    """

    def __init__(self, model, l: int):
        layer = model.act_fun[l]
        self.layer = layer
        self.n, self.m = layer.in_dim, layer.out_dim
        self.basis = _Basis(layer)
        self.mask = None if bool((layer.mask == 1).all()) else layer.mask
        self.n_sum = model.width[l + 1][0]
        groups = model.subnode_groups(l + 1)[self.n_sum:]
        self.arities = [len(g) for g in groups]
        self.params = {name: model._affine(name, l) for name in _AFFINE}
        self.sub_affine = any(self._active(name) for name in ("subnode_scale", "subnode_bias"))
        self.node_affine = any(self._active(name) for name in ("node_scale", "node_bias"))

    def _active(self, name: str) -> bool:
        p = self.params[name]
        identity = 1.0 if name.endswith("scale") else 0.0
        return p.requires_grad or not bool((p == identity).all())

    def weight(self) -> tuple[Tensor, Tensor]:
        """Folded weight (n, K+1, m) (see ``functional.fold_weight``) and mask * scale_sp (n, m)."""
        layer = self.layer
        w_base, w_sp = layer.scale_base, layer.scale_sp
        if self.mask is not None:
            w_base, w_sp = self.mask * w_base, self.mask * w_sp
        return torch.cat([w_base.unsqueeze(1), w_sp.unsqueeze(1) * layer.coef.transpose(1, 2)], dim=1), w_sp

    def to_nodes(self, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Layer outputs y (B, m) -> subnode values z (B, m), mult-stage values u and node values
        (B, n_nodes)."""
        p = self.params
        z = torch.addcmul(p["subnode_bias"], y, p["subnode_scale"]) if self.sub_affine else y
        u = self._mult(z)
        h = torch.addcmul(p["node_bias"], u, p["node_scale"]) if self.node_affine else u
        return z, u, h

    def _mult(self, z: Tensor) -> Tensor:
        if not self.arities:
            return z
        parts, start = [z[:, :self.n_sum]], self.n_sum
        for a in self.arities:
            parts.append(z[:, start:start + a].prod(dim=1, keepdim=True))
            start += a
        return torch.cat(parts, dim=1)

    def mult_backward(self, z: Tensor, gu: Tensor) -> Tensor:
        """d/dz of the mult stage: gu (B, n_nodes) -> gz (B, m)."""
        if not self.arities:
            return gu
        parts, start = [gu[:, :self.n_sum]], self.n_sum
        for g, a in enumerate(self.arities):
            block = z[:, start:start + a]
            others = [torch.cat([block[:, :s], block[:, s + 1:]], dim=1).prod(dim=1, keepdim=True) for s in range(a)]
            parts.append(gu[:, self.n_sum + g:self.n_sum + g + 1] * torch.cat(others, dim=1))
            start += a
        return torch.cat(parts, dim=1)

    def node_to_subnode(self, score: Tensor) -> Tensor:
        """Node scores (q, n_nodes) -> subnode scores (q, m): a mult node passes its score on."""
        return node_to_subnode(score, self.n_sum, self.arities)

    def weight_backward(self, dW: Tensor, w_sp: Tensor, dcoef_reg: Tensor | None) -> None:
        """dW (n, K+1, m) of the folded weight -> gradients of coef, scale_base, scale_sp, written
        straight into their .grad (out=: no temporary and no copy)."""
        layer = self.layer
        if layer.scale_base.requires_grad:
            if self.mask is None:
                _grad(layer.scale_base).copy_(dW[:, 0, :])
            else:
                torch.mul(dW[:, 0, :], self.mask, out=_grad(layer.scale_base))
        d_sp = dW[:, 1:, :].transpose(1, 2)  # (n, m, K)
        if layer.coef.requires_grad:
            if dcoef_reg is None:
                torch.mul(d_sp, w_sp.unsqueeze(-1), out=_grad(layer.coef))
            else:
                torch.addcmul(dcoef_reg, d_sp, w_sp.unsqueeze(-1), out=_grad(layer.coef))
        if layer.scale_sp.requires_grad:
            if self.mask is None:
                torch.sum(d_sp * layer.coef, -1, out=_grad(layer.scale_sp))
            else:
                torch.mul((d_sp * layer.coef).sum(-1), self.mask, out=_grad(layer.scale_sp))


def _moments(feats: Tensor) -> tuple[Tensor, Tensor]:
    """Centred float64 features Xc (n, B, K+1) and their sample covariance (n, K+1, K+1), as
    ``functional.feature_moments`` (float64: the edge variances it feeds can cancel)."""
    f64 = feats.double()
    xc = (f64 - f64.mean(0)).transpose(0, 1)
    return xc, torch.bmm(xc.transpose(1, 2), xc).div_(max(feats.shape[0] - 1, 1))


def _input_std(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-column sample variance (n,) and std floored as ``records.sample_std`` (variance >= 1e-24)."""
    var = x.var(0)
    return var, var.clamp_min(1e-24).sqrt()


class _Objective:
    def __init__(self, model, lamb: float, reg_metric: str, lamb_l1: float, lamb_entropy: float,
                 lamb_coef: float, lamb_coefdiff: float):
        self.model = model
        self.lamb, self.reg_metric = lamb, reg_metric
        self.lamb_l1, self.lamb_entropy = lamb_l1, lamb_entropy
        self.lamb_coef, self.lamb_coefdiff = lamb_coef, lamb_coefdiff
        self.layers = [_Layer(model, l) for l in range(model.depth)]
        self._first = None  # [x, x._version, grid copy, x0, feats, (xc, cov), (var, std)] for the last x
        self._weights = None  # (2, R, C) row and column weights of the block-diagonal entropy
        # The edge stds of all layers are computed as one batch over all N = sum n_l inputs, each
        # layer's weight (n, K+1, m) and covariance zero-padded to (K_max+1, m_max): 3 x 6 ops -> 6
        # forward and 3 x 9 -> ~12 backward on the reference model.
        self.sizes = [(lay.n, lay.layer.coef.shape[-1] + 1, lay.m) for lay in self.layers]
        self.k_max = max(k1 for _, k1, _ in self.sizes)
        self.m_max = max(m for _, _, m in self.sizes)
        self.offsets = [sum(n for n, _, _ in self.sizes[:l]) for l in range(len(self.sizes))]
        # Flat positions of edge (l, j <- i) in the batched stds (N, m_max) and in the block-diagonal
        # (sum m_l, N) matrix of the entropy penalty.
        src, dst = [], []
        n_cols, row = self.offsets[-1] + self.sizes[-1][0], 0
        for (n, _, m), col in zip(self.sizes, self.offsets, strict=True):
            i, j = torch.meshgrid(torch.arange(n), torch.arange(m), indexing="ij")
            src.append(((col + i) * self.m_max + j).flatten())
            dst.append(((row + j) * n_cols + col + i).flatten())
            row += m
        self.block_shape = (row, n_cols)
        device = self.layers[0].layer.coef.device
        self.src, self.dst = torch.cat(src).to(device), torch.cat(dst).to(device)

    # -- the first layer's x-only work ---------------------------------------------------------
    def _first_layer(self, x: Tensor, with_moments: bool):
        grid = self.layers[0].layer.grid
        cache = self._first
        if cache is None or cache[0] is not x or cache[1] != x._version or not torch.equal(cache[2], grid):
            x0 = self.model._select_inputs(x)
            feats, _ = self.layers[0].basis(x0, derivative=False)
            cache = self._first = [x, x._version, grid.detach().clone(), x0, feats, None, None]
        if with_moments and cache[5] is None:
            xc, cov = _moments(cache[4])
            cache[5] = (xc, self._pad_square(cov))
            cache[6] = _input_std(cache[3])
        return cache

    # -- the objective ---------------------------------------------------------------------------
    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        with torch.no_grad():
            return self._run(x, y)

    def _run(self, x: Tensor, y: Tensor):
        with_reg = self.lamb != 0.0 and self.model.save_act
        first = self._first_layer(x, with_reg)
        B = x.shape[0]
        h = first[3]
        recs = []
        for l, lay in enumerate(self.layers):
            W, w_sp = lay.weight()
            feats, deriv = (first[4], None) if l == 0 else lay.basis(h, derivative=True)
            yl = feats.view(B, -1) @ W.view(-1, lay.m)
            z, u, h_next = lay.to_nodes(yl)
            recs.append(dict(x=h, feats=feats, deriv=deriv, W=W, w_sp=w_sp, y=yl, z=z, u=u))
            h = h_next
        return self._loss_and_backward(h, y, recs, first, with_reg, self._regularise, self._layer_backward)

    def _loss_and_backward(self, h: Tensor, y: Tensor, recs: list[dict], first, with_reg: bool,
                           regularise: Callable, layer_backward: Callable) -> tuple[Tensor, Tensor, Tensor]:
        """From the last layer's output h (B, out): the MSE against y, the regularisation (before the
        backward, which reads what ``regularise`` stores on the records) and the backward through every
        layer, output first. Returns (objective, train_loss, reg)."""
        diff = h - y
        train_loss = (diff * diff).mean()
        grad_h = diff * (2.0 / diff.numel())
        if with_reg:
            reg = regularise(recs, first)
        else:
            reg = torch.zeros((), dtype=train_loss.dtype, device=train_loss.device)
        objective = train_loss + self.lamb * reg
        for l in range(len(self.layers) - 1, -1, -1):
            grad_h = layer_backward(l, recs[l], grad_h)
        return objective, train_loss, reg

    # -- regularisation ------------------------------------------------------------------------
    def _pad_square(self, cov: Tensor) -> Tensor:
        pad = self.k_max - cov.shape[-1]
        return torch.nn.functional.pad(cov, (0, pad, 0, pad)) if pad else cov

    def _regularise(self, recs: list[dict], first) -> Tensor:
        """reg's value; stores on each record dW_reg (n, K+1, m), dA_reg (B, n, K+1) and dx_reg (B, n),
        the gradients of lamb * reg through the edge stds, and the coef penalties' dcoef_reg."""
        lamb = self.lamb
        B = first[3].shape[0]
        dtype = recs[0]["W"].dtype
        weights, covs, variances, stds = [], [], [], []
        for l, rec in enumerate(recs):
            if l == 0:
                (xc, cov), (var, std) = first[5], first[6]
            else:
                xc, cov = _moments(rec["feats"])
                cov = self._pad_square(cov)
                var, std = _input_std(rec["x"])
            rec["xc"] = xc
            W = rec["W"]
            pad_k, pad_m = self.k_max - W.shape[1], self.m_max - W.shape[2]
            weights.append(torch.nn.functional.pad(W, (0, pad_m, 0, pad_k)) if pad_k or pad_m else W)
            covs.append(cov)
            variances.append(var)
            stds.append(std)
        w64 = torch.cat(weights).double()  # (N, K_max+1, m_max)
        cw = torch.bmm(torch.cat(covs), w64)
        q = (w64 * cw).sum(1)  # (N, m_max): w^T C w per edge, 0 on padding
        e64 = q.clamp_min(1e-36).sqrt()
        edges = e64.to(dtype)
        std = torch.cat(stds)
        if self.reg_metric in _FORWARD_METRICS:
            reg, d_edges, d_std = self._forward_metric_reg(edges, std)
        else:
            reg, d_edges, d_std = self._backward_metric_reg(edges, recs)
        # e = sqrt(q): de/dq = 1 / (2e), none below the 1e-36 clamp; dW = 2 C w dq; dC = sum_j dq_j w_j w_j^T;
        # dXc = 2 Xc dC / (B - 1). dq2 = 2 dq.
        dq2 = d_edges.double() * ((lamb / e64) * (q >= 1e-36))
        dw_reg = (cw * dq2.unsqueeze(1)).to(dtype)
        n0 = self.sizes[0][0]
        w_hidden = w64[n0:]
        dcov = torch.bmm(w_hidden * (dq2[n0:] * (1.0 / max(B - 1, 1))).unsqueeze(1), w_hidden.transpose(1, 2))
        if d_std is not None:
            # norm = sqrt(max(var, 1e-24)) + 0.1, var = sum (x - mean)^2 / (B - 1)
            dvar2 = d_std * (((lamb / max(B - 1, 1)) / std) * (torch.cat(variances) >= 1e-24))
        for l, rec in enumerate(recs):
            (n, k1, m), off = self.sizes[l], self.offsets[l]
            rec["dW_reg"] = dw_reg[off:off + n, :k1, :m]
            if l == 0:
                continue
            rec["dA_reg"] = torch.bmm(rec["xc"], dcov[off - n0:off - n0 + n, :k1, :k1]).transpose(0, 1).to(dtype)
            if d_std is not None:
                x_l = rec["x"]
                rec["dx_reg"] = (x_l - x_l.mean(0)) * dvar2[off:off + n]
        if self.lamb_coef or self.lamb_coefdiff:
            reg = reg + self._coef_reg(recs)
        return reg

    def _forward_metric_reg(self, edges: Tensor, std: Tensor):
        """pykan's l1 + row/column entropy penalty summed over layers, with its gradient, on one
        block-diagonal matrix of every layer's (m, n) matrix (zeros elsewhere add nothing: their
        p log p is 0): ~30 ops for the whole model instead of ~30 per layer.

        edges (N, m_max), std (N,): every input's std. Returns reg, d reg / d edges (N, m_max) and
        d reg / d std (N,) (None for 'edge_forward_spline_u', which does not divide by it)."""
        R, C = self.block_shape
        v = edges.new_zeros(R * C).index_copy_(0, self.dst, edges.reshape(-1).index_select(0, self.src)).view(R, C)
        if self._weights is None or self._weights.dtype != v.dtype or self._weights.device != v.device:
            rows = torch.cat([v.new_full((m, 1), 1.0 / m) for _, _, m in self.sizes])
            cols = torch.cat([v.new_full((1, n), 1.0 / n) for n, _, _ in self.sizes], dim=1)
            self._weights = torch.stack((rows.expand_as(v), cols.expand_as(v)))
        d_std = None
        if self.reg_metric != "edge_forward_spline_u":
            norm = std + 0.1
            v = v / norm
            value, dv = _l1_entropy(v, self._weights, self.lamb_l1, self.lamb_entropy)
            d_std = (dv * v).sum(0).div_(norm).neg_()
            dv = dv / norm
        else:
            value, dv = _l1_entropy(v, self._weights, self.lamb_l1, self.lamb_entropy)
        d_edges = edges.new_zeros(edges.numel()).index_copy_(0, self.src, dv.reshape(-1).index_select(0, self.dst))
        return value, d_edges.view(edges.shape), d_std

    def _backward_metric_reg(self, edges: Tensor, recs: list[dict]):
        """'edge_backward' / 'node_backward': attribution scores (``KAN.attribute``) of the edge stds
        (N, m_max), differentiated by autograd on the small (m, n) matrices only."""
        sub_std = [rec["y"].std(0) + 1e-4 for rec in recs]
        leaves = [edges[off:off + n, :m].t().requires_grad_() for (n, _, m), off in zip(self.sizes, self.offsets,
                                                                                          strict=True)]
        with torch.enable_grad():
            L = len(self.layers)
            n_top = self.model.width_in[L]
            top = leaves[-1].new_full((1, n_top), 1.0 / n_top)
            nodes, edge_scores = self._backpropagate(leaves, sub_std, top, L)
            if self.reg_metric == "edge_backward":
                mats = [e[0] for e in edge_scores]
            else:
                mats = [self._backpropagate(leaves, sub_std, torch.diag(nodes[l][0]), l)[0][0]
                        for l in range(1, L + 1)]
            total = 0.0
            for v in mats:
                total = total + matrix_reg(v, self.lamb_l1, self.lamb_entropy)
            grads = torch.autograd.grad(total, leaves)
        d_edges = torch.zeros_like(edges)
        for g, (n, _, m), off in zip(grads, self.sizes, self.offsets, strict=True):
            d_edges[off:off + n, :m] = g.t()
        return total.detach(), d_edges, None

    def _backpropagate(self, edges: list[Tensor], sub_std: list[Tensor], top: Tensor, l_top: int):
        """``attribution.backpropagate`` on given edge stds: node scores per node layer 0..l_top and
        edge scores (q, m, n) per layer below l_top."""
        nodes, _, edge_scores = backpropagate(edges, sub_std, top, l_top,
                                              lambda l, score: self.layers[l - 1].node_to_subnode(score))
        return nodes, edge_scores

    def _coef_reg(self, recs: list[dict]) -> Tensor:
        """lamb_coef * mean_j |coef| + lamb_coefdiff * mean_j |diff(coef)| summed over (i, m), per
        layer; stores lamb * its gradient as rec['dcoef_reg']."""
        total = 0.0
        for lay, rec in zip(self.layers, recs, strict=True):
            coef = lay.layer.coef
            diff = torch.diff(coef)
            total = total + self.lamb_coef * coef.abs().mean(1).sum()
            total = total + self.lamb_coefdiff * diff.abs().mean(1).sum()
            s = self.lamb / coef.shape[1]
            g = coef.sign() * (s * self.lamb_coef)
            gd = diff.sign() * (s * self.lamb_coefdiff)
            g[..., 1:] += gd
            g[..., :-1] -= gd
            rec["dcoef_reg"] = g
        return total

    # -- backward ------------------------------------------------------------------------------
    @staticmethod
    def _node_backward(lay: _Layer, rec: dict, grad_h: Tensor) -> Tensor:
        """Through the node affine, mult and subnode affine stages: d objective / d(node values)
        grad_h (B, n_nodes) -> d objective / d(layer output) (B, m); writes the affine gradients."""
        p = lay.params
        if lay.node_affine:
            grad_h = _affine_backward(p["node_scale"], p["node_bias"], rec["u"], grad_h)
        gz = lay.mult_backward(rec["z"], grad_h)
        if lay.sub_affine:
            gz = _affine_backward(p["subnode_scale"], p["subnode_bias"], rec["y"], gz)
        return gz

    def _layer_backward(self, l: int, rec: dict, grad_h: Tensor) -> Tensor | None:
        """Gradients of layer l's parameters from d objective / d(its node values) grad_h (B, n_nodes);
        returns d objective / d(its input) (B, n), None for the first layer."""
        lay = self.layers[l]
        gz = self._node_backward(lay, rec, grad_h)
        feats, W = rec["feats"], rec["W"]
        B = feats.shape[0]
        flat = feats.view(B, -1)
        if "dW_reg" in rec:
            dW = torch.addmm(rec["dW_reg"].reshape(-1, lay.m), flat.t(), gz).view(W.shape)
        else:
            dW = (flat.t() @ gz).view(W.shape)
        lay.weight_backward(dW, rec["w_sp"], rec.get("dcoef_reg"))
        if l == 0:
            return None
        if "dA_reg" in rec:
            dA = torch.addmm(rec["dA_reg"].reshape(B, -1), gz, W.view(-1, lay.m).t())
        else:
            dA = gz @ W.view(-1, lay.m).t()
        gx = (dA.view(feats.shape) * rec["deriv"]).sum(-1)
        if "dx_reg" in rec:
            gx = gx + rec["dx_reg"]
        return gx


def _l1_entropy(v: Tensor, weights: Tensor, lamb_l1: float, lamb_entropy: float) -> tuple[Tensor, Tensor]:
    """``regularization.matrix_reg`` summed over the blocks of a block-diagonal v (R, C), and its gradient (R, C).

    weights (2, R, C): [1 / rows of the block of each row ; 1 / columns of the block of each column]
    (the weights of the row and column means). Rows and columns are handled as one (2, R, C)
    stack: with p = v / (line sum + 1) and f(p) = p log2(p + 1e-4), the gradient of -sum f(p)
    over one line is -(f'(p) - sum_line f'(p) p) / (line sum + 1).
    """
    R, C = v.shape
    denom = torch.stack((v.sum(1, keepdim=True).expand(R, C), v.sum(0, keepdim=True).expand(R, C))) + 1.0
    p = v / denom
    shifted = p + 1e-4
    log_p = torch.log2(shifted)
    value = v.sum() * lamb_l1 - (p * log_p * weights).sum() * lamb_entropy
    fprime = torch.addcdiv(log_p, p, shifted, value=1.0 / math.log(2.0))
    fp = fprime * p
    line = torch.stack((fp[0].sum(1, keepdim=True).expand(R, C), fp[1].sum(0, keepdim=True).expand(R, C)))
    grad = ((fprime - line) * (weights / denom)).sum(0)
    return value, grad.mul_(-lamb_entropy).add_(lamb_l1)
