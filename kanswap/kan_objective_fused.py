"""KAN's training objective on the compiled CPU loops (``kernels/kan_objective_cpu.c``).

The same objective and gradient as ``kan_objective._Objective`` (its oracle and fallback), computed
per layer by one compiled forward over the batch (basis windows, edge outputs, the layer output and
every edge's mean and variance as direct shifted sums in float64) and one compiled backward that
touches only the k + 1 non-zero basis functions of each input (weight gradient, input gradient, and
the regularisation's pull on every edge output); the folded weight and its gradient are one compiled
pass each, the forward metrics' l1 + entropy penalty of all layers and its gradient one compiled
float64 pass. What is cheap per node stays in torch ops shared with the oracle: mult nodes and affine
parameters, the backward metrics' penalty, the coef penalties.

Measured (``bench/kan_objective_calls.py``, 1 thread, loaded 2-core machine): one closure call of the
reference fit takes 2.4x less time than the oracle's (12 top-level torch ops against 289), of
[2, 5, 1] on 1000 samples 2.8x less. The edge stds come from the batch directly instead of
``w^T C w``: near a zero std they are the float64 direct sums (3e-12 from a direct-sum oracle where
``w^T C w`` is 6e-8 off, tests/test_kan_objective_cpu.py), elsewhere equal to the oracle's to ~1e-15.

Covered: what ``kan_objective`` covers, on CPU float32/float64 tensors, spline order <= 15, grids
sorted (a grid that is not sorted runs the oracle's path for that call).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import kan_objective as reference
from .kan_objective import _FORWARD_METRICS, _grad, _Objective
from .kernels import kan_objective_cpu as cpu

__all__ = ["BACKENDS", "FusedObjective", "fused_covers", "kan_objective"]

BACKENDS = ("auto", "reference", "compiled")


def kan_objective(model, *, lamb: float, reg_metric: str, lamb_l1: float, lamb_entropy: float, lamb_coef: float,
                  lamb_coefdiff: float, loss_fn=None, backend: str = "auto"):
    """``kan_objective.kan_objective`` (same arguments, same result, None where it does not cover the
    case) on the path ``backend`` picks: 'auto' the compiled CPU loops where they load and cover the
    model (``fused_covers``), else the PyTorch path; 'reference' the PyTorch path; 'compiled' the
    compiled loops or a ValueError."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    objective_type = None
    if backend != "reference":
        if fused_covers(model):
            objective_type = FusedObjective
        elif backend == "compiled":
            raise ValueError("backend='compiled': the compiled CPU loops do not cover this model (they need CPU "
                             "float32/float64 tensors, spline order <= 15, and the library built)")
    return reference.kan_objective(model, lamb=lamb, reg_metric=reg_metric, lamb_l1=lamb_l1,
                                   lamb_entropy=lamb_entropy, lamb_coef=lamb_coef, lamb_coefdiff=lamb_coefdiff,
                                   loss_fn=loss_fn, objective_type=objective_type)


def fused_covers(model) -> bool:
    """Whether the compiled loops handle this model (device, dtype, spline order, library built)."""
    coef = model.act_fun[0].coef
    if coef.device.type != "cpu" or not cpu.available(coef.dtype):
        return False
    for layer in model.act_fun:
        K = layer.coef.shape[-1]
        if layer.k > cpu.MAX_K or K < layer.k + 1 or layer.grid.shape[1] != K + layer.k + 1:
            return False
        tensors = (layer.coef, layer.grid, layer.scale_base, layer.scale_sp, layer.mask)
        if any(t.dtype != coef.dtype or not t.is_contiguous() for t in tensors):
            return False
    return True


class _Grid:
    """A layer's grid as last seen, its reciprocal spans, and whether it is sorted (rechecked when
    the grid changes: a grid update writes in place)."""

    def __init__(self, layer):
        self.layer = layer
        self.grid: Tensor | None = None
        self.inv: Tensor | None = None
        self.sorted = True

    def current(self) -> tuple[Tensor, Tensor]:
        grid = self.layer.grid
        if self.grid is None or self.grid.shape != grid.shape or not torch.equal(self.grid, grid):
            self.grid = grid.detach().clone().contiguous()
            self.inv = cpu.inverse_spans(self.grid, self.layer.k)
            self.sorted = bool((self.grid[:, 1:] >= self.grid[:, :-1]).all())
        return self.grid, self.inv


class FusedObjective(_Objective):
    """``_Objective`` with the per-layer basis, GEMMs and edge statistics replaced by compiled loops."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.grids = [_Grid(lay.layer) for lay in self.layers]
        self._first_fused = None  # [x, x._version, grid copy, x0 contiguous, Basis with column stats] for the last x
        # Output tensors of each layer's loops, reused from call to call (``cpu._buffer``); the first
        # layer's basis has its own, as it outlives a call.
        self.ws = [{} for _ in self.layers]
        self.ws_first: dict = {}
        self.ws_predict = [{} for _ in self.layers]
        # Every edge's variance, layers stacked and zero-padded to (N, m_max) as the oracle's stds (a pad
        # per layer and call cost 110 us at [2, 5, 1]: one copy into this buffer instead).
        self.var64 = torch.zeros(self.offsets[-1] + self.sizes[-1][0], self.m_max, dtype=torch.float64)
        self.reg_forward = cpu.RegForward([(n, m) for n, _, m in self.sizes])

    def _basis(self, l: int, x: Tensor, derivative: bool, ws: dict, stats: bool) -> cpu.Basis:
        g = self.grids[l]  # current: _run and predict check every grid first
        grid, inv = g.grid, g.inv
        lay = self.layers[l]
        return cpu.basis(x, grid, inv, lay.layer.k, lay.basis.base_name, derivative, ws, stats)

    def _first_basis(self, x: Tensor):
        grid = self.grids[0].grid  # current (checked by _run); a new object whenever the grid changed
        cache = self._first_fused
        if cache is None or cache[0] is not x or cache[1] != x._version or cache[2] is not grid:
            x0 = self.model._select_inputs(x).contiguous()
            cache = self._first_fused = [x, x._version, grid, x0, self._basis(0, x0, False, self.ws_first, True)]
        return cache

    def _fold(self, l: int, ws: dict) -> Tensor:
        """Layer l's folded weight (n, K + 1, m) in one compiled pass (6 torch ops per layer before)."""
        layer = self.layers[l].layer
        # The loops read the parameters' data: no detach. With the grid checks once per call and no
        # scratch selects: 47 -> 22 top-level ops, 1192 -> 1126 us per reference closure call
        # (bench/kan_objective_calls.py --threads 1 --repeats 100).
        return cpu.fold(layer.coef, layer.scale_base, layer.scale_sp, self.layers[l].mask, ws)

    def _fold_grad(self, l: int, dW: Tensor, dcoef_reg: Tensor | None) -> None:
        """Gradients of coef, scale_base, scale_sp from dW, written into their .grad in one compiled pass
        (5 torch ops per layer before); the torch path where a .grad is not contiguous."""
        lay = self.layers[l]
        layer = lay.layer
        grads = [_grad(p) if p.requires_grad else None for p in (layer.coef, layer.scale_base, layer.scale_sp)]
        if any(g is not None and not g.is_contiguous() for g in grads):
            w_sp = layer.scale_sp if lay.mask is None else lay.mask * layer.scale_sp
            lay.weight_backward(dW, w_sp, dcoef_reg)
            return
        cpu.fold_grad(dW, layer.coef, layer.scale_sp, lay.mask, dcoef_reg, *grads)

    def predict(self, x: Tensor) -> Tensor:
        """The model's output (B, n_out) for x (B, n_in), as ``model.forward`` with ``save_act`` off and
        with its side effects (``cache_data``, ``acts``, the scale records emptied), on the compiled
        loops: fit's test loss in ~0.25 ms instead of ~2 ms per step on the reference KAN (fit split,
        measured). Rows with NaN/inf and unsorted grids go through ``model.forward``."""
        for g in self.grids:
            g.current()
        if not all(g.sorted for g in self.grids) or not bool(torch.isfinite(x).all()):
            return self.model.forward(x)
        model = self.model
        with torch.no_grad():
            h = model._select_inputs(x).contiguous()
            model.cache_data = x.detach()
            model._reset_records_for_forward()
            model.acts = [h]
            for l, lay in enumerate(self.layers):
                bas = self._basis(l, h, False, self.ws_predict[l], False)
                W = self._fold(l, self.ws_predict[l])
                h = lay.to_nodes(cpu.forward(bas, W, False, self.ws_predict[l])[0])[2].clone()
                model.acts.append(h)
            return h

    def _run(self, x: Tensor, y: Tensor):
        for g in self.grids:
            g.current()
        if not all(g.sorted for g in self.grids):
            return super()._run(x, y)
        with_reg = self.lamb != 0.0 and self.model.save_act
        first = self._first_basis(x)
        h = first[3]
        recs = []
        for l, lay in enumerate(self.layers):
            W = self._fold(l, self.ws[l])
            bas = first[4] if l == 0 else self._basis(l, h, True, self.ws[l], with_reg)
            yl, mean, var = cpu.forward(bas, W, with_reg, self.ws[l])
            z, u, h_next = lay.to_nodes(yl)
            recs.append(dict(x=h, bas=bas, W=W, y=yl, z=z, u=u, mean=mean, var=var))
            h = h_next.contiguous()
        return self._loss_and_backward(h, y, recs, first, with_reg, self._regularise_fused, self._backward_fused)

    def _regularise_fused(self, recs: list[dict], first) -> Tensor:
        """reg's value; stores on each record c (n, m), the coefficient of the edge outputs' centred
        values in d(lamb * reg) / d phi, dxv (n,) that of the inputs' centred values (through the input stds;
        forward metrics but 'edge_forward_spline_u', hidden layers), and dcoef_reg."""
        lamb = self.lamb
        B = first[3].shape[0]
        dtype = recs[0]["W"].dtype
        if self.reg_metric in _FORWARD_METRICS:
            # The l1 + entropy penalty and its gradient in one compiled float64 pass (~60 torch ops before):
            # one closure call of the reference fit 1374 -> 1192 us, 127 -> 47 top-level ops; [2, 5, 1]
            # 930 -> 689 us (bench/kan_objective_calls.py --threads 1 --repeats 100).
            normed = self.reg_metric != "edge_forward_spline_u"
            xstat = [rec["bas"].xstat for rec in recs]
            value = self.reg_forward([rec["var"] for rec in recs], xstat, B, normed, lamb, self.lamb_l1,
                                     self.lamb_entropy)
            reg = torch.full((), value, dtype=dtype)
            for l, rec in enumerate(recs):
                rec["c"] = self.reg_forward.c[l]
                if l > 0 and normed:
                    # added to the input gradient by the backward loop (4 torch ops per layer before): 22 -> 12
                    # top-level ops per reference closure call, 2.3x -> 2.4x less time than the PyTorch path
                    # (bench/kan_objective_calls.py --threads 1 --repeats 100)
                    rec["dxv"] = self.reg_forward.dvar2[l]
            if self.lamb_coef or self.lamb_coefdiff:
                reg = reg + self._coef_reg(recs)
            return reg
        var64 = self.var64
        for (n, _, m), off, rec in zip(self.sizes, self.offsets, recs, strict=True):
            var64[off:off + n, :m].copy_(rec["var"])
        e64 = var64.clamp_min(1e-36).sqrt()
        edges = e64.to(dtype)
        reg, d_edges, _ = self._backward_metric_reg(edges, recs)
        # e = sqrt(var), var = sum_b (phi_b - mean)^2 / (B - 1): d(lamb reg) / d phi_b = c (phi_b - mean) with
        # c = lamb d_edges / (e (B - 1)), none below the 1e-36 floor.
        c_all = d_edges.double() * ((lamb / max(B - 1, 1)) / e64 * (var64 >= 1e-36))
        for l, rec in enumerate(recs):
            (n, _, m), off = self.sizes[l], self.offsets[l]
            rec["c"] = c_all[off:off + n, :m]  # rows of stride m_max: the kernel takes the stride
        if self.lamb_coef or self.lamb_coefdiff:
            reg = reg + self._coef_reg(recs)
        return reg

    def _backward_fused(self, l: int, rec: dict, grad_h: Tensor) -> Tensor | None:
        """As ``_Objective._layer_backward``, the layer's loops compiled."""
        lay = self.layers[l]
        gz = self._node_backward(lay, rec, grad_h).contiguous()
        dxv = rec.get("dxv")
        dW, gx = cpu.backward(rec["bas"], rec["W"], gz, rec.get("c"), rec["mean"], l > 0, self.ws[l],
                              rec["x"] if dxv is not None else None, dxv)
        self._fold_grad(l, dW, rec.get("dcoef_reg"))
        return gx
