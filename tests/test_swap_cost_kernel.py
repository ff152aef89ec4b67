"""Triton swap-cost kernels against the kanswap.swap reference.

Without CUDA the kernels run on CPU tensors under ``TRITON_INTERPRET=1`` (set here before triton is
first imported; if some other module imported triton first without it, the interpreted tests skip).
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

triton = pytest.importorskip("triton")

from kanswap.kernels import swap_cost  # noqa: E402

from kanswap import swap  # noqa: E402


def _interpreted() -> bool:
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(swap_cost._swap_cost_m_kernel, InterpretedFunction)


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double().cpu(), want.double().cpu()
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-30))


def check(n_prev: int, n: int, n_next: int, device: str, seed: int = 0, dtype=torch.float32) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n_prev, n, generator=g, dtype=torch.float64)
    b = torch.rand(n, n_next, generator=g, dtype=torch.float64)
    m_ref = swap.placement_cost(a, b)
    d_ref = swap.swap_deltas(m_ref)
    dmin_ref, _ = swap.best_partners(m_ref)

    out = (
        torch.full((n, n), float("nan"), device=device),
        torch.full((n,), float("nan"), device=device),
        torch.full((n,), -1, dtype=torch.int64, device=device),
    )
    m, dmin, amin = swap_cost.swap_cost_fwd(a.to(device, dtype), b.to(device, dtype), out=out)
    assert m is out[0] and dmin is out[1] and amin is out[2]
    assert not torch.isnan(m).any() and not torch.isnan(dmin).any() and (amin >= 0).all()
    assert rel_err(m, m_ref) <= 2e-6
    scale = float(m_ref.abs().max().clamp_min(1e-30))
    assert float((dmin.double().cpu() - dmin_ref).abs().max()) <= 4e-6 * scale
    # the chosen partner is (up to fp32 noise) a best one, and j = i gives delta 0 so dmin <= 0
    amin = amin.cpu()
    chosen = d_ref.gather(1, amin[:, None]).squeeze(1)
    assert float((chosen - dmin_ref).abs().max()) <= 8e-6 * scale
    assert (dmin <= 0).all()


SIZES = [
    pytest.param(1, 1, 1, id="n1"),
    pytest.param(2, 2, 2, id="n2"),
    pytest.param(7, 7, 7, id="n7"),
    pytest.param(33, 33, 33, id="n33"),
    pytest.param(100, 100, 100, id="n100"),
    pytest.param(5, 1, 3, id="nonsquare_5_1_3"),
    pytest.param(17, 40, 3, id="nonsquare_17_40_3"),
    pytest.param(64, 33, 70, id="nonsquare_64_33_70"),
    pytest.param(1, 9, 1, id="nonsquare_1_9_1"),
]


@pytest.mark.parametrize(("n_prev", "n", "n_next"), SIZES)
def test_kernel_matches_reference(n_prev, n, n_next):
    if torch.cuda.is_available() and not _interpreted():
        check(n_prev, n, n_next, "cuda")
    elif _interpreted():
        check(n_prev, n, n_next, "cpu")
    else:
        pytest.skip("triton was imported without TRITON_INTERPRET=1 and there is no CUDA")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16], ids=str)
def test_kernel_input_dtypes_and_strides(dtype):
    device = "cpu" if _interpreted() else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA and not interpreted")
    g = torch.Generator().manual_seed(1)
    a = torch.rand(20, 11, generator=g, dtype=torch.float64).to(dtype)
    b = torch.rand(13, 11, generator=g, dtype=torch.float64).to(dtype).T  # non-contiguous (11, 13)
    m, dmin, amin = swap_cost.swap_cost_fwd(a.to(device), b.to(device))
    m_ref = swap.placement_cost(a.double(), b.double())
    assert m.dtype == torch.float32 and amin.dtype == torch.int64
    assert rel_err(m, m_ref) <= 2e-6


def test_ties_pick_lowest_partner():
    device = "cpu" if _interpreted() else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA and not interpreted")
    # all-zero scores: every delta is exactly 0, the first minimum is j = 0 for every row
    m, dmin, amin = swap_cost.swap_cost_fwd(torch.zeros(3, 40, device=device), torch.zeros(40, 5, device=device))
    assert amin.tolist() == [0] * 40 and dmin.abs().max() == 0 and m.abs().max() == 0


def test_dispatch_cpu_uses_reference():
    a = torch.rand(6, 5, dtype=torch.float64)
    b = torch.rand(5, 4, dtype=torch.float64)
    m, dmin, amin = swap_cost.placement_cost_and_partners(a, b)
    assert m.dtype == torch.float64
    torch.testing.assert_close(m, swap.placement_cost(a, b))
    want = swap.best_partners(swap.placement_cost(a, b))
    torch.testing.assert_close(dmin, want[0])
    assert torch.equal(amin, want[1])
    with pytest.raises(ValueError, match="negative"):
        swap_cost.placement_cost_and_partners(-a, b)


def test_launcher_errors():
    with pytest.raises(ValueError, match="expected a_in"):
        swap_cost.swap_cost_fwd(torch.rand(3, 4), torch.rand(5, 2))
    with pytest.raises(ValueError, match="out must be"):
        swap_cost.swap_cost_fwd(
            torch.rand(3, 4), torch.rand(4, 2), out=(torch.empty(3, 3), torch.empty(3), torch.empty(3))
        )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    ("n_prev", "n", "n_next"),
    [
        pytest.param(64, 1024, 1024, id="1024_in64"),
        pytest.param(1024, 1024, 10, id="1024_out10"),
        pytest.param(300, 777, 513, id="nonsquare_300_777_513"),
        pytest.param(2048, 2048, 2048, id="n2048"),
    ],
)
def test_kernel_cuda_large(n_prev, n, n_next):
    if _interpreted():
        pytest.skip("triton is in interpreter mode in this process")
    check(n_prev, n, n_next, "cuda", seed=3)
    # dispatch goes to the kernel for CUDA tensors
    a = torch.rand(n_prev, n, device="cuda")
    b = torch.rand(n, n_next, device="cuda")
    m, _, _ = swap_cost.placement_cost_and_partners(a, b)
    assert m.dtype == torch.float32 and m.is_cuda
    assert rel_err(m, swap.placement_cost(a.double(), b.double())) <= 2e-6
