"""kanswap.spline against pykan's kan.spline: basis, derivative, grids, fits."""

import pytest
import torch
from kan import spline as pk

from kanswap.spline import (
    bspline_basis,
    bspline_local,
    coef_to_curve,
    curve_to_coef,
    extend_grid,
    grid_from_samples,
    uniform_grid,
)

DTYPES = [pytest.param(torch.float64, id="f64"), pytest.param(torch.float32, id="f32")]
KS = [pytest.param(k, id=f"k{k}") for k in (1, 2, 3, 5)]
GS = [pytest.param(g, id=f"G{g}") for g in (1, 3, 5)]
NS = [pytest.param(n, id=f"n{n}") for n in (1, 7, 33)]
# Basis against pykan's B_batch (values in [0, 1]): largest measured error over these tests 1.3e-15
# in float64 and 4e-7 in float32 (on sample grids; 2.4e-7 on uniform ones).
BASIS_ATOL = {torch.float64: 1e-14, torch.float32: 1e-6}


def _grid(n, G, k, dtype, lo=-1.0, hi=1.0):
    return uniform_grid(n, G, k, (lo, hi), dtype=dtype)


def _points(grid, B, seed, dtype):
    """Random points over the whole extended grid, plus every knot and points beyond both ends."""
    gen = torch.Generator().manual_seed(seed)
    n = grid.shape[0]
    lo, hi = grid[:, 0], grid[:, -1]
    span = hi - lo
    x = lo + (torch.rand(B, n, generator=gen, dtype=dtype) * 1.4 - 0.2) * span  # 20% outside each side
    return torch.cat([x, grid.t(), (lo - 0.5 * span)[None], (hi + 0.5 * span)[None]], dim=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("G", GS)
@pytest.mark.parametrize("k", KS)
def test_basis_matches_pykan(k, G, dtype):
    grid = _grid(7, G, k, dtype)
    x = _points(grid, 33, seed=100 * k + G, dtype=dtype)
    ours = bspline_basis(x, grid, k)
    ref = pk.B_batch(x, grid, k=k)
    assert ours.shape == ref.shape == (x.shape[0], 7, G + k)
    assert ours.dtype == dtype
    torch.testing.assert_close(ours, ref.to(dtype), atol=BASIS_ATOL[dtype], rtol=0)


@pytest.mark.parametrize("k", KS)
def test_basis_zero_at_and_beyond_outer_knots(k):
    grid = _grid(3, 5, k, torch.float64)
    x = torch.stack([grid[:, 0], grid[:, -1], grid[:, 0] - 1e3, grid[:, -1] + 1e3,
                     grid[:, -1] + 1e-12])
    ours = bspline_basis(x, grid, k)
    assert torch.all(ours == 0)
    assert torch.equal(ours, pk.B_batch(x, grid, k=k))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", NS)
def test_basis_on_non_uniform_sample_grid(n, k, dtype):
    gen = torch.Generator().manual_seed(n * 10 + k)
    samples = (torch.randn(101, n, generator=gen, dtype=torch.float64) ** 3).to(dtype)
    grid = grid_from_samples(samples, 5, k, grid_eps=0.02)
    x = _points(grid, 40, seed=k, dtype=dtype)
    x = torch.cat([x, samples])  # samples include the quantile knots exactly
    torch.testing.assert_close(bspline_basis(x, grid, k), pk.B_batch(x, grid, k=k).to(dtype),
                               atol=BASIS_ATOL[dtype], rtol=0)


@pytest.mark.parametrize("G", GS)
@pytest.mark.parametrize("k", KS)
def test_derivative_matches_autograd_of_pykan(k, G):
    grid = _grid(7, G, k, torch.float64)
    gen = torch.Generator().manual_seed(k * 7 + G)
    # random points not on knots (the derivative of a C^{k-1} spline is defined there for k>=2 only)
    x = grid[:, 0] + torch.rand(33, 7, generator=gen, dtype=torch.float64) * (grid[:, -1] - grid[:, 0])
    values, first, dvalues = bspline_local(x, grid, k, derivative=True)
    assert dvalues is not None and dvalues.shape == values.shape == (33, 7, k + 1)
    # dense derivative from the local one
    from kanswap.spline import scatter_local

    ours = scatter_local(dvalues, first, G + k)
    xr = x.clone().requires_grad_(True)
    ref = torch.autograd.functional.jacobian(lambda t: pk.B_batch(t, grid, k=k).sum(0), xr)
    # jacobian (n, G+k, B, n): d basis[., i, m] / d x[b, i]
    ref = torch.einsum("imbi->bim", ref)
    torch.testing.assert_close(ours, ref, atol=1e-9, rtol=1e-9)
    assert bspline_local(x, grid, k)[2] is None


@pytest.mark.parametrize("G", GS)
@pytest.mark.parametrize("k", KS)
def test_partition_of_unity_inside(k, G):
    grid = _grid(33, G, k, torch.float64, lo=-2.0, hi=3.0)
    gen = torch.Generator().manual_seed(G + 31 * k)
    x = -2.0 + 5.0 * torch.rand(50, 33, generator=gen, dtype=torch.float64)
    x = torch.cat([x, torch.full((1, 33), -2.0), torch.full((1, 33), 3.0)])  # both ends included
    torch.testing.assert_close(bspline_basis(x, grid, k).sum(-1), torch.ones(52, 33, dtype=torch.float64),
                               atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [pytest.param(k, id=f"k{k}") for k in (0, 1, 3, 5)])
def test_extend_grid_matches_pykan(k, dtype):
    gen = torch.Generator().manual_seed(k)
    base = torch.sort(torch.randn(7, 6, generator=gen, dtype=dtype), dim=1).values
    ours = extend_grid(base, k)
    ref = pk.extend_grid(base, k_extend=k)
    assert ours.shape == (7, 6 + 2 * k)
    torch.testing.assert_close(ours, ref, atol=1e-6 if dtype == torch.float32 else 1e-14, rtol=0)


def test_extend_grid_example_from_spec():
    g = uniform_grid(1, 5, 3, (-1, 1), dtype=torch.float64)
    ref = torch.tensor([[-2.2, -1.8, -1.4, -1, -0.6, -0.2, 0.2, 0.6, 1, 1.4, 1.8, 2.2]], dtype=torch.float64)
    torch.testing.assert_close(g, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("B", [pytest.param(b, id=f"B{b}") for b in (4, 7, 33, 200)])
@pytest.mark.parametrize("k", KS)
def test_curve_to_coef_is_min_norm_lstsq(k, B):
    """B=4 and 7 are under-determined for G=5 (K=G+k unknowns): the minimum-norm solution."""
    G, n, out = 5, 3, 2
    gen = torch.Generator().manual_seed(B * 11 + k)
    grid = _grid(n, G, k, torch.float64)
    x = torch.rand(B, n, generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.randn(B, n, out, generator=gen, dtype=torch.float64)
    coef = curve_to_coef(x, y, grid, k)
    assert coef.shape == (n, out, G + k)
    mat = bspline_basis(x, grid, k)
    for i in range(n):
        expect = torch.linalg.pinv(mat[:, i, :]) @ y[:, i, :]  # (K, out)
        torch.testing.assert_close(coef[i].t(), expect, atol=1e-9, rtol=1e-9)


def test_curve_to_coef_bitwise_deterministic():
    gen = torch.Generator().manual_seed(3)
    grid = _grid(33, 5, 3, torch.float32)
    x = torch.rand(101, 33, generator=gen) * 2 - 1
    y = torch.randn(101, 33, 7, generator=gen)
    first = curve_to_coef(x, y, grid, 3)
    for _ in range(5):
        assert torch.equal(curve_to_coef(x, y, grid, 3), first)


@pytest.mark.parametrize("k", KS)
def test_curve_to_coef_roundtrip_recovers_spline(k):
    G = 5
    gen = torch.Generator().manual_seed(k)
    grid = _grid(7, G, k, torch.float64)
    coef = torch.randn(7, 2, G + k, generator=gen, dtype=torch.float64)
    x = torch.rand(300, 7, generator=gen, dtype=torch.float64) * 2 - 1
    y = coef_to_curve(x, grid, coef, k)
    torch.testing.assert_close(curve_to_coef(x, y, grid, k), coef, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(y, pk.coef2curve(x, grid, coef, k), atol=1e-12, rtol=0)


@pytest.mark.parametrize("k", KS)
def test_repeated_knots_finite_and_partition_of_unity(k):
    """Degenerate grids (binary data with grid_eps=0 puts several knots on 0 and 1): kanswap's 0/0:=0
    convention keeps the basis finite and a partition of unity inside; pykan's nan_to_num after
    each order zeroes whole functions here, so equality with pykan is not asserted."""
    samples = torch.tensor([[0.0], [0.0], [0.0], [1.0], [1.0], [1.0]], dtype=torch.float64)
    grid = grid_from_samples(samples, 3, k, grid_eps=0.0)  # interior knots 0, 0, 1, 1
    assert (grid[:, 1:] - grid[:, :-1] == 0).any()
    x = torch.cat([torch.linspace(0, 1, 41, dtype=torch.float64), torch.tensor([0.0, 1.0])])[:, None]
    basis = bspline_basis(x, grid, k)
    assert torch.isfinite(basis).all()
    assert (basis >= 0).all()
    torch.testing.assert_close(basis.sum(-1), torch.ones(43, 1, dtype=torch.float64), atol=1e-12, rtol=0)


def test_grid_from_samples_matches_pykan_layer():
    """grid_from_samples is pykan's update_grid_from_samples grid (quantiles mixed by grid_eps)."""
    import kan

    torch.manual_seed(0)
    layer = kan.KANLayer(in_dim=7, out_dim=1, num=5, k=3)
    x = torch.randn(101, 7)
    layer.update_grid_from_samples(x)
    torch.testing.assert_close(grid_from_samples(x, 5, 3, 0.02), layer.grid.data, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [pytest.param(k, id=f"k{k}") for k in (1, 2, 3)])
@pytest.mark.parametrize("kind", ["uniform", "samples"])
def test_traced_tables_equal_eager_tables(kind, k, dtype):
    """torch.compile builds the per-interval tables in the graph, fitted from de Boor's values on
    every grid (no branch on the grid's values); on uniform grids eager uses the exact uniform
    matrix instead. Both give the same window values (measured: 2.4e-7 in float32, 1.6e-15 in
    float64) and the same columns."""
    from kanswap.spline import _GridInfo, window_eval

    gen = torch.Generator().manual_seed(7 * k)
    if kind == "uniform":
        grid = _grid(9, 5, k, dtype)
    else:
        grid = grid_from_samples(torch.randn(101, 9, generator=gen, dtype=dtype) ** 3, 5, k, grid_eps=0.02)
    x = _points(grid, 65, seed=k, dtype=dtype)
    eager, traced = _GridInfo(grid, k), _GridInfo(grid, k, traced=True)
    assert (eager.coef is not None) and (traced.coef is not None)
    ve, jfe, _ = window_eval(x, eager)
    vt, jft, _ = window_eval(x, traced)
    assert torch.equal(jfe, jft) and torch.equal(eager.cols, traced.cols)
    tol = 2e-6 if dtype == torch.float32 else 2e-14
    torch.testing.assert_close(vt, ve, atol=tol, rtol=0)


@pytest.mark.parametrize("G", [pytest.param(g, id=f"G{g}") for g in (5, 40)])
def test_window_columns_distinct_and_inside_basis(G):
    """Every point's k+1 window columns are distinct existing functions (the forward scatters
    without adding), also with a searchsorted interval index (G = 40: more knots than counted)."""
    k = 3
    grid = _grid(5, G, k, torch.float32)
    x = _points(grid, 200, seed=G, dtype=torch.float32)
    values, first, _ = bspline_local(x, grid, k)
    assert first.min() >= 0 and first.max() <= G - 1
    torch.testing.assert_close(bspline_basis(x, grid, k), pk.B_batch(x, grid, k=k), atol=1e-6, rtol=0)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("kind", ["uniform", "samples", "repeated"])
def test_dense_recursion_equals_local_basis(kind, k):
    """bspline_dense (the traced route) gives the local basis and its derivative, float64, also with
    repeated knots (0/0 := 0) and outside the grid (measured: 4.7e-15 values, 2.5e-14 derivatives)."""
    from kanswap.spline import bspline_dense, scatter_local

    gen = torch.Generator().manual_seed(k + 3)
    if kind == "uniform":
        grid = _grid(7, 5, k, torch.float64)
    elif kind == "samples":
        grid = grid_from_samples(torch.randn(101, 7, generator=gen, dtype=torch.float64) ** 3, 5, k, grid_eps=0.02)
    else:
        grid = _grid(7, 5, k, torch.float64)
        grid[:, k + 2] = grid[:, k + 3]
    x = _points(grid, 50, seed=k, dtype=torch.float64)
    values, dvalues = bspline_dense(x, grid, k, derivative=True)
    torch.testing.assert_close(values, bspline_basis(x, grid, k), atol=5e-14, rtol=0)
    _, first, dlocal = bspline_local(x, grid, k, derivative=True)
    # at knots the derivative of a k = 1 spline jumps and both sides are one-sided: compare off knots
    off = ~(x.unsqueeze(-1) == grid.unsqueeze(0)).any(-1, keepdim=True)
    torch.testing.assert_close(dvalues * off, scatter_local(dlocal, first, grid.shape[1] - 1 - k) * off,
                               atol=3e-13, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [pytest.param(k, id=f"k{k}") for k in (1, 2, 3)])
def test_large_uniform_input_path_equals_pykan_and_small_path(k, dtype):
    """Large inputs (over 2^16 local values): values equal pykan's, and values and derivatives equal
    those of the same points evaluated in small chunks."""
    grid = _grid(9, 5, k, dtype)
    x = _points(grid, 4000, seed=k, dtype=dtype)  # 4000 x 9 x (k+1) > 2^16 local values
    assert x.numel() * (k + 1) > 1 << 16
    torch.testing.assert_close(bspline_basis(x, grid, k), pk.B_batch(x, grid, k=k).to(dtype),
                               atol=BASIS_ATOL[dtype], rtol=0)
    values, first, dvalues = bspline_local(x, grid, k, derivative=True)
    parts = [bspline_local(chunk, grid, k, derivative=True) for chunk in x.split(100)]  # small path
    assert torch.equal(first, torch.cat([p[1] for p in parts]))
    # the two paths evaluate the same polynomials in another order: largest difference measured
    # 1.1e-16 (float64) / 6e-8 (float32) on values, 2.7e-16 / 1.4e-7 relative on derivatives
    tol = 3e-15 if dtype == torch.float64 else 1.5e-6
    torch.testing.assert_close(values, torch.cat([p[0] for p in parts]), atol=tol, rtol=0)
    dsmall = torch.cat([p[2] for p in parts])
    torch.testing.assert_close(dvalues, dsmall, atol=tol * dsmall.abs().max().item(), rtol=0)
