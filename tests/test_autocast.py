"""Mixed precision: torch.autocast around KANLinear / KAN, and bf16 through the Triton layer.

Errors are relative to the fp32 result: max |a - ref| / max |ref| over each tensor (output, dx and
every parameter gradient). Bounds, in units of bf16's epsilon 2^-8 = 3.9e-3:

- ``TOL_AUTOCAST = 2e-2`` (~5 eps): the reference path under autocast. The basis is evaluated in
  fp32 (the parameters' dtype; autocast leaves elementwise ops alone), only the feature @ weight
  matmul runs in bf16 (operands rounded once, fp32 accumulation in oneDNN/cuBLAS). Measured
  4e-3 .. 9e-3 at the shapes below.
- ``TOL_BF16_MODEL = 3e-2`` (~8 eps): a model cast to bf16 (grid, parameters and input rounded to
  bf16) on the kernel path, fp32 accumulation inside the kernels; the rounding of the knots moves
  the basis functions too. Measured up to 1.0e-2 (interpreter).
- ``TOL_BF16_KERNEL = 1e-2``: the kernel on bf16 operands against the fp32 reference on the same
  (bf16-rounded) operands: only the kernel's bf16 feature rounding and output rounding remain.
  Measured up to 7.8e-3 (interpreter).
- ``TOL_KERNEL32``: the fp32 kernel path under autocast against the fp32 reference path without it.
"""

from __future__ import annotations

import copy

import pytest
import torch

from kanswap.kan import KAN
from kanswap.layer import KANLinear

TOL_AUTOCAST = 2e-2
TOL_BF16_MODEL = 3e-2
TOL_BF16_KERNEL = 1e-2
# The fp32 kernel path (interpreter: IEEE fp32 products) against the fp32 reference path: measured
# 1.0e-7 .. 2.7e-7 over output, dx and the parameter gradients.
TOL_KERNEL32 = 3e-6


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    a, ref = a.detach().double(), ref.detach().double()
    assert torch.isfinite(a).all()
    scale = ref.abs().max().item()
    return (a - ref).abs().max().item() / (scale if scale > 0 else 1.0)


def run(model: torch.nn.Module, x: torch.Tensor, autocast: str | None = None):
    """Forward (under autocast on device ``autocast`` if given) and backward of a fixed loss;
    returns (y, dx, {param: grad}) and leaves the model's grads zeroed."""
    x = x.clone().requires_grad_()
    with torch.autocast(autocast or x.device.type, dtype=torch.bfloat16, enabled=autocast is not None):
        y = model(x)
    yf = y.float()
    (yf.pow(2).sum() + yf.sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return y, x.grad, grads


def assert_close(got, ref, tol: float) -> None:
    y, dx, g = got
    y0, dx0, g0 = ref
    errs = {"y": rel_err(y, y0), "dx": rel_err(dx, dx0)}
    assert g.keys() == g0.keys() and g0
    errs.update({f"d{n}": rel_err(g[n], g0[n]) for n in g0})
    bad = {k: v for k, v in errs.items() if v > tol}
    assert not bad, f"relative errors above {tol}: {bad} (all: {errs})"


def _x(b: int, n: int, device="cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(b, n, generator=g) * 2.4 - 1.2).to(device)


# -- reference path, CPU autocast ---------------------------------------------------------------


def test_kanlinear_autocast_cpu():
    torch.manual_seed(0)
    model = KANLinear(6, 5, grid=5, k=3, backend="reference")
    x = _x(64, 6)
    ref = run(model, x)
    got = run(model, x, autocast="cpu")
    assert got[0].dtype == torch.bfloat16  # the matmul ran under autocast
    assert got[1].dtype == torch.float32 and all(g.dtype == torch.float32 for g in got[2].values())
    assert_close(got, ref, TOL_AUTOCAST)


def test_kan_autocast_cpu():
    """A KAN: layer 0's bf16 output is promoted back to fp32 by the fp32 node affine
    (subnode_scale * y + subnode_bias), so every layer sees fp32 input."""
    model = KAN(width=[6, 5, 2], grid=5, k=3, seed=0)
    x = _x(64, 6)
    ref = run(model, x)
    got = run(model, x, autocast="cpu")
    assert_close(got, ref, TOL_AUTOCAST)


def test_stacked_kanlinear_autocast_cpu():
    """KANLinear as an nn.Linear drop-in: KANLinear -> KANLinear under autocast."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(KANLinear(6, 5, grid=5, k=3), KANLinear(5, 3, grid=5, k=3))
    x = _x(64, 6)
    ref = run(model, x)
    got = run(model, x, autocast="cpu")
    assert_close(got, ref, TOL_AUTOCAST)


# -- kernel path (Triton interpreter on CPU, compiled kernels on CUDA) --------------------------


def _bspline():
    pytest.importorskip("triton")
    from kanswap.kernels import bspline

    if bspline._INTERPRET != (not torch.cuda.is_available()):
        pytest.skip("kernels built for the other target (TRITON_INTERPRET set after import?)")
    return bspline


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def test_kernel_bf16_model():
    """A KANLinear cast to bf16 on backend='triton': bf16 in, bf16 out, fp32 accumulation."""
    _bspline()
    dev = _device()
    torch.manual_seed(0)
    model = KANLinear(6, 5, grid=5, k=3, backend="reference", device=dev)
    x = _x(64, 6, dev)
    ref = run(model, x)
    mb = copy.deepcopy(model).to(torch.bfloat16)
    mb.backend = "triton"
    got = run(mb, x.bfloat16())
    assert got[0].dtype == torch.bfloat16 and got[1].dtype == torch.bfloat16
    assert_close(got, ref, TOL_BF16_MODEL)


def test_kernel_bf16_vs_rounded_reference():
    """kan_linear on bf16 operands against the fp32 reference on the same rounded operands."""
    bspline = _bspline()
    from kanswap.functional import kan_linear_reference
    from kanswap.spline import uniform_grid

    dev = _device()
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(64, 6, generator=g) * 2.4 - 1.2).bfloat16().to(dev)
    grid = uniform_grid(6, 5, 3).bfloat16().to(dev)
    w = (torch.randn(6, 9, 5, generator=g) * 0.5).bfloat16().to(dev)
    dy = torch.randn(64, 5, generator=g).bfloat16().to(dev)

    def fwd_bwd(fn, dtype):
        xi = x.to(dtype).clone().requires_grad_()
        wi = w.to(dtype).clone().requires_grad_()
        y = fn(xi, grid.to(dtype), wi)
        y.backward(dy.to(dtype))
        return y, xi.grad, {"weight": wi.grad}

    got = fwd_bwd(lambda a, gr, b: bspline.kan_linear(a, gr, b, 3, backend="triton"), torch.bfloat16)
    ref = fwd_bwd(lambda a, gr, b: kan_linear_reference(a, gr, b, 3), torch.float32)
    assert got[0].dtype == torch.bfloat16
    assert_close(got, ref, TOL_BF16_KERNEL)


def test_kernel_path_under_cpu_autocast():
    """backend='triton' under autocast: neither the folded weight nor the kernel is an autocast
    op, so the layer runs in fp32 and matches the fp32 reference path without autocast to kernel
    precision: TOL_KERNEL32."""
    _bspline()
    if torch.cuda.is_available():
        pytest.skip("CPU-interpreter variant; see test_cuda_autocast")
    torch.manual_seed(0)
    model = KANLinear(6, 5, grid=5, k=3, backend="reference")
    x = _x(64, 6)
    ref = run(model, x)
    kernel = copy.deepcopy(model)
    kernel.backend = "triton"
    got = run(kernel, x, autocast="cpu")
    assert got[0].dtype == torch.float32
    assert_close(got, ref, TOL_KERNEL32)


@pytest.mark.cuda
def test_cuda_autocast():
    """KANLinear and KAN on CUDA (auto backend: the Triton layer) under autocast bf16."""
    torch.manual_seed(0)
    x = _x(256, 6, "cuda")
    for model in (KANLinear(6, 5, grid=5, k=3, device="cuda"),
                  KAN(width=[6, 5, 2], grid=5, k=3, seed=0, device="cuda")):
        ref = run(model, x)
        got = run(model, x, autocast="cuda")
        assert_close(got, ref, TOL_AUTOCAST)
