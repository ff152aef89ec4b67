"""KAN's training objective with a hand-written backward: one closure call in few tensor ops.

``kan_objective(model, ...)`` returns ``f(x, y)`` that computes, for the model as it is now,

    objective = mean((model(x) - y) ** 2) + lamb * reg

with ``reg`` exactly what ``KAN.fit`` regularises (``KAN.reg`` on the records of a forward with
``save_act``), and writes d objective / d p into ``p.grad`` (in place) for every trainable parameter.
Autograd is the oracle: values and gradients agree with it to float rounding (tests: 1e-10 relative
in float64).

Why by hand: on the reference fit (KAN [9,10,10,1], 409 samples) autograd's closure is ~600 small
ops; their dispatch and graph bookkeeping cost ~5 ms per call for microseconds of arithmetic. Here
each layer is: the folded weight once, the features (B, in, K+1) and their derivative in one basis
pass, one GEMM forward and two backward; the edge statistics come from the features' covariance
(float64, as ``edge_std``), and the entropy penalties of all layers are evaluated as one
block-diagonal matrix. The first layer's features, covariance and input std depend only on x and
the grid, so they are computed once per x (one L-BFGS step calls f ~21 times with the same x).

Covered: every reg_metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff; masks; any grid
(uniform or updated); mult nodes; node/subnode affine parameters (trainable or not); sp/sb
trainable flags; base_fun 'silu', 'identity', 'zero'; any float dtype and device. Not covered
(``kan_objective`` returns None and fit uses autograd): a ``loss_fn``, a callable ``base_fun``,
fixed symbolic functions, a trainable grid or mask (``requires_grad`` set by hand), and unknown
reg metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .functional import BASE_FUNS
from .spline import local_parts

__all__ = ["kan_objective"]

_FORWARD_METRICS = ("edge_forward_spline_n", "edge_forward_sum", "edge_forward_spline_u")
_METRICS = _FORWARD_METRICS + ("edge_backward", "node_backward")


def kan_objective(model, *, lamb: float, reg_metric: str, lamb_l1: float, lamb_entropy: float,
                  lamb_coef: float, lamb_coefdiff: float, loss_fn=None
                  ) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]] | None:
    """The closure body for ``KAN.fit``: ``f(x (B, n_in), y (B, n_out)) -> (objective, train_loss,
    reg)``, detached 0-d tensors, with d objective / d p written into every trainable ``p.grad``.

    Returns None when the case is not covered (see the module docstring); the caller then uses
    autograd. reg is 0 (and not computed) when lamb == 0 or the model's ``save_act`` is off, as fit
    computes it only then.
    """
    if loss_fn is not None or reg_metric not in _METRICS or not isinstance(model.base_fun, str):
        return None
    if any(bool((sym.mask != 0).any()) for sym in model.symbolic_fun):
        return None
    covered = set()
    for layer in model.act_fun:
        if not isinstance(layer.base_fun, str) or layer.grid.requires_grad or layer.mask.requires_grad:
            return None
        covered.update((id(layer.coef), id(layer.scale_base), id(layer.scale_sp)))
    for l in range(model.depth):
        covered.update(id(model._affine(name, l)) for name in _AFFINE)
    if any(p.requires_grad and id(p) not in covered for p in model.parameters()):
        return None
    return _Objective(model, float(lamb), reg_metric, float(lamb_l1), float(lamb_entropy), float(lamb_coef),
                      float(lamb_coefdiff))


_AFFINE = ("subnode_scale", "subnode_bias", "node_scale", "node_bias")


def _write_grad(p: Tensor, g: Tensor) -> None:
    if p.grad is None:
        p.grad = torch.zeros_like(p)
    p.grad.copy_(g)


class _Layer:
    """Static facts of one layer for one fit: sizes, mult groups, which affine stages are active."""

    def __init__(self, model, l: int):
        layer = model.act_fun[l]
        self.layer = layer
        self.n, self.m = layer.in_dim, layer.out_dim
        self.k = layer.k
        self.fun, self.dfun = BASE_FUNS[layer.base_fun]
        self.base_name = layer.base_fun
        self.n_sum = model.width[l + 1][0]
        groups = model.subnode_groups(l + 1)[self.n_sum:]
        self.arities = [len(g) for g in groups]
        self.params = {name: model._affine(name, l) for name in _AFFINE}
        # An affine stage that is the identity and not trained is skipped (2 ops per layer forward,
        # up to 6 backward); decided once per fit: untrained parameters cannot change during it.
        self.sub_affine = any(self._active(name) for name in ("subnode_scale", "subnode_bias"))
        self.node_affine = any(self._active(name) for name in ("node_scale", "node_bias"))

    def _active(self, name: str) -> bool:
        p = self.params[name]
        identity = 1.0 if name.endswith("scale") else 0.0
        return p.requires_grad or not bool((p == identity).all())

    def weight(self) -> Tensor:
        """Folded weight (n, K+1, m); see ``functional.fold_weight``."""
        layer = self.layer
        w_base = (layer.mask * layer.scale_base).unsqueeze(1)
        w_sp = (layer.mask * layer.scale_sp).unsqueeze(1) * layer.coef.detach().transpose(1, 2)
        return torch.cat([w_base.detach(), w_sp.detach()], dim=1)

    def features(self, x: Tensor, derivative: bool) -> tuple[Tensor, Tensor | None]:
        """A (B, n, K+1) = [base(x_i), B_1(x_i) .. B_K(x_i)] and, if asked, dA/dx_i (B, n, K+1)."""
        grid = self.layer.grid.detach()
        B, n = x.shape
        n_basis = grid.shape[1] - 1 - self.k
        values, first, dvalues = local_parts(x, grid, self.k, derivative=derivative)
        if isinstance(values, list):
            values = torch.stack(values, -1)
            dvalues = torch.stack(dvalues, -1) if derivative else None
        cols = (first.unsqueeze(-1) + torch.arange(self.k + 1, device=x.device)).clamp_(0, n_basis - 1).add_(1)
        feats = x.new_zeros(B, n, n_basis + 1)
        if self.base_name != "zero":
            feats[..., 0] = self.fun(x)
        feats.scatter_add_(2, cols, values)
        if not derivative:
            return feats, None
        deriv = x.new_zeros(B, n, n_basis + 1)
        if self.base_name == "silu":
            deriv[..., 0] = self.dfun(x)
        elif self.base_name == "identity":
            deriv[..., 0] = 1.0
        deriv.scatter_add_(2, cols, dvalues)
        return feats, deriv

    def to_nodes(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Layer outputs y (B, m) -> subnode values z (B, m), mult-stage values u and node values
        (B, n_nodes)."""
        p = self.params
        z = torch.addcmul(p["subnode_bias"].detach(), y, p["subnode_scale"].detach()) if self.sub_affine else y
        u = self._mult(z)
        h = torch.addcmul(p["node_bias"].detach(), u, p["node_scale"].detach()) if self.node_affine else u
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
        if not self.arities:
            return score
        parts = [score[:, :self.n_sum]]
        for g, a in enumerate(self.arities):
            parts.append(score[:, self.n_sum + g:self.n_sum + g + 1].expand(score.shape[0], a))
        return torch.cat(parts, dim=1)


def _moments(feats: Tensor) -> tuple[Tensor, Tensor]:
    """Centred float64 features Xc (n, B, K+1) and their sample covariance (n, K+1, K+1), as
    ``functional.feature_moments`` (float64: the edge variances it feeds can cancel)."""
    f64 = feats.double()
    xc = (f64 - f64.mean(0)).transpose(0, 1)
    return xc, xc.transpose(1, 2) @ xc / max(feats.shape[0] - 1, 1)


def _input_std(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-column sample variance (n,) and std floored as ``kan._std`` (variance >= 1e-24)."""
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
        self._first = None  # (x, x._version, grid copy, x0, feats, (xc, cov), (var, std)) for the last x

    # -- the first layer's x-only work ---------------------------------------------------------
    def _first_layer(self, x: Tensor, with_moments: bool):
        grid = self.layers[0].layer.grid
        cache = self._first
        if cache is None or cache[0] is not x or cache[1] != x._version or not torch.equal(cache[2], grid):
            x0 = self.model._select_inputs(x).detach()
            feats, _ = self.layers[0].features(x0, derivative=False)
            cache = self._first = [x, x._version, grid.detach().clone(), x0, feats, None, None]
        if with_moments and cache[5] is None:
            cache[5] = _moments(cache[4])
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
            W = lay.weight()
            if l == 0:
                feats, deriv = first[4], None
            else:
                feats, deriv = lay.features(h, derivative=True)
            yl = feats.view(B, -1) @ W.view(-1, lay.m)
            z, u, h_next = lay.to_nodes(yl)
            recs.append(dict(x=h, feats=feats, deriv=deriv, W=W, y=yl, z=z, u=u))
            h = h_next
        diff = h - y
        train_loss = (diff * diff).mean()
        grad_h = diff * (2.0 / diff.numel())

        reg = torch.zeros((), dtype=train_loss.dtype, device=train_loss.device)
        if with_reg:
            reg = self._regularise(recs, first)
        objective = train_loss + self.lamb * reg

        for l in range(len(self.layers) - 1, -1, -1):
            grad_h = self._layer_backward(l, recs[l], grad_h)
        return objective, train_loss, reg

    # -- regularisation ------------------------------------------------------------------------
    def _regularise(self, recs: list[dict], first) -> Tensor:
        """reg's value; stores on each record dW_reg (n, K+1, m), dA_reg (B, n, K+1) and dx_reg (B, n),
        the gradients of lamb * reg through the edge stds, and adds the coef penalties' gradients."""
        lamb = self.lamb
        B = first[3].shape[0]
        edges, norms = [], []
        for l, (lay, rec) in enumerate(zip(self.layers, recs)):
            if l == 0:
                (xc, cov), (var, std) = first[5], first[6]
            else:
                xc, cov = _moments(rec["feats"])
                var, std = _input_std(rec["x"])
            w64 = rec["W"].double()
            cw = cov @ w64
            q = (w64 * cw).sum(1)
            e64 = q.clamp_min(1e-36).sqrt()
            rec.update(xc=xc, var=var, std=std, w64=w64, cw=cw, q=q, e64=e64)
            edges.append(e64.to(rec["W"].dtype).t())  # (m, n)
            norms.append(std + 0.1)
        if self.reg_metric in _FORWARD_METRICS:
            reg, d_edges, d_norms = self._forward_metric_reg(edges, norms)
        else:
            reg, d_edges, d_norms = self._backward_metric_reg(edges, recs)
        for l, (lay, rec) in enumerate(zip(self.layers, recs)):
            # q = w^T C w per edge: dW = 2 C w dq; dC = sum_j dq_j w_j w_j^T; dXc = 2 Xc dC / (B-1).
            dq = (d_edges[l].t().double() * lamb) * (0.5 / rec["e64"]) * (rec["q"] >= 1e-36)
            rec["dW_reg"] = (2.0 * rec["cw"] * dq.unsqueeze(1)).to(rec["W"].dtype)
            if l == 0:
                continue
            w64 = rec["w64"]
            dcov = (w64 * dq.unsqueeze(1)) @ w64.transpose(1, 2)
            rec["dA_reg"] = (rec["xc"] @ dcov).transpose(0, 1).to(rec["W"].dtype) * (2.0 / max(B - 1, 1))
            if d_norms[l] is not None:
                # norm = sqrt(max(var, 1e-24)) + 0.1, var = sum (x - mean)^2 / (B - 1)
                dvar = (d_norms[l] * lamb) * (0.5 / rec["std"]) * (rec["var"] >= 1e-24)
                x_l = rec["x"]
                rec["dx_reg"] = (x_l - x_l.mean(0)) * (dvar * (2.0 / max(B - 1, 1)))
        if self.lamb_coef or self.lamb_coefdiff:
            reg = reg + self._coef_reg(recs)
        return reg

    def _forward_metric_reg(self, edges: list[Tensor], norms: list[Tensor]):
        """pykan's l1 + row/column entropy penalty summed over layers, with its gradient, on one
        block-diagonal matrix of every layer's (m, n) matrix (zeros elsewhere add nothing: their
        p log p is 0): ~30 ops for the whole model instead of ~30 per layer."""
        by_norm = self.reg_metric != "edge_forward_spline_u"
        mats = [e / nrm for e, nrm in zip(edges, norms)] if by_norm else edges
        v = torch.block_diag(*mats)
        rows = torch.cat([v.new_full((m.shape[0], 1), 1.0 / m.shape[0]) for m in mats])
        cols = torch.cat([v.new_full((1, m.shape[1]), 1.0 / m.shape[1]) for m in mats], dim=1)
        value, dv = _l1_entropy(v, rows, cols, self.lamb_l1, self.lamb_entropy)
        d_edges, d_norms = [], []
        r = c = 0
        for e, nrm, mat in zip(edges, norms, mats):
            dm = dv[r:r + mat.shape[0], c:c + mat.shape[1]]
            r, c = r + mat.shape[0], c + mat.shape[1]
            if by_norm:
                d_edges.append(dm / nrm)
                d_norms.append(-(dm * mat).sum(0) / nrm)
            else:
                d_edges.append(dm)
                d_norms.append(None)
        return value, d_edges, d_norms

    def _backward_metric_reg(self, edges: list[Tensor], recs: list[dict]):
        """'edge_backward' / 'node_backward': attribution scores (``KAN.attribute``) of the edge stds,
        differentiated by autograd on these small (m, n) tensors only."""
        from .kan import matrix_reg

        sub_std = [rec["y"].std(0) + 1e-4 for rec in recs]
        leaves = [e.detach().requires_grad_() for e in edges]
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
        return total.detach(), list(grads), [None] * len(edges)

    def _backpropagate(self, edges: list[Tensor], sub_std: list[Tensor], top: Tensor, l_top: int):
        """``KAN._backpropagate`` on given edge stds: node scores per node layer 0..l_top and edge
        scores (q, m, n) per layer below l_top."""
        nodes, edge_scores, score = [top], [], top
        for l in range(l_top, 0, -1):
            sub = self.layers[l - 1].node_to_subnode(score)
            edge = edges[l - 1].unsqueeze(0) * (sub / sub_std[l - 1]).unsqueeze(-1)
            score = edge.sum(1)
            edge_scores.append(edge)
            nodes.append(score)
        return nodes[::-1], edge_scores[::-1]

    def _coef_reg(self, recs: list[dict]) -> Tensor:
        """lamb_coef * mean_j |coef| + lamb_coefdiff * mean_j |diff(coef)| summed over (i, m), per
        layer; stores lamb * its gradient as rec['dcoef_reg']."""
        total = 0.0
        for lay, rec in zip(self.layers, recs):
            coef = lay.layer.coef.detach()
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
    def _layer_backward(self, l: int, rec: dict, grad_h: Tensor) -> Tensor | None:
        """Gradients of layer l's parameters from d objective / d(its node values) grad_h (B, n_nodes);
        returns d objective / d(its input) (B, n), None for the first layer."""
        lay = self.layers[l]
        p = lay.params
        if lay.node_affine:
            if p["node_scale"].requires_grad:
                _write_grad(p["node_scale"], (grad_h * rec["u"]).sum(0))
            if p["node_bias"].requires_grad:
                _write_grad(p["node_bias"], grad_h.sum(0))
            grad_h = grad_h * p["node_scale"].detach()
        gz = lay.mult_backward(rec["z"], grad_h)
        if lay.sub_affine:
            if p["subnode_scale"].requires_grad:
                _write_grad(p["subnode_scale"], (gz * rec["y"]).sum(0))
            if p["subnode_bias"].requires_grad:
                _write_grad(p["subnode_bias"], gz.sum(0))
            gz = gz * p["subnode_scale"].detach()
        feats, W = rec["feats"], rec["W"]
        B = feats.shape[0]
        dW = (feats.view(B, -1).t() @ gz).view(W.shape)
        if "dW_reg" in rec:
            dW = dW + rec["dW_reg"]
        self._weight_backward(lay, dW, rec.get("dcoef_reg"))
        if l == 0:
            return None
        dA = (gz @ W.view(-1, lay.m).t()).view(feats.shape)
        if "dA_reg" in rec:
            dA = dA + rec["dA_reg"]
        gx = (dA * rec["deriv"]).sum(-1)
        if "dx_reg" in rec:
            gx = gx + rec["dx_reg"]
        return gx

    @staticmethod
    def _weight_backward(lay: _Layer, dW: Tensor, dcoef_reg: Tensor | None) -> None:
        """dW (n, K+1, m) of the folded weight -> gradients of coef, scale_base, scale_sp."""
        layer = lay.layer
        mask = layer.mask.detach()
        if layer.scale_base.requires_grad:
            _write_grad(layer.scale_base, dW[:, 0, :] * mask)
        d_sp = dW[:, 1:, :]
        if layer.coef.requires_grad:
            dcoef = (d_sp * (mask * layer.scale_sp.detach()).unsqueeze(1)).transpose(1, 2)
            if dcoef_reg is not None:
                dcoef = dcoef + dcoef_reg
            _write_grad(layer.coef, dcoef)
        if layer.scale_sp.requires_grad:
            _write_grad(layer.scale_sp, (d_sp * layer.coef.detach().transpose(1, 2)).sum(1) * mask)


def _l1_entropy(v: Tensor, rows: Tensor, cols: Tensor, lamb_l1: float, lamb_entropy: float
                ) -> tuple[Tensor, Tensor]:
    """``kan.matrix_reg`` summed over the blocks of a block-diagonal v (R, C) and its gradient (R, C).

    rows (R, 1) / cols (1, C): 1 / (rows resp. columns of the block each row / column belongs to),
    the weights of the row and column means. With p = v / (line sum + 1) and f(p) = p log2(p + 1e-4),
    d(-sum f(p)) / dv over one line is -(f'(p) - sum_line f'(p) p) / (line sum + 1).
    """
    value = lamb_l1 * v.sum()
    grad = None
    for dim, weight in ((1, rows), (0, cols)):
        denom = v.sum(dim, keepdim=True) + 1
        p = v / denom
        log_p = torch.log2(p + 1e-4)
        value = value - lamb_entropy * (p * log_p * weight).sum()
        fprime = log_p + p / ((p + 1e-4) * math.log(2.0))
        g = (fprime - (fprime * p).sum(dim, keepdim=True)) * (weight / denom)
        grad = g if grad is None else grad + g
    return value, lamb_l1 - lamb_entropy * grad
