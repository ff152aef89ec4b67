"""kanswap's L-BFGS (kanswap.lbfgs) against torch.optim.LBFGS, on Rosenbrock and on a KAN fit."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from kanswap.kernels import lbfgs_cpu

from kanswap import KAN, create_dataset
from kanswap.lbfgs import LBFGS, cubic_minimum


def _rosenbrock(v: torch.Tensor) -> torch.Tensor:
    return (100.0 * (v[1:] - v[:-1] ** 2) ** 2 + (1.0 - v[:-1]) ** 2).sum()


def _start(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(-1.5, 1.5, n))


def _ours_on(fun, x0: torch.Tensor, steps: int, **kw) -> list[torch.Tensor]:
    x, g = x0.clone(), torch.zeros_like(x0)

    def objective() -> float:
        v = x.detach().requires_grad_(True)
        f = fun(v)
        (grad,) = torch.autograd.grad(f, v)
        g.copy_(grad)
        return f.item()

    opt = LBFGS(x, g, **kw)
    out = []
    for _ in range(steps):
        opt.step(objective)
        out.append(x.clone())
    return out


def _torch_on(fun, x0: torch.Tensor, steps: int, **kw) -> list[torch.Tensor]:
    p = torch.nn.Parameter(x0.clone())
    opt = torch.optim.LBFGS([p], **kw)

    def closure():
        opt.zero_grad()
        f = fun(p)
        f.backward()
        return f

    out = []
    for _ in range(steps):
        opt.step(closure)
        out.append(p.detach().clone())
    return out


SETTINGS = dict(lr=1.0, history_size=10, tolerance_grad=1e-32, tolerance_change=1e-32)


@pytest.mark.parametrize("max_iter", [1, 20])
def test_follows_torch_on_rosenbrock(max_iter):
    x0 = _start(7, seed=3)
    ours = _ours_on(_rosenbrock, x0, 20, max_iter=max_iter, tolerance_ys=1e-10, max_ls_budget=True, **SETTINGS)
    ref = _torch_on(_rosenbrock, x0, 20, max_iter=max_iter, line_search_fn="strong_wolfe", **SETTINGS)
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        rel = ((a - b).norm() / b.norm()).item()
        assert rel < 1e-8, (i, rel)  # measured 0 (same arithmetic in float64)


def test_reaches_rosenbrock_minimum():
    x0 = _start(10, seed=1)
    ours = _ours_on(_rosenbrock, x0, 10, **SETTINGS)
    assert torch.allclose(ours[-1], torch.ones(10, dtype=torch.float64), rtol=0, atol=1e-10)


def test_follows_torch_on_a_kan_fit():
    """20 iterations (single-iteration steps, as many line searches as 20 iterations of one step) on a
    float64 KAN's MSE, the KAN's parameters as one flat vector."""
    data = create_dataset(lambda x: torch.sin(2 * x[:, [0]]) * x[:, [1]], n_var=2, train_num=101, seed=0)
    model = KAN(width=[2, 4, 1], grid=5, seed=1).double()
    x_in, y = data["train_input"].double(), data["train_label"].double()
    params = [p for p in model.parameters() if p.requires_grad]
    shapes = [p.shape for p in params]
    x0 = torch.cat([p.detach().reshape(-1) for p in params])

    def fun(v: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(v, [s.numel() for s in shapes])
        state = {name: c.view(p.shape) for (name, p), c in
                 zip(((n, p) for n, p in model.named_parameters() if p.requires_grad), chunks, strict=True)}
        pred = torch.func.functional_call(model, state, (x_in,))
        return torch.mean((pred - y) ** 2)

    model.save_act = False
    ours = _ours_on(fun, x0, 20, max_iter=1, tolerance_ys=1e-10, max_ls_budget=True, **SETTINGS)
    ref = _torch_on(fun, x0, 20, max_iter=1, line_search_fn="strong_wolfe", **SETTINGS)
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        rel = ((a - b).norm() / b.norm()).item()
        assert rel < 1e-8, (i, rel)
    assert fun(ours[-1]).item() < 0.5 * fun(x0).item()


@pytest.mark.skipif(not lbfgs_cpu.available(torch.zeros(1)), reason="compiled CPU kernels not built")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, h", [(1, 1), (7, 3), (641, 10), (1029, 10)])
def test_compiled_direction_equals_the_torch_recursion(dtype, n, h):
    """The compiled two-loop recursion against the torch one on the same random pairs, odd lengths
    around the 8-lane sums: relative 1e-12 in float64, 1e-5 in float32 (its dot products sum in double,
    torch.s in float32; measured 1.7e-16 and 1.0e-7)."""
    gen = torch.Generator().manual_seed(n + h)
    x, g = torch.zeros(n, dtype=dtype), torch.randn(n, generator=gen, dtype=torch.float64).to(dtype)
    opt = LBFGS(x, torch.zeros_like(x))
    assert opt._compiled
    opt.steps = [torch.randn(n, generator=gen, dtype=torch.float64).to(dtype) for _ in range(h)]
    opt.dirs = [s + 0.3 * torch.randn(n, generator=gen, dtype=torch.float64).to(dtype) for s in opt.steps]
    opt.rho = [1.0 / y.double().dot(s.double()).item() for y, s in zip(opt.dirs, opt.steps, strict=True)]
    opt.h_diag = 0.7
    got = opt._direction(g)
    opt._compiled = False
    want = opt._direction(g)
    rel = ((got.double() - want.double()).norm() / want.double().norm()).item()
    assert rel < (1e-12 if dtype == torch.float64 else 1e-5), rel
    opt._compiled = True
    assert torch.equal(got, opt._direction(g))  # fixed bits, from the pairs' cached views
    opt.rho[0] *= 2.0
    opt._pairs = None  # what _remember does when the pairs change: the views are rebuilt from them
    assert not torch.equal(got, opt._direction(g))


def test_curvature_threshold_keeps_tiny_pairs():
    """A pair with y.s = 1e-14 is stored with pykan's 1e-32 threshold and dropped with torch's 1e-10."""
    for tol, kept in ((1e-32, 1), (1e-10, 0)):
        x, g = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
        opt = LBFGS(x, g, tolerance_ys=tol)
        opt.prev_g, opt.t = torch.zeros(2, dtype=torch.float64), 1.0
        opt.d = torch.tensor([1e-7, 0.0], dtype=torch.float64)
        opt._remember(torch.tensor([1e-7, 0.0], dtype=torch.float64))
        assert len(opt.dirs) == kept


def test_cubic_minimum_of_a_cubic():
    # f(t) = (t - 1)^2 (a quadratic is a cubic): minimum at 1 from any two points
    t = cubic_minimum(0.0, 1.0, -2.0, 3.0, 4.0, 4.0)
    assert t == pytest.approx(1.0, rel=1e-14)


def test_bad_arguments():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="flat vectors"):
        LBFGS(x, torch.zeros(2))
    with pytest.raises(ValueError, match="line_search"):
        LBFGS(x, torch.zeros(3), line_search="armijo")


def test_fit_with_lbfgs_does_not_import_dynamo():
    code = ("import sys, torch\n"
            "from kanswap import KAN, create_dataset\n"
            "d = create_dataset(lambda x: x[:, [0]] * x[:, [1]], n_var=2, train_num=50, test_num=20, seed=0)\n"
            "KAN(width=[2, 3, 1], grid=3, seed=0).fit(d, steps=2, lamb=0.01, progress=False)\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
