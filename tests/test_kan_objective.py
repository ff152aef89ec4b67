"""kan_objective: the hand-written KAN objective and gradient against autograd (the oracle: the model's
forward, KAN.reg as fit builds it, .backward()), in float64 on random models. Every test runs on both
paths: the PyTorch one (backend='reference') and the compiled CPU loops (backend='compiled', skipped
when the library is not built)."""

import functools
import sys

import pytest
import torch
from kanswap.kernels.kan_objective_cpu import available

from kanswap import KAN
from kanswap.kan_objective_fused import kan_objective

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: a second thread only adds waiting


@pytest.fixture(autouse=True, params=["reference", "compiled"])
def backend(request, monkeypatch):
    """Every ``kan_objective`` call of this module on the given path."""
    if request.param == "compiled" and not available(torch.float64):
        pytest.skip("compiled CPU kernels not built")
    monkeypatch.setattr(sys.modules[__name__], "kan_objective", functools.partial(kan_objective, backend=request.param))
    return request.param

METRICS = ["edge_forward_spline_n", "edge_forward_sum", "edge_forward_spline_u", "edge_backward", "node_backward"]


def _randomise(model: KAN, gen: torch.Generator, affine: bool = False, mask: bool = False) -> KAN:
    """Parameters far from the init (which has tiny coefs), so that every term matters."""
    with torch.no_grad():
        for layer in model.act_fun:
            layer.coef.add_(torch.randn(layer.coef.shape, generator=gen, dtype=layer.coef.dtype) * 0.5)
            layer.scale_base.copy_(torch.randn(layer.scale_base.shape, generator=gen, dtype=layer.coef.dtype))
            layer.scale_sp.copy_(1 + 0.3 * torch.randn(layer.scale_sp.shape, generator=gen, dtype=layer.coef.dtype))
            if mask:
                layer.mask.copy_((torch.rand(layer.mask.shape, generator=gen) > 0.3).to(layer.mask.dtype))
        if affine:
            for name in ("node_bias", "node_scale", "subnode_bias", "subnode_scale"):
                for p in getattr(model, name):
                    p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def _inputs(model: KAN, batch: int, gen: torch.Generator) -> torch.Tensor:
    """Inputs spread past the grid's ends, a few lying exactly on knots."""
    n = model.input_dim
    x = torch.rand(batch, n, generator=gen, dtype=torch.float64) * 3.0 - 1.5
    grid = model.act_fun[0].grid.detach()
    for i in range(min(n, 3)):
        x[i, :] = grid[:, 3 + i]
    return x


def _autograd(model: KAN, x, y, lamb, reg_metric, lamb_l1=1.0, lamb_entropy=2.0, lamb_coef=0.0, lamb_coefdiff=0.0):
    """What KAN.fit's autograd closure computes: (objective, train_loss, reg, grads by name)."""
    model.zero_grad(set_to_none=True)
    pred = model.forward(x)
    train_loss = torch.mean((pred - y) ** 2)
    reg = torch.zeros((), dtype=x.dtype)
    if lamb != 0 and model.save_act:
        if reg_metric == "edge_backward":
            model.attribute()
        elif reg_metric == "node_backward":
            model.node_attribute()
        reg = model.reg(reg_metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff)
    objective = train_loss + lamb * reg
    objective.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return objective.detach(), train_loss.detach(), reg.detach(), grads


def _hand(model: KAN, x, y, lamb, reg_metric, lamb_l1=1.0, lamb_entropy=2.0, lamb_coef=0.0, lamb_coefdiff=0.0,
          f=None):
    if f is None:
        f = kan_objective(model, lamb=lamb, reg_metric=reg_metric, lamb_l1=lamb_l1, lamb_entropy=lamb_entropy,
                          lamb_coef=lamb_coef, lamb_coefdiff=lamb_coefdiff)
        assert f is not None
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.full_like(p, float("nan"))  # preallocated, stale: must be overwritten
    objective, train_loss, reg = f(x, y)
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return objective, train_loss, reg, grads


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _check(model: KAN, x, y, lamb, reg_metric, tol=1e-10, **kw):
    want = _autograd(model, x, y, lamb, reg_metric, **kw)
    got = _hand(model, x, y, lamb, reg_metric, **kw)
    for a, b in zip(got[:3], want[:3], strict=True):
        assert a.shape == () and not a.requires_grad
        assert abs(float(a) - float(b)) <= tol * max(abs(float(b)), 1e-300), (float(a), float(b))
    assert set(got[3]) == set(want[3])
    for name in want[3]:
        assert _rel(got[3][name], want[3][name]) <= tol, (name, _rel(got[3][name], want[3][name]))
    return got


# Measured worst relative error over these cases: 5e-13 (values and gradients); tolerance 1e-10.
@pytest.mark.parametrize("reg_metric", METRICS)
@pytest.mark.parametrize("lamb", [0.0, 0.013])
def test_matches_autograd_every_metric(reg_metric, lamb):
    gen = torch.Generator().manual_seed(1)
    model = _randomise(KAN(width=[3, 5, 4, 2], grid=[4, 6, 3], k=[3, 2, 3], seed=2).double(), gen, mask=True)
    x = _inputs(model, 37, gen)
    y = torch.randn(37, 2, generator=gen, dtype=torch.float64)
    _check(model, x, y, lamb, reg_metric, lamb_l1=0.7, lamb_entropy=3.0, lamb_coef=0.2, lamb_coefdiff=0.3)


@pytest.mark.parametrize("reg_metric", METRICS)
def test_mult_nodes_affine_updated_grid(reg_metric):
    gen = torch.Generator().manual_seed(2)
    model = KAN(width=[2, [3, 2], [2, 1], 1], mult_arity=[[], [2, 3], [3], []], grid=5, k=2, seed=3,
                affine_trainable=True).double()
    x = _inputs(model, 41, gen)
    model.update_grid(x[3:] * 0.7)  # non-uniform grids, some inputs outside them
    _randomise(model, gen, affine=True)
    y = torch.randn(41, 1, generator=gen, dtype=torch.float64)
    _check(model, x, y, 0.05, reg_metric, lamb_entropy=2.0, lamb_coef=0.1)


@pytest.mark.parametrize("base_fun", ["identity", "zero"])
def test_base_funs_and_frozen_scales(base_fun):
    gen = torch.Generator().manual_seed(3)
    model = _randomise(KAN(width=[2, [5, 2], 1], base_fun=base_fun, grid=3, seed=4, sp_trainable=False,
                           sb_trainable=base_fun == "zero").double(), gen)
    x = _inputs(model, 29, gen)
    y = torch.randn(29, 1, generator=gen, dtype=torch.float64)
    got = _check(model, x, y, 0.01, "edge_forward_spline_n", lamb_coefdiff=0.5)
    assert "act_fun.0.scale_sp" not in got[3]


def test_reference_model_sizes():
    """The reference fit's settings (lamb 1e-3, entropy 5) on its model, grid updated once."""
    gen = torch.Generator().manual_seed(4)
    model = KAN(width=[9, 10, 10, 1], seed=5, noise_scale=1.0).double()
    x = torch.randint(0, 2, (409, 9), generator=gen).double()
    model.update_grid(x)
    y = (x.sum(1, keepdim=True) > 4.5).double()
    _check(model, x, y, 0.001, "edge_forward_spline_n", lamb_entropy=5.0)


def test_cache_follows_parameters_and_grid():
    """The first layer's work is cached per x: a changed parameter, a new x or an updated grid are seen."""
    gen = torch.Generator().manual_seed(5)
    model = _randomise(KAN(width=[2, 4, 1], grid=4, seed=6).double(), gen)
    x = _inputs(model, 31, gen)
    y = torch.randn(31, 1, generator=gen, dtype=torch.float64)
    kw = dict(lamb=0.02, reg_metric="edge_forward_spline_n")
    f = kan_objective(model, lamb_l1=1.0, lamb_entropy=2.0, lamb_coef=0.0, lamb_coefdiff=0.0, **kw)
    first = _hand(model, x, y, f=f, **kw)
    with torch.no_grad():
        model.act_fun[0].coef.mul_(1.5)
        model.act_fun[1].scale_base.add_(0.2)
    got = _hand(model, x, y, f=f, **kw)
    want = _autograd(model, x, y, **kw)
    assert abs(float(got[0] - want[0])) <= 1e-10 * float(want[0]) and float(got[0]) != float(first[0])
    model.update_grid(x * 0.5)
    got, want = _hand(model, x, y, f=f, **kw), _autograd(model, x, y, **kw)
    assert abs(float(got[0] - want[0])) <= 1e-10 * float(want[0])
    for name in want[3]:
        assert _rel(got[3][name], want[3][name]) <= 1e-10
    x2 = _inputs(model, 31, gen)
    got, want = _hand(model, x2, y, f=f, **kw), _autograd(model, x2, y, **kw)
    assert abs(float(got[0] - want[0])) <= 1e-10 * float(want[0])


def test_save_act_off_means_no_reg():
    gen = torch.Generator().manual_seed(6)
    model = _randomise(KAN(width=[2, 3, 1], grid=3, seed=7).double(), gen)
    model.save_act = False
    x = _inputs(model, 19, gen)
    y = torch.randn(19, 1, generator=gen, dtype=torch.float64)
    got = _check(model, x, y, 0.1, "edge_forward_spline_n")
    assert float(got[2]) == 0.0


def test_float32_close_to_autograd():
    """float32 model: same float64 covariance as the layer's edge std; measured 8e-7, tolerance 1e-5."""
    gen = torch.Generator().manual_seed(7)
    model = _randomise(KAN(width=[4, 6, 1], grid=5, seed=8).double(), gen).float()
    x = _inputs(model.double(), 53, gen).float()
    model.float()
    y = torch.randn(53, 1, generator=gen)
    _check(model, x, y, 0.01, "edge_forward_spline_n", tol=1e-5)


def test_fallbacks():
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    kw = dict(lamb=0.0, reg_metric="edge_forward_spline_n", lamb_l1=1.0, lamb_entropy=2.0, lamb_coef=0.0,
              lamb_coefdiff=0.0)
    assert kan_objective(model, **kw) is not None
    assert kan_objective(model, loss_fn=lambda a, b: (a - b).abs().mean(), **kw) is None
    assert kan_objective(KAN(width=[2, 3, 1], base_fun=torch.tanh, seed=0), **kw) is None
    model.act_fun[0].grid.requires_grad_(True)
    assert kan_objective(model, **kw) is None


def test_gradients_land_in_a_flat_buffer():
    """fit preallocates every p.grad as a view into one flat buffer: f writes there, in place."""
    gen = torch.Generator().manual_seed(8)
    model = _randomise(KAN(width=[3, [4, 1], 2], grid=4, seed=9, affine_trainable=True).double(), gen, mask=True)
    x = _inputs(model, 23, gen)
    y = torch.randn(23, 2, generator=gen, dtype=torch.float64)
    want = _autograd(model, x, y, 0.02, "edge_forward_spline_n", lamb_coef=0.1)[3]
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    flat = torch.full((sum(p.numel() for _, p in params),), float("nan"), dtype=torch.float64)
    start = 0
    for _, p in params:
        p.grad = flat[start:start + p.numel()].view_as(p)
        start += p.numel()
    f = kan_objective(model, lamb=0.02, reg_metric="edge_forward_spline_n", lamb_l1=1.0, lamb_entropy=2.0,
                      lamb_coef=0.1, lamb_coefdiff=0.0)
    f(x, y)
    assert _rel(flat, torch.cat([want[name].flatten() for name, _ in params])) <= 1e-10
