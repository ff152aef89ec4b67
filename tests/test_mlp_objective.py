"""The MLP's hand-written objective (kanswap.mlp_objective) against autograd, in float64."""

import pytest
import torch

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


def test_unsupported_cases_fall_back():
    model = MLP(width=[3, 4, 1], seed=0)
    assert mlp_objective(model, lamb=0.1, reg_metric="act", lamb_l1=1.0, lamb_entropy=2.0) is None
    assert mlp_objective(model, lamb=0.0, reg_metric="w", lamb_l1=1.0, lamb_entropy=2.0,
                         loss_fn=lambda a, b: (a - b).abs().mean()) is None
    assert mlp_objective(MLP(width=[3, 4, 1], act="gelu"), lamb=0.0, reg_metric="w", lamb_l1=1.0,
                         lamb_entropy=2.0) is None
    # lamb = 0 needs no regularisation: every reg_metric is covered then
    assert mlp_objective(model, lamb=0.0, reg_metric="fa", lamb_l1=1.0, lamb_entropy=2.0) is not None
