"""One regression test per pykan 0.2.8 defect that kanswap's core fixes."""

import os

import numpy as np
import pytest
import torch

from kanswap import KAN, create_dataset
from kanswap.spline import curve_to_coef, uniform_grid


def _data(seed=0, train_num=40, test_num=9):
    return create_dataset(lambda x: x[:, [0]] * x[:, [1]], n_var=2, train_num=train_num, test_num=test_num,
                          seed=seed)


def test_D10_stop_grid_update_step_below_grid_update_num():
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    grid0 = model.act_fun[0].grid.clone()
    results = model.fit(_data(), opt="Adam", steps=2, stop_grid_update_step=3, grid_update_num=10)
    assert len(results["train_loss"]) == 2
    assert not torch.equal(grid0, model.act_fun[0].grid)  # the grid was updated (step 0)


def test_D11_batch_between_n_test_and_n_train():
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    results = model.fit(_data(), opt="Adam", steps=2, batch=20)  # n_test 9 < 20 <= n_train 40
    assert len(results["test_loss"]) == 2
    assert np.isfinite(float(results["test_loss"][-1]))


def test_D12_lbfgs_fit_does_not_reseed_torch():
    data = _data()  # create_dataset seeds torch itself (as pykan's does), so draw it first
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    torch.manual_seed(99)
    state = torch.get_rng_state()
    model.fit(data, steps=1)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("metric", ["edge_forward_spline_n", "edge_forward_sum", "edge_forward_spline_u",
                                    "edge_backward", "node_backward"])
def test_D13_every_reg_metric_has_gradient(metric):
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    model(torch.rand(17, 2) * 2 - 1)
    if metric == "edge_backward":
        model.attribute()
    elif metric == "node_backward":
        model.node_attribute()
    model.reg(metric, 1.0, 2.0, 0.0, 0.0).backward()
    for l in range(model.depth):
        grad = model.act_fun[l].scale_base.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, (metric, l)


def test_D14_fit_bit_reproducible():
    runs = []
    for _ in range(2):
        np.random.seed(3)
        model = KAN(width=[2, 4, 1], grid=5, seed=1)
        results = model.fit(_data(seed=2), steps=1, lamb=0.01, stop_grid_update_step=1)
        runs.append((model.state_dict(), [float(v) for v in results["train_loss"]]))
    (s1, r1), (s2, r2) = runs
    assert r1 == r2
    for key in s1:
        assert torch.equal(s1[key], s2[key]), key


def test_D15_no_files_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = KAN(width=[2, 3, 3, 1], grid=3, seed=0)
    data = _data()
    model.fit(data, opt="Adam", steps=2, lamb=0.01)
    model(data["train_input"])
    model.auto_swap()
    pruned = model.prune()
    pruned(data["test_input"])
    assert list(tmp_path.iterdir()) == []
    assert not os.path.exists(tmp_path / "model")


def test_D16_width_list_not_mutated():
    width = [2, [3, 1], 4, 1]
    KAN(width=width, seed=0)
    assert width == [2, [3, 1], 4, 1]
    width = [2, 3, 1]
    KAN(width=width, seed=0)
    assert width == [2, 3, 1]


def test_D17_attribute_l_keeps_full_scores():
    model = KAN(width=[2, 3, 3, 1], grid=3, seed=0)
    model(torch.rand(17, 2) * 2 - 1)
    model.attribute()
    edges = [e.clone() for e in model.edge_scores]
    nodes = [n.clone() for n in model.node_scores]
    model.attribute(1)
    assert len(model.edge_scores) == 3 and len(model.node_scores) == 4
    for a, b in zip(model.edge_scores, edges, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(model.node_scores, nodes, strict=True):
        assert torch.equal(a, b)


def test_D15_auto_save_writes_checkpoints(tmp_path):
    """The other half of D15: with auto_save=True the model writes what pykan writes, a checkpoint
    at construction and one per logged operation, with a history line naming the operation."""
    folder = tmp_path / "ckpt"
    model = KAN(width=[2, 3, 3, 1], grid=3, seed=0, auto_save=True, ckpt_path=str(folder))
    assert sorted(p.name for p in folder.iterdir()) == ["0.0"]
    model(_data()["train_input"])
    model.auto_swap()
    assert (folder / "0.1").exists()
    assert (folder / "history.txt").read_text().splitlines() == ["0.0 => auto_swap => 0.1"]
    restored = KAN.loadckpt(str(folder / "0.1"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(restored.state_dict()[name], tensor), name


def test_D18_cache_data_is_last_forward_input():
    """Kept as pykan has it: cache_data is the input of the last forward, whatever called it."""
    import kan

    ours = KAN(width=[2, 3, 1], grid=3, seed=0)
    ref = kan.KAN(width=[2, 3, 1], grid=3, seed=0, auto_save=False)
    first, last = torch.rand(11, 2), torch.rand(5, 2)
    for model in (ours, ref):
        model(first)
        model(last)
        assert torch.equal(model.cache_data, last)
    ours.get_act(first)
    assert torch.equal(ours.cache_data, first)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("where", ["x", "y"])
def test_D22_curve_to_coef_non_finite_raises(bad, where):
    grid = uniform_grid(3, 5, 3)
    x = torch.rand(20, 3) * 2 - 1
    y = torch.randn(20, 3, 2)
    if where == "x":
        x[4, 1] = bad
    else:
        y[7, 0, 1] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        curve_to_coef(x, y, grid, 3)
