"""kanswap.functional against its definitions, in float64: folded weight, basis features and their
hand-written backward (checked against autograd), the reference layer, feature moments, edge std."""

import pytest
import torch
import torch.nn.functional as F

from kanswap.functional import (
    basis_features,
    basis_moments,
    edge_std,
    feature_moments,
    fold_weight,
    kan_linear_reference,
)
from kanswap.spline import bspline_basis, uniform_grid

D = torch.float64
BASE = {"silu": F.silu, "identity": lambda x: x, "zero": torch.zeros_like}
# Largest differences measured against the definitions (float64): features 0, layer output 1.8e-15,
# moments 4.2e-17, edge std and its gradient 2.2e-16. Tolerances ~10x (1e-15 where 0 was measured).


def _case(B=23, n_in=5, n_out=3, G=4, k=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    grid = uniform_grid(n_in, G, k, (-1.0, 1.0), dtype=D)
    x = torch.rand(B, n_in, generator=gen, dtype=D) * 3 - 1.5  # some points outside the grid
    x[0] = grid[:, k + 1]  # knots hit exactly
    K = G + k
    params = dict(coef=torch.randn(n_in, n_out, K, generator=gen, dtype=D),
                  scale_base=torch.randn(n_in, n_out, generator=gen, dtype=D),
                  scale_sp=torch.randn(n_in, n_out, generator=gen, dtype=D),
                  mask=(torch.rand(n_in, n_out, generator=gen, dtype=D) > 0.3).to(D))
    return x, grid, k, params


def test_fold_weight_is_the_definition():
    _, _, _, p = _case()
    w = fold_weight(p["coef"], p["scale_base"], p["scale_sp"], p["mask"])
    assert w.shape == (5, 8, 3)
    assert torch.equal(w[:, 0], p["mask"] * p["scale_base"])
    assert torch.equal(w[:, 1:], (p["mask"] * p["scale_sp"]).unsqueeze(1) * p["coef"].transpose(1, 2))


@pytest.mark.parametrize("base_fun", ["silu", "identity", "zero", "callable"])
def test_basis_features_columns(base_fun):
    x, grid, k, _ = _case()
    fun = (lambda t: torch.tanh(t) * 2) if base_fun == "callable" else base_fun
    feats = basis_features(x, grid, k, fun) if base_fun != "silu" else basis_features(x, grid, k)
    base = torch.tanh(x) * 2 if base_fun == "callable" else BASE[base_fun](x)
    assert feats.shape == (23, 5, 8)
    torch.testing.assert_close(feats[..., 0], base, atol=0, rtol=0)
    torch.testing.assert_close(feats[..., 1:], bspline_basis(x, grid, k), atol=1e-15, rtol=0)


@pytest.mark.parametrize("base_fun", ["silu", "identity", "zero", "callable"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_basis_features_backward_equals_autograd(base_fun, k):
    """The hand-written backward against torch.autograd.gradcheck's numerical Jacobian (float64),
    on points off the knots (the basis of order k is C^{k-1} there)."""
    x, grid, _, _ = _case(B=7, n_in=3, G=3, k=k, seed=k)
    grid = uniform_grid(3, 3, k, (-1.0, 1.0), dtype=D)
    x = torch.rand(7, 3, generator=torch.Generator().manual_seed(k), dtype=D) * 2.6 - 1.3 + 1e-3
    fun = (lambda t: torch.tanh(t) * 2) if base_fun == "callable" else base_fun
    assert torch.autograd.gradcheck(lambda t: basis_features(t, grid, k, fun), (x.requires_grad_(True),))


def test_kan_linear_reference_is_the_sum_of_edge_functions():
    x, grid, k, p = _case()
    w = fold_weight(p["coef"], p["scale_base"], p["scale_sp"], p["mask"])
    y = kan_linear_reference(x, grid, w, k)
    spline = torch.einsum("bim,ijm->bij", bspline_basis(x, grid, k), p["coef"])  # (B, in, out)
    phi = p["mask"] * (p["scale_base"] * F.silu(x)[..., None] + p["scale_sp"] * spline)
    torch.testing.assert_close(y, phi.sum(1), atol=2e-14, rtol=0)
    y_id = kan_linear_reference(x, grid, w, k, "identity")
    phi_id = p["mask"] * (p["scale_base"] * x[..., None] + p["scale_sp"] * spline)
    torch.testing.assert_close(y_id, phi_id.sum(1), atol=2e-14, rtol=0)


@pytest.mark.parametrize("B", [1, 2, 23])
def test_feature_and_basis_moments_are_mean_and_sample_covariance(B):
    x, grid, k, _ = _case(B=B)
    for fun in ("silu", "identity"):
        feats = basis_features(x, grid, k, fun)
        mean, cov = basis_moments(x, grid, k, fun) if fun != "silu" else basis_moments(x, grid, k)
        assert (mean.dtype, cov.dtype) == (D, D) and cov.shape == (5, 8, 8)
        assert torch.equal(mean, feature_moments(feats)[0])
        torch.testing.assert_close(mean, feats.mean(0), atol=5e-16, rtol=0)
        # torch.cov divides by B - 1 = 0 for one sample; kanswap's covariance is then 0
        want = torch.stack([torch.cov(feats[:, i].T) for i in range(5)]) if B > 1 else torch.zeros_like(cov)
        torch.testing.assert_close(cov, want, atol=5e-16, rtol=0)
    m32, c32 = feature_moments(feats.float())
    assert m32.dtype == c32.dtype == D  # float64 whatever the input


def test_edge_std_is_the_std_of_edge_outputs_with_a_zero_safe_gradient():
    x, grid, k, p = _case(B=40)
    w = fold_weight(p["coef"], p["scale_base"], p["scale_sp"], p["mask"]).requires_grad_(True)
    _, cov = basis_moments(x, grid, k)
    std = edge_std(cov, w)
    feats = basis_features(x, grid, k)
    phi = torch.einsum("bif,ifo->bio", feats, w)
    torch.testing.assert_close(std, phi.std(0), atol=3e-15, rtol=0)
    assert std.dtype == D
    assert bool((std[p["mask"] == 0] < 1e-17).all())  # masked edges: std 0 (floored at 1e-18)
    std.sum().backward()
    assert torch.isfinite(w.grad).all()
    (ref,) = torch.autograd.grad(phi.std(0)[p["mask"] > 0].sum(), w)
    torch.testing.assert_close(w.grad, ref, atol=3e-15, rtol=0)
    assert edge_std(cov, w.detach().float()).dtype == torch.float32  # the weight's dtype


def test_basis_features_large_input_path_equals_small_path():
    """Above 2^16 local values the basis comes as one tensor per local function (another code
    path): features and their backward equal the small-input path's, chunk by chunk."""
    grid = uniform_grid(9, 5, 3, (-1.0, 1.0), dtype=D)
    x = torch.rand(2000, 9, generator=torch.Generator().manual_seed(5), dtype=D) * 2.4 - 1.2
    assert x.numel() * 4 > 1 << 16
    w = torch.randn(2000, 9, 9, generator=torch.Generator().manual_seed(6), dtype=D)
    xa = x.clone().requires_grad_(True)
    (basis_features(xa, grid, 3) * w).sum().backward()
    feats = basis_features(x, grid, 3)
    for rows in torch.arange(2000).split(100):
        xs = x[rows].clone().requires_grad_(True)
        small = basis_features(xs, grid, 3)
        (small * w[rows]).sum().backward()
        # the two paths evaluate the same polynomials in another order (measured 1.1e-16, 2.7e-15)
        torch.testing.assert_close(feats[rows], small.detach(), atol=2e-15, rtol=0)
        torch.testing.assert_close(xa.grad[rows], xs.grad, atol=3e-14, rtol=0)
