"""Property-based tests (hypothesis): invariants that must hold on every input, not only on the
hand-picked cases of the other files.

- the B-spline basis equals pykan's ``B_batch`` on random grids, uniform or not, at random points,
  at every knot exactly and outside the grid; it is a partition of unity inside the grid, also with
  repeated knots, and zero outside;
- its derivative equals autograd through pykan's basis;
- reordering the hidden nodes of a KAN or an MLP (any permutation, any swap) leaves the function
  unchanged.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kan import spline as pk

from kanswap import KAN, MLP
from kanswap.spline import bspline_basis, bspline_local, scatter_local, uniform_grid

# Each example is a few ms; 30 examples per property keep this file at a few seconds of CPU.
PROFILE = settings(max_examples=30, deadline=None, derandomize=True)

# Tolerances ~10x the largest errors measured over 500 examples per property (150 for the models):
# basis vs pykan, float64, random grids 8.9e-15 and uniform grids 6.7e-15; float32 uniform grids
# 7.2e-7; partition of unity (repeated knots included) 4.0e-14; derivative vs autograd of pykan
# 1.0e-13 relative to the largest derivative; reordering hidden nodes (float64 rounding of a sum
# taken in another order) 6.5e-16 relative.
BASIS_ATOL_F64 = 1e-13
BASIS_ATOL_F32 = 7e-6
UNITY_ATOL_F64 = 4e-13
DERIV_REL_F64 = 1e-12
PERM_REL_F64 = 1e-14


@st.composite
def grids(draw, repeated: bool = False):
    """(grid (n, G + 2k + 1) float64, k, G): every row its own sorted knots with spacings in
    [0.05, 1] (ratio <= 20, so pykan's division by knot spans stays well conditioned), shifted by
    up to 3; with ``repeated``, some spacings are exactly 0."""
    k = draw(st.integers(1, 5))
    G = draw(st.integers(1, 6))
    n = draw(st.integers(1, 3))
    P = G + 2 * k + 1
    spacing = st.floats(0.05, 1.0)
    if repeated:
        spacing = st.one_of(spacing, st.just(0.0))
    rows = []
    for _ in range(n):
        steps = draw(st.lists(spacing, min_size=P - 1, max_size=P - 1))
        start = draw(st.floats(-3.0, 3.0))
        knots = [start]
        for s in steps:
            knots.append(knots[-1] + s)
        rows.append(knots)
    return torch.tensor(rows, dtype=torch.float64), k, G


def _points(grid: torch.Tensor, fractions: list[float]) -> torch.Tensor:
    """Points at the given fractions of each row's span (fractions < 0 or > 1 are outside the grid),
    then every knot exactly, then points far outside on both sides: (len(fractions) + P + 2, n)."""
    lo, hi = grid[:, 0], grid[:, -1]
    f = torch.tensor(fractions, dtype=grid.dtype)[:, None]
    far = torch.stack([lo - 1e3, hi + 1e3])
    return torch.cat([lo + f * (hi - lo), grid.t(), far])


FRACTIONS = st.lists(st.floats(-0.5, 1.5), min_size=1, max_size=12)


@PROFILE
@given(grids(), FRACTIONS)
def test_basis_equals_pykan_on_random_grids(case, fractions):
    grid, k, G = case
    x = _points(grid, fractions)
    ours = bspline_basis(x, grid, k)
    assert ours.shape == (x.shape[0], grid.shape[0], G + k)
    torch.testing.assert_close(ours, pk.B_batch(x, grid, k=k), atol=BASIS_ATOL_F64, rtol=0)


@PROFILE
@given(st.integers(1, 5), st.integers(1, 8), st.integers(1, 4), st.floats(-3.0, 3.0), st.floats(0.1, 5.0),
       FRACTIONS, st.sampled_from([torch.float64, torch.float32]))
def test_basis_equals_pykan_on_uniform_grids(k, G, n, lo, width, fractions, dtype):
    """pykan's own grids (uniform_grid), where kanswap takes its closed-form path."""
    grid = uniform_grid(n, G, k, (lo, lo + width), dtype=dtype)
    x = _points(grid, fractions)
    atol = BASIS_ATOL_F64 if dtype == torch.float64 else BASIS_ATOL_F32
    torch.testing.assert_close(bspline_basis(x, grid, k), pk.B_batch(x, grid, k=k), atol=atol, rtol=0)


@PROFILE
@given(grids(repeated=True), st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=12))
def test_basis_partition_of_unity(case, fractions):
    """Inside [g_k, g_{G+k}) the G + k functions sum to 1 (repeated knots included: a zero span
    contributes 0, not NaN); they are >= 0 everywhere and all 0 outside [g_0, g_{P-1})."""
    grid, k, G = case
    lo, hi = grid[:, k], grid[:, G + k]
    f = torch.tensor(fractions, dtype=grid.dtype)[:, None]
    inner_knots = grid[:, k:G + k].t()  # the knots inside, each hit exactly
    x = torch.cat([lo + f * (hi - lo), inner_knots])
    x = torch.minimum(x, hi.nextafter(torch.full_like(hi, -torch.inf)))  # keep x < g_{G+k}
    keep = (hi > lo)  # rows whose inner range is not a single point
    basis = bspline_basis(x, grid, k)
    assert torch.isfinite(basis).all() and (basis >= 0).all()
    sums = basis.sum(-1)[:, keep]
    torch.testing.assert_close(sums, torch.ones_like(sums), atol=UNITY_ATOL_F64, rtol=0)
    outside = torch.stack([grid[:, 0] - 1.0, grid[:, -1], grid[:, -1] + 1.0])
    assert torch.equal(bspline_basis(outside, grid, k), torch.zeros(3, grid.shape[0], G + k, dtype=grid.dtype))


@PROFILE
@given(grids(), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12))
def test_derivative_equals_autograd_of_pykan(case, fractions):
    """Points off the knots: the derivative of the local basis (the hand-written backward's input)
    equals autograd through pykan's recursion."""
    grid, k, G = case
    x = _points(grid, fractions)[: len(fractions)]
    on_knot = (x[:, :, None] == grid[None]).any(-1).any(-1)
    x = x[~on_knot]
    if x.shape[0] == 0:
        return
    values, first, dvalues = bspline_local(x, grid, k, derivative=True)
    ours = scatter_local(dvalues, first, G + k)
    jac = torch.autograd.functional.jacobian(lambda t: pk.B_batch(t, grid, k=k).sum(0), x)
    ref = torch.einsum("imbi->bim", jac)
    scale = max(ref.abs().max().item(), 1.0)
    assert (ours - ref).abs().max().item() <= DERIV_REL_F64 * scale


def _randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """model in float64 with every parameter but masks and grids redrawn, so that no two hidden
    nodes are alike and a wrong reordering shows in the output."""
    gen = torch.Generator().manual_seed(seed)
    model = model.double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("mask") or name.endswith("grid"):
                continue
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5 + (1.0 if "scale" in name else 0.0))
    return model


def _perm(draw, n: int) -> list[int]:
    return draw(st.permutations(list(range(n))))


@st.composite
def kan_cases(draw):
    """A KAN with 1-2 hidden layers of 1-4 sum nodes and 0-2 mult nodes, and one reordering: a
    permutation of one layer's sum nodes and of its mult nodes."""
    n_in = draw(st.integers(1, 3))
    hidden = [[draw(st.integers(1, 4)), draw(st.integers(0, 2))] for _ in range(draw(st.integers(1, 2)))]
    width = [n_in, *hidden, draw(st.integers(1, 2))]
    l = draw(st.integers(1, len(hidden)))
    n_sum, n_mult = hidden[l - 1]
    perm = _perm(draw, n_sum) + [n_sum + i for i in _perm(draw, n_mult)]
    return width, l, perm, draw(st.integers(0, 2**16))


@PROFILE
@given(kan_cases())
def test_kan_function_unchanged_by_any_permutation(case):
    width, l, perm, seed = case
    model = _randomised(KAN(width=width, grid=3, seed=0), seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(17, width[0], generator=gen, dtype=torch.float64) * 2.4 - 1.2  # some outside the grid
    before = model(x).detach()
    model.permute_layer(l, perm)
    after = model(x).detach()
    assert (after - before).abs().max().item() <= PERM_REL_F64 * max(before.abs().max().item(), 1.0)


@PROFILE
@given(kan_cases(), st.data())
def test_kan_function_unchanged_by_any_swap(case, data):
    width, l, _, seed = case
    n_sum = width[l][0]
    i, j = data.draw(st.integers(0, n_sum - 1)), data.draw(st.integers(0, n_sum - 1))
    model = _randomised(KAN(width=width, grid=3, seed=0), seed)
    x = torch.rand(9, width[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
    before = model(x).detach()
    state = {name: t.clone() for name, t in model.state_dict().items()}
    model.swap(l, i, j, log_history=False)
    after = model(x).detach()
    assert (after - before).abs().max().item() <= PERM_REL_F64 * max(before.abs().max().item(), 1.0)
    if i != j:  # the swap moved something: the layer's incoming coefficients changed places
        coef = f"act_fun.{l - 1}.coef"
        assert torch.equal(model.state_dict()[coef][:, i], state[coef][:, j])


@PROFILE
@given(st.lists(st.integers(1, 6), min_size=3, max_size=5), st.data(), st.integers(0, 2**16))
def test_mlp_function_unchanged_by_any_permutation(width, data, seed):
    model = _randomised(MLP(width, seed=0), seed)
    x = torch.randn(11, width[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    before = model(x).detach()
    l = data.draw(st.integers(1, len(width) - 2))
    model.permute_layer(l, data.draw(st.permutations(list(range(width[l])))))
    i, j = data.draw(st.integers(0, width[l] - 1)), data.draw(st.integers(0, width[l] - 1))
    model.swap(l, i, j)
    after = model(x).detach()
    assert (after - before).abs().max().item() <= PERM_REL_F64 * max(before.abs().max().item(), 1.0)


@pytest.mark.parametrize("width", [[2, 3, 1], [2, [2, 2], 1]])
def test_permutation_check_would_fail_on_a_wrong_reordering(width):
    """The invariance tests can fail: permuting only a layer's incoming edges (not the outgoing
    ones) changes the function of a randomised model."""
    model = _randomised(KAN(width=width, grid=3, seed=0), 7)
    x = torch.rand(9, 2, dtype=torch.float64)
    before = model(x).detach()
    with torch.no_grad():
        layer = model.act_fun[0]
        for name in ("coef", "scale_base", "scale_sp"):
            t = getattr(layer, name)
            t.copy_(t[:, [1, 0] + list(range(2, t.shape[1]))])
    assert (model(x).detach() - before).abs().max().item() > 1e-3
