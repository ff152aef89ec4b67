"""The compiled CPU basis features (kernels/bspline_cpu.c) against the PyTorch reference
(kanswap.functional.basis_features) and autograd, and KANLayer/KANLinear on both CPU paths.

Relative errors are max |compiled - reference| / max |reference|, in float64 on fresh random inputs:
odd sizes (inputs across the kernel's 64-input chunks), knots hit exactly, points outside the grid,
NaN/inf rows, updated (non-uniform) and repeated-knot grids. Largest relative errors measured over
the cases below: float64 features 5.3e-16, their backward 3.4e-16; float32 2.7e-7 and 1.3e-7.
Tolerances are ~10x those. The reference's tables themselves sit 4.8e-15 from the full Cox-de Boor
recursion on updated and repeated-knot grids (5e-14 there).
"""

import os
import warnings

import pytest
import torch
from kanswap.kernels import bspline_cpu as cpu
from kanswap.kernels.cpu_library import cpu_kernels_enabled, cpu_library, cpu_library_built

from kanswap import KANLayer, KANLinear
from kanswap import functional as ref
from kanswap.layer import nan_rows
from kanswap.spline import bspline_dense, extend_grid, grid_from_samples, uniform_grid

D = torch.float64
BUILT = cpu_library_built("bspline_cpu")
# KANSWAP_CPU_KERNELS=0 for the whole run (CI's fallback pass): only the PyTorch path is tested.
ENABLED = BUILT and cpu_kernels_enabled()
needs_lib = pytest.mark.skipif(not ENABLED, reason="compiled CPU kernels not built or KANSWAP_CPU_KERNELS=0")

TOL = {torch.float64: {"feats": 6e-15, "grad": 4e-15}, torch.float32: {"feats": 3e-6, "grad": 1.5e-6}}


def test_library_is_built_in_ci():
    """A CI machine has a compiler: a silent build failure would hide the whole compiled path."""
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("only enforced when CI=true")
    assert BUILT, "kernels/bspline_cpu.c was not built into kanswap.kernels._bspline_cpu"


def test_missing_library_warns_once_and_is_none(monkeypatch):
    monkeypatch.delenv("KANSWAP_CPU_KERNELS", raising=False)
    with pytest.warns(RuntimeWarning, match="_no_such_kernel_cpu are not built"):
        assert cpu_library("no_such_kernel_cpu") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cpu_library("no_such_kernel_cpu") is None
    monkeypatch.setenv("KANSWAP_CPU_KERNELS", "0")
    assert cpu_library("bspline_cpu") is None


@pytest.fixture(params=["compiled", "fallback"])
def cpu_path(request, monkeypatch):
    """Runs a test on the compiled path and on the PyTorch fallback (KANSWAP_CPU_KERNELS=0)."""
    if request.param == "compiled":
        if not ENABLED:
            pytest.skip("compiled CPU kernels not built or KANSWAP_CPU_KERNELS=0")
        monkeypatch.delenv("KANSWAP_CPU_KERNELS", raising=False)
    else:
        monkeypatch.setenv("KANSWAP_CPU_KERNELS", "0")
    return request.param


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    for where in (torch.isnan, torch.isposinf, torch.isneginf):
        assert torch.equal(where(a), where(b)), f"{where.__name__} differs"
    a, b = (t.double().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0) for t in (a, b))
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def _grid(kind: str, n: int, G: int, k: int, dtype, gen) -> torch.Tensor:
    if kind == "uniform":
        return uniform_grid(n, G, k, (-1.0, 1.0), dtype=dtype)
    if kind == "updated":
        return grid_from_samples(torch.randn(257, n, generator=gen, dtype=D) * 0.6, G, k, 0.02).to(dtype)
    # repeated interior knots: a zero-width interval in every row
    base = torch.sort(torch.rand(n, G + 1, generator=gen, dtype=D) * 2 - 1, dim=1).values
    base[:, G // 2 + 1] = base[:, G // 2]
    return extend_grid(base, k).to(dtype)


def _points(B: int, grid: torch.Tensor, k: int, gen) -> torch.Tensor:
    n = grid.shape[0]
    lo, hi = grid[:, 0].double(), grid[:, -1].double()
    span = hi - lo
    x = (lo - 0.2 * span + torch.rand(B, n, generator=gen, dtype=D) * 1.4 * span).to(grid.dtype)
    x[0] = grid[:, k + 1]  # knots hit exactly
    x[1] = grid[:, 0]  # the first and last knots
    x[2] = grid[:, -1]
    x[3, 0] = float("nan")
    x[4, n - 1] = float("inf")
    x[5, n // 2] = -float("inf")
    return x


CASES = [(41, 1, 1, 1), (37, 5, 4, 3), (23, 67, 5, 3), (19, 64, 7, 2), (29, 13, 3, 1), (11, 130, 5, 3)]


@needs_lib
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["uniform", "updated", "repeated"])
@pytest.mark.parametrize("B,n,G,k", CASES)
@pytest.mark.parametrize("base_fun", ["silu", "identity", "zero"])
def test_features_and_backward_equal_reference(B, n, G, k, kind, dtype, base_fun):
    gen = torch.Generator().manual_seed(B * 1000 + n * 10 + k)
    grid = _grid(kind, n, G, k, dtype, gen)
    x = _points(B, grid, k, gen)
    assert cpu.compiled_path(x, grid, k, base_fun)
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    got = cpu.basis_features(xa, grid, k, base_fun)
    want = ref.basis_features(xb, grid, k, base_fun)
    assert got.shape == want.shape == (B, n, G + k + 1)
    assert _rel(got.detach(), want.detach()) <= TOL[dtype]["feats"]
    assert (got.detach()[..., 1:] >= 0).all()  # B-splines are never negative, rounding included
    ga = torch.randn(got.shape, generator=gen, dtype=D).to(dtype)
    (gx,) = torch.autograd.grad(got, xa, ga)
    (gx_ref,) = torch.autograd.grad(want, xb, ga)
    assert _rel(gx, gx_ref) <= TOL[dtype]["grad"]


@needs_lib
@pytest.mark.parametrize("kind", ["uniform", "updated", "repeated"])
def test_spline_columns_equal_the_full_recursion(kind):
    """An oracle independent of the shared tables: Cox-de Boor over all G + k functions."""
    gen = torch.Generator().manual_seed(7)
    grid = _grid(kind, 9, 6, 3, D, gen)
    x = _points(53, grid, 3, gen)[6:]  # finite points only: the recursion has no NaN rule
    got = cpu.basis_features(x, grid, 3, "silu")
    assert _rel(got[..., 1:], bspline_dense(x, grid, 3)[0]) <= 5e-14


@needs_lib
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("kind", ["uniform", "updated"])
def test_backward_equals_numerical_jacobian(k, kind):
    """The compiled backward against gradcheck's finite differences (float64, points off the knots)."""
    gen = torch.Generator().manual_seed(k)
    grid = _grid(kind, 4, 5, k, D, gen)
    x = (torch.rand(7, 4, generator=gen, dtype=D) * 2.4 - 1.2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: cpu.basis_features(t, grid, k, "silu"), (x,), eps=1e-7, atol=1e-6)


@needs_lib
def test_double_backward_equals_reference():
    """Under create_graph the backward is the reference's torch ops, so second derivatives agree."""
    gen = torch.Generator().manual_seed(3)
    grid = uniform_grid(3, 5, 3, dtype=D)
    x = torch.rand(11, 3, generator=gen, dtype=D) * 2 - 1
    ga = torch.randn(11, 3, 9, generator=gen, dtype=D)
    out = []
    for fn in (cpu.basis_features, ref.basis_features):
        xr = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(fn(xr, grid, 3, "silu"), xr, ga, create_graph=True)
        (ggx,) = torch.autograd.grad(gx.pow(2).sum(), xr)
        out.append(ggx)
    assert _rel(out[0], out[1]) <= 1e-14


def test_dispatch_falls_back_where_the_kernel_does_not_apply(monkeypatch):
    grid = uniform_grid(3, 5, 3)
    x = torch.rand(4, 3)
    assert not cpu.compiled_path(x, grid, 3, torch.tanh)  # a callable base function
    assert not cpu.compiled_path(x.half(), grid.half(), 3, "silu")
    assert not cpu.compiled_path(x.double(), grid, 3, "silu")  # dtypes differ
    assert not cpu.compiled_path(x, uniform_grid(3, 5, 4), 4, "silu")  # k > 3
    monkeypatch.setenv("KANSWAP_CPU_KERNELS", "0")
    assert not cpu.compiled_path(x, grid, 3, "silu")
    # k > 3 on an updated grid has no tables: the reference's de Boor route, same result
    g4 = grid_from_samples(torch.randn(64, 3, dtype=D), 5, 4, 0.02)
    xd = torch.rand(9, 3, dtype=D)
    torch.testing.assert_close(cpu.basis_features(xd, g4, 4), ref.basis_features(xd, g4, 4), rtol=0, atol=0)


@needs_lib
def test_kernel_rejects_bad_sizes():
    grid = uniform_grid(2, 5, 3)
    info = cpu._tables(grid, 3)
    info_k = type("Info", (), {})()
    info_k.__dict__.update(info.__dict__)
    info_k.k = 0  # the C entry points accept k = 1..3 only
    with pytest.raises(RuntimeError, match="rejected its sizes"):
        cpu.basis_features_fwd(torch.rand(3, 2), info_k, "silu")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("updated", [False, True])
def test_kanlinear_compiled_equals_fallback(cpu_path, dtype, updated, monkeypatch):
    """KANLinear's output and every gradient on the current path equal the PyTorch path's
    (backend='reference' always runs kanswap.functional)."""
    torch.manual_seed(0)
    layer = KANLinear(67, 5, grid=5, k=3, dtype=dtype)
    if updated:
        layer.update_grid_from_samples((torch.rand(300, 67) * 2.2 - 1.1).to(dtype))
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(31, 67, generator=gen, dtype=D) * 2.6 - 1.3).to(dtype)
    x[3, 4] = float("nan")
    grads = []
    for backend in ("auto", "reference"):
        layer.backend = backend
        xr = x.clone().requires_grad_(True)
        y = layer(xr)
        loss = y.nan_to_num(nan=0.0).square().sum()
        params = [p for p in layer.parameters() if p.requires_grad]
        grads.append((y.detach(), *torch.autograd.grad(loss, [xr, *params])))
    assert grads[0][0][3].isnan().all() and not grads[0][0][4:].isnan().any()
    tol = 5e-15 if dtype == torch.float64 else 2e-6  # measured 4.4e-16 and 1.6e-7
    for got, want in zip(grads[0], grads[1], strict=True):
        assert _rel(got, want) <= tol


def test_kanlayer_output_and_cache_on_both_paths(cpu_path):
    """output_and_std and the no-grad feature cache give the reference's values on either path."""
    torch.manual_seed(2)
    layer = KANLayer(6, 4, num=5, k=3).double()
    x = torch.rand(40, 6, dtype=D) * 2 - 1
    with torch.no_grad():
        y1, std1 = layer.output_and_std(x)
        y2 = layer.output(x)  # from the cache
        y_ref = layer.output(x, backend="reference")
    torch.testing.assert_close(y1, y_ref, rtol=1e-14, atol=0)
    torch.testing.assert_close(y2, y_ref, rtol=1e-14, atol=0)
    x_ref = x.clone()
    std_ref = ref.edge_std(ref.basis_moments(x_ref, layer.grid, 3)[1], layer.weight())
    torch.testing.assert_close(std1, std_ref, rtol=1e-12, atol=0)


@needs_lib
@pytest.mark.parametrize("block_bytes", [1 << 20, 1000])
@pytest.mark.parametrize("need", ["both", "x", "weight"])
@pytest.mark.parametrize("kind", ["uniform", "updated"])
def test_blocked_layer_equals_reference(block_bytes, need, kind, monkeypatch):
    """kan_linear (features block by block, recomputed in the backward) against the reference layer:
    y, dx and dW in float64; 1000-byte blocks put 1-2 rows in each block and a short last block."""
    monkeypatch.setattr(cpu, "_BLOCK_BYTES", block_bytes)
    gen = torch.Generator().manual_seed(11)
    grid = _grid(kind, 13, 5, 3, D, gen)
    x = _points(29, grid, 3, gen)
    w = torch.randn(13, 9, 6, generator=gen, dtype=D)
    dy = torch.randn(29, 6, generator=gen, dtype=D)
    out = []
    for fn in (cpu.kan_linear, ref.kan_linear_reference):
        xr = x.clone().requires_grad_(need in ("both", "x"))
        wr = w.clone().requires_grad_(need in ("both", "weight"))
        y = fn(xr, grid, wr, 3, "silu")
        wanted = [t for t in (xr, wr) if t.requires_grad]
        out.append((y.detach(), *torch.autograd.grad(y, wanted, dy)))
    assert type(out[0][0]) is torch.Tensor and len(out[0]) == len(out[1])
    for got, want in zip(out[0], out[1], strict=True):
        assert _rel(got, want) <= 3e-15  # measured 2.7e-16


@needs_lib
def test_blocked_layer_on_an_empty_batch():
    grid = uniform_grid(3, 5, 3, dtype=D)
    x = torch.empty(0, 3, dtype=D, requires_grad=True)
    w = torch.randn(3, 9, 2, dtype=D, requires_grad=True)
    y = cpu.kan_linear(x, grid, w, 3)
    assert y.shape == (0, 2)
    gx, gw = torch.autograd.grad(y.sum(), (x, w))
    assert gx.shape == (0, 3) and torch.equal(gw, torch.zeros_like(w))


@needs_lib
def test_blocked_layer_double_backward_equals_reference():
    gen = torch.Generator().manual_seed(12)
    grid = uniform_grid(4, 5, 3, dtype=D)
    x = torch.rand(9, 4, generator=gen, dtype=D) * 2 - 1
    w = torch.randn(4, 9, 3, generator=gen, dtype=D)
    out = []
    for fn in (cpu.kan_linear, ref.kan_linear_reference):
        xr, wr = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        gx, gw = torch.autograd.grad(fn(xr, grid, wr, 3, "silu").square().sum(), (xr, wr), create_graph=True)
        out.append(torch.autograd.grad(gx.square().sum() + gw.square().sum(), (xr, wr)))
    for got, want in zip(out[0], out[1], strict=True):
        assert _rel(got, want) <= 6e-15  # measured 5.8e-16


def test_layer_keeps_features_of_a_repeated_input(cpu_path):
    """Without grad, a new input takes the blocked layer and the same input a second time keeps its
    features (the L-BFGS closure pattern); every call gives the reference's output."""
    torch.manual_seed(4)
    layer = KANLayer(5, 3).double()
    x1, x2 = (torch.rand(17, 5, dtype=D) for _ in range(2))
    want = [layer.output(x, backend="reference") for x in (x1, x2)]
    for x, y_ref in ((x1, want[0]), (x1, want[0]), (x1, want[0]), (x2, want[1]), (x1, want[0])):
        torch.testing.assert_close(layer.output(x), y_ref, rtol=1e-14, atol=0)
    cache = layer.__dict__.get("_feat_cache")
    assert cache is not None and cache[0] is x1


def test_layer_under_inference_mode(cpu_path):
    """Inference tensors carry no version counter: the layer computes without its feature cache."""
    torch.manual_seed(5)
    layer = KANLinear(7, 3, dtype=D)
    x = torch.rand(12, 7, dtype=D)
    want = layer.output(x, backend="reference")
    with torch.inference_mode():
        xi = x.clone()
        for _ in range(2):
            torch.testing.assert_close(layer(xi), want, rtol=1e-14, atol=0)


def test_nan_rows_marks_exactly_the_rows_with_nan_or_inf():
    """Both of nan_rows' routes: an all-finite input (one total, y returned as is), and rows of NaN,
    +inf, -inf, or finite values whose total overflows (3e38 * 9: not marked)."""
    x = torch.rand(6, 9)
    y = torch.randn(6, 4)
    assert nan_rows(x, y) is y
    x[1, 2], x[3, 0], x[4, 8] = float("nan"), float("inf"), -float("inf")
    x[5] = 3e38
    out = nan_rows(x, y)
    assert out[[1, 3, 4]].isnan().all()
    assert torch.equal(out[[0, 2, 5]], y[[0, 2, 5]])
