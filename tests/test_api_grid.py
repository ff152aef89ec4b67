"""refine / initialize_from_another_model / initialize_grid_from_another_model against pykan 0.2.8."""

import copy

import kan
import pytest
import torch

import kanswap
from kanswap.grid_ops import refined_grid


def _f(x):
    return torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)


def _rel(a, b) -> float:
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def fitted():
    """The issue's case: a [2,5,1] grid-3 KAN fitted for 5 L-BFGS steps; its cached data is the
    test split (as after any fit)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = kanswap.create_dataset(_f, n_var=2, train_num=200, test_num=200, seed=0)
    model = kanswap.KAN(width=[2, 5, 1], grid=3, k=3, seed=0)
    model.fit(data, steps=5, log=10)
    torch.set_num_threads(threads)
    return model


def test_refine_keeps_output_where_pykan_changes_it(fitted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # pykan's refine writes ./model whatever auto_save says
    x = fitted.cache_data
    y = fitted(x).detach()
    state = copy.deepcopy(fitted.state_dict())
    new = fitted.refine(10)
    assert new.grid == 10 and fitted.grid == 3
    assert new.act_fun[0].grid.shape == (2, 17)
    err = _rel(new(x), y)
    assert err < 1e-2  # the bound; measured 1.2e-3
    assert _rel(fitted(x), y) == 0.0  # the caller is untouched
    xt = kanswap.create_dataset(_f, n_var=2, train_num=300, test_num=1, seed=7)["train_input"]
    assert _rel(new(xt), fitted(xt)) < 1e-2  # fresh inputs: measured 1.2e-3

    ref = kan.KAN(width=[2, 5, 1], grid=3, k=3, seed=0, auto_save=False)
    ref.load_state_dict(state)
    ref(x)
    assert _rel(ref(x), y) < 1e-5
    ref_new = ref.refine(10)
    assert _rel(ref_new(x), y) > 0.1  # pykan: measured 0.55 (hidden values outside the hidden grid)
    # pykan's refined model shares scale_base/scale_sp/mask/affine storage with the original (training
    # one trains the other); kanswap's shares nothing.
    assert ref_new.act_fun[0].scale_base.data_ptr() == ref.act_fun[0].scale_base.data_ptr()
    ours_params = {p.data_ptr() for p in new.parameters()}
    assert not ours_params & {p.data_ptr() for p in fitted.parameters()}


def test_refined_grid_is_pykans_when_data_inside(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref = kan.KAN(width=[3, 4, 1], grid=4, k=3, seed=2, auto_save=False)
    x = torch.rand(64, 3, generator=torch.Generator().manual_seed(1)) * 1.6 - 0.8
    with torch.no_grad():
        ref.act_fun[0].grid.data = ref.act_fun[0].grid.data * torch.tensor([[1.0], [1.3], [0.9]])
    ref(x)
    child = kan.KAN(width=[3, 4, 1], grid=7, k=3, seed=2, auto_save=False)
    child.initialize_grid_from_another_model(ref, x)
    ours = refined_grid(ref.act_fun[0].grid.data, 3, 7, x=x)
    torch.testing.assert_close(ours, child.act_fun[0].grid.data, rtol=0, atol=1e-6)  # measured 6e-8
    with pytest.raises(ValueError, match="integer >= 1"):
        refined_grid(ref.act_fun[0].grid.data, 3, 0)


def test_initialize_from_another_model_matches_parent(one_thread):
    parent = kanswap.KAN(width=[3, [2, 1], 2], grid=3, k=3, seed=4, noise_scale=1.0)
    x = torch.rand(80, 3, generator=torch.Generator().manual_seed(3)) * 2 - 1
    parent.update_grid(x)
    with torch.no_grad():
        parent.node_bias_0.add_(0.3)
        parent.subnode_scale_0.mul_(1.5)
    child = kanswap.KAN(width=[3, [2, 1], 2], grid=12, k=3, seed=0)
    assert child.initialize_from_another_model(parent, x) is child
    assert _rel(child(x), parent(x)) < 3e-3  # measured 2.8e-4
    fresh = torch.rand(50, 3, generator=torch.Generator().manual_seed(9)) * 2 - 1
    assert _rel(child(fresh), parent(fresh)) < 3e-3  # measured 3.3e-4
    other = kanswap.KAN(width=[3, 2], seed=0)
    with pytest.raises(ValueError, match="same width"):
        other.initialize_from_another_model(parent, x)
    with pytest.raises(ValueError, match="run the model on data"):
        kanswap.KAN(width=[2, 1], seed=0).refine(5)


def test_initialize_grid_from_another_model_equals_pykan(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref_parent = kan.KAN(width=[2, 3, 1], grid=3, k=3, seed=5, auto_save=False)
    ours_parent = kanswap.KAN(width=[2, 3, 1], grid=3, k=3, seed=5)
    ours_parent.load_state_dict(ref_parent.state_dict())
    x = torch.rand(100, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ref = kan.KAN(width=[2, 3, 1], grid=6, k=3, seed=5, auto_save=False)
    ours = kanswap.KAN(width=[2, 3, 1], grid=6, k=3, seed=5)
    ref.initialize_grid_from_another_model(ref_parent, x)
    ours.initialize_grid_from_another_model(ours_parent, x)
    # Layer 0 sees x inside its grid: pykan's grid. Both fit the parent's splines on it.
    torch.testing.assert_close(ours.act_fun[0].grid, ref.act_fun[0].grid, rtol=0, atol=1e-6)
    ours_parent(x)
    spline = kanswap.spline.coef_to_curve
    want = spline(x, ours_parent.act_fun[0].grid, ours_parent.act_fun[0].coef, 3)
    got = spline(x, ours.act_fun[0].grid, ours.act_fun[0].coef, 3)
    pyk = spline(x, ref.act_fun[0].grid, ref.act_fun[0].coef.detach(), 3)
    assert _rel(got, want) < 2e-6 and _rel(pyk, want) < 2e-6  # measured 1.1e-7 and 1.8e-7
