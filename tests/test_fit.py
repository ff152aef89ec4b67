"""kanswap's KAN.fit: the reference task, results format, reproducibility, options."""

import numpy as np
import pytest
import torch

from kanswap import KAN, create_dataset

REG_METRICS = ["edge_forward_spline_n", "edge_forward_sum", "edge_forward_spline_u", "edge_backward",
               "node_backward"]


def _acc_metrics(model, dataset):
    def train_acc():
        return torch.mean(((model(dataset["train_input"]) > 0.5) == dataset["train_label"]).float())

    def test_acc():
        return torch.mean(((model(dataset["test_input"]) > 0.5) == dataset["test_label"]).float())

    return [train_acc, test_acc]


def _small_data(seed=0, n_var=2, train_num=65, test_num=33):
    return create_dataset(lambda x: torch.sin(2 * x[:, [0]]) + x[:, [1]] ** 2, n_var=n_var,
                          train_num=train_num, test_num=test_num, seed=seed)


@pytest.mark.slow
def test_reference_fit_reaches_full_accuracy(majority_data):
    model = KAN(width=[9, 10, 10, 1], seed=5, noise_scale=1.0)
    metrics = _acc_metrics(model, majority_data)
    results = model.fit(majority_data, lamb=0.001, lamb_entropy=5.0, steps=20, stop_grid_update_step=1000,
                        metrics=metrics, display_metrics=["train_loss", "train_acc", "test_acc", "reg"])
    assert results["train_acc"][-1] == 1.0
    assert results["test_acc"][-1] == 1.0
    assert float(results["train_loss"][-1]) < 0.05
    assert float(results["train_loss"][-1]) < float(results["train_loss"][0])


def test_results_format_matches_pykan():
    data = _small_data()
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    metrics = _acc_metrics(model, data)
    results = model.fit(data, opt="Adam", lr=0.01, steps=3, lamb=0.01, metrics=metrics)
    assert list(results) == ["train_loss", "test_loss", "reg", "train_acc", "test_acc"]
    for key in ("train_loss", "test_loss", "reg"):
        assert len(results[key]) == 3
        for v in results[key]:
            assert isinstance(v, np.ndarray) and v.shape == () and v.dtype == np.float32, key
    for key in ("train_acc", "test_acc"):
        assert len(results[key]) == 3 and all(isinstance(v, float) for v in results[key])
    assert all(float(v) > 0 for v in results["reg"])


def test_reg_recorded_on_last_step_even_with_lamb_zero():
    data = _small_data()
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    results = model.fit(data, opt="Adam", lr=0.01, steps=3)
    assert [float(v) == 0.0 for v in results["reg"]] == [True, True, False]
    assert model.save_act


def _fit_once(steps=2, **kw):
    data = _small_data(seed=1)
    np.random.seed(0)
    model = KAN(width=[2, 5, 1], grid=5, seed=2)
    results = model.fit(data, steps=steps, lamb=0.01, **kw)
    return model, results


def test_same_seed_bitwise_identical():
    m1, r1 = _fit_once(update_grid=True, stop_grid_update_step=2, grid_update_num=2)
    m2, r2 = _fit_once(update_grid=True, stop_grid_update_step=2, grid_update_num=2)
    for key, val in m1.state_dict().items():
        assert torch.equal(val, m2.state_dict()[key]), key
    for key in r1:
        assert [float(v) for v in r1[key]] == [float(v) for v in r2[key]], key


def test_adam_path_trains():
    data = _small_data(seed=2)
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    results = model.fit(data, opt="Adam", lr=0.05, steps=30, update_grid=False)
    assert len(results["train_loss"]) == 30
    assert float(results["train_loss"][-1]) < 0.7 * float(results["train_loss"][0])


def test_batch_smaller_than_train():
    data = _small_data(seed=3)
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    before = model.state_dict()["act_fun.0.coef"].clone()
    results = model.fit(data, opt="Adam", lr=0.01, steps=2, batch=7)
    assert len(results["train_loss"]) == 2
    assert not torch.equal(before, model.state_dict()["act_fun.0.coef"])
    assert model.cache_data.shape[0] == 7  # the last forward was a 7-row test batch


def test_display_metrics_unknown_name_raises():
    data = _small_data()
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    with pytest.raises(ValueError, match="not_a_metric"):
        model.fit(data, opt="Adam", steps=1, display_metrics=["train_loss", "not_a_metric"])


def test_display_metrics_known_names_work():
    data = _small_data()
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    metrics = _acc_metrics(model, data)
    results = model.fit(data, opt="Adam", steps=1, metrics=metrics, display_metrics=["train_loss", "test_acc", "reg"])
    assert len(results["test_acc"]) == 1


@pytest.mark.parametrize("metric", REG_METRICS)
def test_every_reg_metric_runs_and_decreases_loss(metric):
    data = _small_data(seed=4)
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    results = model.fit(data, opt="Adam", lr=0.02, steps=8, lamb=0.01, reg_metric=metric, update_grid=False)
    assert float(results["train_loss"][-1]) < float(results["train_loss"][0])
    assert all(np.isfinite(float(v)) and float(v) > 0 for v in results["reg"])


def test_custom_loss_fn_is_used():
    data = _small_data(seed=5)
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    calls = []

    def l1(pred, y):
        calls.append(pred.shape)
        return torch.mean(torch.abs(pred - y))

    results = model.fit(data, opt="Adam", lr=0.01, steps=2, loss_fn=l1)
    assert calls and all(c[1] == 1 for c in calls)
    with torch.no_grad():
        pred = model(data["test_input"])
    # reported test_loss is sqrt(loss_fn) on the (full, permuted) test set
    expect = torch.sqrt(torch.mean(torch.abs(pred - data["test_label"]))).item()
    assert float(results["test_loss"][-1]) == pytest.approx(expect, rel=1e-5)


def test_fit_does_not_touch_torch_rng():
    data = _small_data(seed=6)
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    model.fit(data, steps=1, lamb=0.01)  # LBFGS: pykan's LBFGS.step reseeds torch (D12)
    assert torch.equal(torch.get_rng_state(), state)
    expected = torch.rand(3, generator=torch.Generator().manual_seed(1234))
    assert torch.equal(torch.rand(3), expected)


def test_fit_draws_batches_from_numpy_rng():
    data = _small_data(seed=6)
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    np.random.seed(7)
    model.fit(data, opt="Adam", steps=2)
    after = np.random.rand()
    np.random.seed(7)
    for _ in range(2):
        np.random.choice(65, 65, replace=False)
        np.random.choice(33, 33, replace=False)
    assert np.random.rand() == after
