"""torch.compile on the reference path (CPU) and on the Triton layer's registered ops.

Backend: ``aot_eager`` by default. It runs Dynamo (graph capture, graph breaks, fullgraph) and
AOTAutograd (the joint forward/backward trace through ``BasisFeatures`` and the ``kanswap::`` ops)
exactly as Inductor would see them, in a few seconds. Inductor itself works on CPU here (g++ is
present) but a cold compile of one tiny KANLinear costs 35-90 s on two cores, so the Inductor test
is opt-in: ``KANSWAP_TEST_INDUCTOR=1``. Shapes are tiny and every test compiles once.

Outputs and gradients must equal eager within 1e-5 (absolute; the values are O(1)).
"""

from __future__ import annotations

import copy
import os

import pytest
import torch

from kanswap.kan import KAN
from kanswap.layer import KANLinear

BACKEND = "aot_eager"
TOL = 1e-5


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Dynamo caches compiled frames per code object: without a reset a test could reuse another
    test's graphs (and skip its own fullgraph check)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    err = (a.detach() - b.detach()).abs().max().item()
    assert err <= TOL, f"{what}: compiled vs eager differ by {err:.3g}"


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _check_fwd_bwd(model: torch.nn.Module, compiled, x: torch.Tensor) -> None:
    """Compiled model (or loss-producing function) vs an eager deep copy: output, dx, param grads."""
    eager = copy.deepcopy(model)
    xc = x.clone().requires_grad_()
    xe = x.clone().requires_grad_()
    yc = compiled(xc)
    ye = eager(xe)
    _close(yc, ye, "output")
    (yc.pow(2).sum() + yc.sum()).backward()
    (ye.pow(2).sum() + ye.sum()).backward()
    _close(xc.grad, xe.grad, "dx")
    gc, ge = _grads(model), _grads(eager)
    assert gc.keys() == ge.keys() and gc, (gc.keys(), ge.keys())
    for name in gc:
        _close(gc[name], ge[name], f"d{name}")


def _x(b: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, n, generator=g) * 2.4 - 1.2  # some points outside the grid range
    x[0, 0] = -1.0  # on a knot
    return x


def test_kanlinear_fullgraph():
    """KANLinear (reference path, BasisFeatures autograd.Function) compiles to one graph."""
    torch.manual_seed(0)
    model = KANLinear(3, 4, grid=4, k=3)
    compiled = torch.compile(model, fullgraph=True, backend=BACKEND)
    _check_fwd_bwd(model, compiled, _x(8, 3))


@pytest.mark.filterwarnings("ignore:Your compiler for AOTAutograd:UserWarning")
def test_kanlinear_traces_elementwise_basis():
    """Traced, the basis is the dense recursion: no lookup, gather or scatter in the forward or
    backward graph (those compile to scalar loops on CPU), only ops Inductor fuses."""
    from torch._dynamo.testing import AotEagerAndRecordGraphs

    torch.manual_seed(0)
    model = KANLinear(3, 4, grid=4, k=3)
    record = AotEagerAndRecordGraphs()
    _check_fwd_bwd(model, torch.compile(model, fullgraph=True, backend=record), _x(8, 3))
    code = record.fw_graphs[0].code + record.bw_graphs[0].code
    for op in ("scatter", "gather", "embedding", "index_select", "searchsorted"):
        assert op not in code, op


def test_kan_compiles():
    """A small KAN (default save_act=True: records, cache_data) compiles and matches eager.

    Not fullgraph: records (cache_data, acts) are Python-side state (see test_kan_fullgraph)."""
    model = KAN(width=[3, 4, 2], grid=3, k=3, seed=0)
    compiled = torch.compile(model, backend=BACKEND)
    _check_fwd_bwd(model, compiled, _x(8, 3, seed=1))
    # What attribution reads was recorded by the compiled forward too.
    assert len(model.acts) == 3 and len(model.edge_actscale) == 2 and model.cache_data.shape == (8, 3)


def test_kan_fullgraph():
    model = KAN(width=[3, 4, 2], grid=3, k=3, seed=0, save_act=False)
    compiled = torch.compile(model, fullgraph=True, backend=BACKEND)
    _check_fwd_bwd(model, compiled, _x(8, 3, seed=2))


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KANSWAP_TEST_INDUCTOR") != "1",
                    reason="Inductor's cold CPU compile takes 35-90 s; set KANSWAP_TEST_INDUCTOR=1")
def test_kanlinear_inductor():
    torch.manual_seed(0)
    model = KANLinear(3, 4, grid=4, k=3)
    compiled = torch.compile(model, fullgraph=True, backend="inductor")
    _check_fwd_bwd(model, compiled, _x(8, 3))


# -- the Triton layer as torch.library ops ------------------------------------------------------


def _bspline():
    pytest.importorskip("triton")
    from kanswap.kernels import bspline

    if bspline._OPS is None:
        pytest.skip("the kanswap ops are not registered")
    if bspline._INTERPRET != (not torch.cuda.is_available()):
        pytest.skip("kernels built for the other target (TRITON_INTERPRET set after import?)")
    return bspline


def _op_case(device: str, dtype=torch.float32):
    from kanswap.spline import uniform_grid

    g = torch.Generator().manual_seed(3)
    x = (torch.rand(6, 3, generator=g, dtype=torch.float64) * 2.4 - 1.2).to(dtype)
    grid = uniform_grid(3, 4, 3, dtype=dtype)
    weight = torch.randn(3, 8, 5, generator=g, dtype=torch.float64).to(dtype)
    dy = torch.randn(6, 5, generator=g, dtype=torch.float64).to(dtype)
    return (t.to(device) for t in (x, grid, weight, dy))


def _opcheck(device: str) -> None:
    bspline = _bspline()
    fwd, bwd = bspline._ops()
    x, grid, weight, dy = _op_case(device)
    x.requires_grad_()
    weight.requires_grad_()
    torch.library.opcheck(fwd, (x, grid, weight, 3, None))
    torch.library.opcheck(bwd, (dy, x.detach(), grid, weight.detach(), 3, True, True, None))
    torch.library.opcheck(bwd, (dy, x.detach(), grid, weight.detach(), 3, False, True, None))


def test_opcheck_interpreter():
    """The ops' schema, fake impl, autograd registration and AOT tracing, on CPU tensors through
    the Triton interpreter (where they are registered as opaque custom ops)."""
    if torch.cuda.is_available():
        pytest.skip("CPU-interpreter variant; see test_opcheck_cuda")
    _opcheck("cpu")


@pytest.mark.cuda
def test_opcheck_cuda():
    _opcheck("cuda")


def _kernel_layer_compiles(device: str, backend=None) -> tuple[str, str]:
    """Compile KANLinear(backend='triton') with fullgraph; returns the AOT forward and backward
    graph code when ``backend`` is None (aot_eager, recorded)."""
    _bspline()
    from torch._dynamo.testing import AotEagerAndRecordGraphs

    torch.manual_seed(0)
    model = KANLinear(3, 4, grid=4, k=3, backend="triton", device=device)
    record = AotEagerAndRecordGraphs() if backend is None else None
    compiled = torch.compile(model, fullgraph=True, backend=record or backend)
    _check_fwd_bwd(model, compiled, _x(8, 3).to(device))
    if record is None:
        return "", ""
    assert len(record.fw_graphs) == 1 and len(record.bw_graphs) == 1
    return record.fw_graphs[0].code, record.bw_graphs[0].code


@pytest.mark.filterwarnings("ignore:Your compiler for AOTAutograd:UserWarning")
def test_kernel_layer_compiles_interpreter():
    """KANLinear(backend='triton') under torch.compile(fullgraph=True): kan_linear switches to the
    registered op while tracing; in the interpreter it stays one opaque node."""
    if torch.cuda.is_available():
        pytest.skip("CPU-interpreter variant; see test_kernel_layer_compiles_cuda")
    fw, bw = _kernel_layer_compiles("cpu")
    assert "kanswap.kan_linear_fwd" in fw and "kanswap.kan_linear_bwd" in bw, (fw, bw)


@pytest.mark.cuda
@pytest.mark.filterwarnings("ignore:Your compiler for AOTAutograd:UserWarning")
def test_kernel_layer_compiles_cuda():
    """On CUDA the op is a triton_op: AOTAutograd decomposes it into the wrap_triton launches
    (so Inductor sees the user kernels), and Inductor compiles the graph."""
    fw, bw = _kernel_layer_compiles("cuda")
    assert "triton_kernel_wrapper_functional" in fw and "triton_kernel_wrapper_functional" in bw, (fw, bw)
    torch._dynamo.reset()
    _kernel_layer_compiles("cuda", "inductor")
