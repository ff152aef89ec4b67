"""The MLP's hand-written objective (kanswap.mlp_objective) against autograd, in float64."""

import pytest
import torch
from kanswap.kernels import kan_objective_cpu as cpu

from kanswap import MLP
from kanswap.flat import FlatParams
from kanswap.mlp_objective import BlockReg, mlp_objective
from kanswap.regularization import matrix_reg


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("act", ["silu", "tanh", "relu", "identity"])
@pytest.mark.parametrize("lamb", [0.0, 0.37])
def test_gradient_equals_autograd(act, lamb):
    gen = torch.Generator().manual_seed(11)
    model = MLP(width=[7, 13, 5, 3], act=act, seed=3).double()
    x = torch.randn(29, 7, generator=gen, dtype=torch.float64) * 2
    y = torch.randn(29, 3, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        model.linears[1].weight[0, 0] = 0.0  # |w| at its kink: autograd's slope there is 0
    model.save_act = True
    pred = model(x)
    train = torch.mean((pred - y) ** 2)
    reg = model.reg("w", 0.7, 2.3)
    expect = train + lamb * reg
    grads = torch.autograd.grad(expect, list(model.parameters()))

    flat = FlatParams(list(model.parameters()))
    f = mlp_objective(model, lamb=lamb, reg_metric="w", lamb_l1=0.7, lamb_entropy=2.3)
    flat.g.fill_(float("nan"))  # f must overwrite, not accumulate
    objective, train_loss, reg_value = f(x, y)
    assert _rel(objective, expect.detach()) < 1e-13
    assert _rel(train_loss, train.detach()) < 1e-13
    if lamb:
        assert _rel(reg_value, reg.detach()) < 1e-13
    for p, g in zip(model.parameters(), grads, strict=True):
        assert _rel(p.grad, g) < 1e-10  # measured ~1e-15


def test_block_reg_equals_autograd_per_layer():
    gen = torch.Generator().manual_seed(2)
    shapes = ((6, 11), (1, 6), (5, 1))
    ws = [torch.randn(r, c, generator=gen, dtype=torch.float64).requires_grad_(True) for r, c in shapes]
    reg = sum(matrix_reg(w.abs(), 1.3, 4.0) for w in ws)
    expect = torch.autograd.grad(reg, ws)
    value, grads = BlockReg([tuple(w.shape) for w in ws], 1.3, 4.0, ws[0])([w.detach() for w in ws])
    assert _rel(value, reg.detach()) < 1e-13  # measured ~1e-16
    for g, e in zip(grads, expect, strict=True):
        assert _rel(g, e) < 1e-12  # measured ~1e-16


@pytest.mark.skipif(not cpu.available(torch.float64), reason="compiled CPU kernels not built")
def test_compiled_weight_reg_equals_autograd():
    """The compiled penalty (what mlp_objective runs where the library is built) against autograd of
    matrix_reg per layer, in float64, with a zero weight (autograd's slope 0 at the kink), a 1-row and a
    1-column layer; it adds lamb times the gradient to what the grads hold; float32 weights give the
    float64 result to float32 rounding."""
    gen = torch.Generator().manual_seed(5)
    shapes = ((6, 11), (1, 6), (5, 1))
    ws = [torch.randn(r, c, generator=gen, dtype=torch.float64) for r, c in shapes]
    ws[0][2, 3] = 0.0
    wg = [w.clone().requires_grad_(True) for w in ws]
    reg = sum(matrix_reg(w.abs(), 1.3, 4.0) for w in wg)
    expect = torch.autograd.grad(reg, wg)
    before = [torch.randn(w.shape, generator=gen, dtype=torch.float64) for w in ws]
    grads = [b.clone() for b in before]
    value = cpu.WeightReg(3)(ws, grads, 0.25, 1.3, 4.0)
    assert abs(value - reg.item()) <= 1e-13 * abs(reg.item())  # measured ~1e-16
    for g, b, e in zip(grads, before, expect, strict=True):
        assert _rel(g - b, 0.25 * e) < 1e-12  # measured ~1e-16
    assert grads[0][2, 3] == before[0][2, 3]
    grads32 = [torch.zeros(w.shape) for w in ws]
    value32 = cpu.WeightReg(3)([w.float() for w in ws], grads32, 1.0, 1.3, 4.0)
    assert abs(value32 - reg.item()) <= 1e-6 * abs(reg.item())
    for g, e in zip(grads32, expect, strict=True):
        assert _rel(g.double(), e) < 1e-6


def test_non_contiguous_gradients_take_the_torch_penalty():
    """A weight gradient that is a non-contiguous view (not fit's flat buffer) cannot take the compiled
    penalty's raw pointers: the objective then runs BlockReg, with the same result as autograd."""
    gen = torch.Generator().manual_seed(4)
    model = MLP(width=[5, 7, 2], seed=1).double()
    x = torch.randn(23, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(23, 2, generator=gen, dtype=torch.float64)
    expect = torch.mean((model(x) - y) ** 2) + 0.3 * model.reg("w", 0.7, 2.3)
    grads = torch.autograd.grad(expect, list(model.parameters()))
    for p in model.parameters():
        p.grad = torch.zeros(p.shape[::-1], dtype=p.dtype).t() if p.dim() == 2 else torch.zeros_like(p)
    assert not model.linears[0].weight.grad.is_contiguous()
    objective, _, _ = mlp_objective(model, lamb=0.3, reg_metric="w", lamb_l1=0.7, lamb_entropy=2.3)(x, y)
    assert _rel(objective, expect.detach()) < 1e-13
    for p, g in zip(model.parameters(), grads, strict=True):
        assert _rel(p.grad, g) < 1e-10


def test_unsupported_cases_fall_back():
    model = MLP(width=[3, 4, 1], seed=0)
    assert mlp_objective(model, lamb=0.1, reg_metric="act", lamb_l1=1.0, lamb_entropy=2.0) is None
    assert mlp_objective(model, lamb=0.0, reg_metric="w", lamb_l1=1.0, lamb_entropy=2.0,
                         loss_fn=lambda a, b: (a - b).abs().mean()) is None
    assert mlp_objective(MLP(width=[3, 4, 1], act="gelu"), lamb=0.0, reg_metric="w", lamb_l1=1.0,
                         lamb_entropy=2.0) is None
    # lamb = 0 needs no regularisation: every reg_metric is covered then
    assert mlp_objective(model, lamb=0.0, reg_metric="fa", lamb_l1=1.0, lamb_entropy=2.0) is not None
