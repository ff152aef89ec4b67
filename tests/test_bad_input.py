"""Bad input gets a clear error of the right type naming the problem; edge cases behave like torch."""

import pytest
import torch

from kanswap import KAN, KANLayer, create_dataset


@pytest.fixture(scope="module")
def model():
    return KAN(width=[3, 4, 2], grid=3, seed=0)


def _data():
    return create_dataset(lambda x: x[:, [0]] + x[:, [1]] * x[:, [2]], n_var=3, train_num=20, test_num=7)


@pytest.mark.parametrize("shape,match", [
    pytest.param((5, 4), r"4 features.*expects 3", id="too-wide"),
    pytest.param((5, 1), r"1 features.*expects 3", id="too-narrow"),
    pytest.param((3,), r"2-D", id="rank1"),
    pytest.param((2, 5, 3), r"2-D", id="rank3"),
])
def test_forward_wrong_shape(model, shape, match):
    with pytest.raises(ValueError, match=match):
        model(torch.rand(shape))


def test_forward_integer_dtype(model):
    with pytest.raises(TypeError, match=r"floating-point.*torch.int64.*x\.float\(\)"):
        model(torch.ones(5, 3, dtype=torch.int64))


def test_forward_float64_into_float32_model(model):
    with pytest.raises(TypeError, match=r"torch.float64.*torch.float32"):
        model(torch.rand(5, 3, dtype=torch.float64))


def test_forward_not_a_tensor(model):
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0, 0.0, 0.0]])


def test_layer_wrong_width():
    layer = KANLayer(3, 2)
    with pytest.raises(ValueError, match=r"expects 3"):
        layer(torch.rand(4, 7))
    with pytest.raises(ValueError, match=r"expects 3"):
        layer.output(torch.rand(4, 7))


def test_double_model_on_double_input():
    m = KAN(width=[3, 4, 2], grid=3, seed=0).double()
    y = m(torch.rand(7, 3, dtype=torch.float64))
    assert y.dtype == torch.float64 and y.shape == (7, 2)
    with pytest.raises(TypeError, match=r"torch.float32.*torch.float64"):
        m(torch.rand(7, 3))


def test_nan_input_propagates(model):
    x = torch.rand(7, 3)
    clean = model(x).detach()
    x[2, 1] = float("nan")
    y = model(x).detach()
    assert torch.isnan(y[2]).all()
    rows = [0, 1, 3, 4, 5, 6]
    assert torch.equal(y[rows], clean[rows])  # the other rows are untouched


@pytest.mark.parametrize("bad", [float("inf"), float("-inf")], ids=["inf", "-inf"])
def test_inf_input_stays_in_its_row(model, bad):
    """inf in one row leaves every other row exactly as without it (rows are independent) and that
    row non-finite, as torch's own layers do (silu(inf) = inf; silu(-inf) = nan)."""
    x = torch.rand(7, 3)
    clean = model(x).detach()
    x[2, 1] = bad
    y = model(x).detach()
    assert not torch.isfinite(y[2]).any()
    rows = [0, 1, 3, 4, 5, 6]
    assert torch.equal(y[rows], clean[rows])


def test_empty_batch(model):
    y = model(torch.zeros(0, 3))
    assert y.shape == (0, 2)


@pytest.mark.parametrize("value", [1e3, -1e3, 1e6, -50.0], ids=["1e3", "-1e3", "1e6", "-50"])
def test_far_outside_grid_finite(model, value):
    x = torch.full((4, 3), value)
    y = model(x)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("key,bad", [pytest.param("train_input", float("nan"), id="nan-train"),
                                     pytest.param("test_label", float("inf"), id="inf-test-label")])
def test_fit_rejects_non_finite(key, bad):
    data = _data()
    data[key] = data[key].clone()
    data[key][1, 0] = bad
    m = KAN(width=[3, 2, 1], grid=3, seed=0)
    with pytest.raises(ValueError, match=rf"{key}.*NaN/inf"):
        m.fit(data, steps=1)


def test_fit_missing_key():
    data = _data()
    del data["test_label"]
    m = KAN(width=[3, 2, 1], grid=3, seed=0)
    with pytest.raises(KeyError, match="test_label"):
        m.fit(data, steps=1)


def test_fit_mismatched_rows():
    data = _data()
    data["train_label"] = data["train_label"][:-1]
    m = KAN(width=[3, 2, 1], grid=3, seed=0)
    with pytest.raises(ValueError, match=r"train_input has 20 rows but train_label has 19"):
        m.fit(data, steps=1)


def test_fit_wrong_columns():
    data = _data()
    m = KAN(width=[2, 2, 1], grid=3, seed=0)
    with pytest.raises(ValueError, match=r"3 columns.*expects 2"):
        m.fit(data, steps=1)


@pytest.mark.parametrize("key", ["train_input", "test_label"])
def test_fit_rejects_other_dtype(key):
    data = _data()
    data[key] = data[key].double()
    m = KAN(width=[3, 2, 1], grid=3, seed=0)
    with pytest.raises(TypeError, match=rf"{key}.*torch.float64 does not match the model's torch.float32"):
        m.fit(data, steps=1)


def test_fit_rejects_integer_dtype():
    data = _data()
    data["train_label"] = data["train_label"].long()
    m = KAN(width=[3, 2, 1], grid=3, seed=0)
    with pytest.raises(TypeError, match=r"train_label.*integer dtype torch.int64.*\.float\(\)"):
        m.fit(data, steps=1)


@pytest.mark.parametrize("key", ["train_label", "test_input"])
def test_fit_rejects_other_device(key):
    # A CPU-only machine still has a second device: 'meta' tensors (shape and dtype, no data).
    data = _data()
    data[key] = data[key].to("meta")
    m = KAN(width=[3, 2, 1], grid=3, seed=0)
    with pytest.raises(ValueError, match=rf"{key}.*is on meta but the model is on cpu"):
        m.fit(data, steps=1)


@pytest.mark.parametrize("kwargs,exc,match", [
    pytest.param(dict(width=[3]), ValueError, "at least two layers", id="one-layer"),
    pytest.param(dict(width=[]), ValueError, "at least two layers", id="empty-width"),
    pytest.param(dict(width=[3, 0, 1]), ValueError, "at least one node", id="zero-node"),
    pytest.param(dict(width=[3, 2, 1], grid=0), ValueError, "grid", id="grid0"),
    pytest.param(dict(width=[3, 2, 1], k=0), ValueError, "k must", id="k0"),
    pytest.param(dict(width=[3, 2, 1], base_fun="tanhh"), ValueError, "tanhh", id="base_fun"),
    pytest.param(dict(width=[3, 2, 1], grid=[3]), ValueError, "grid has 1 entries", id="grid-list"),
])
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        KAN(seed=0, **kwargs)


def test_constructor_without_width():
    with pytest.raises(ValueError, match="width is required"):
        KAN()


@pytest.mark.parametrize("kwargs,match", [
    pytest.param(dict(reg_metric="edge_sideways"), "edge_sideways", id="reg_metric"),
    pytest.param(dict(opt="SGD"), "SGD", id="opt"),
    pytest.param(dict(batch=0), "batch", id="batch0"),
])
def test_fit_option_errors(kwargs, match):
    m = KAN(width=[3, 2, 1], grid=3, seed=0)
    with pytest.raises(ValueError, match=match):
        m.fit(_data(), steps=1, **kwargs)


def _fitted_small():
    m = KAN(width=[3, 2, 1], grid=3, seed=0)
    m(torch.rand(5, 3))
    return m


@pytest.mark.parametrize("call,match", [
    pytest.param(lambda: KAN(width=[3, 2, 1], grid=3, seed=0).fit(_data(), steps=1, reg_metric="nope"),
                 r"'nope'.*'edge_forward_spline_n', 'edge_forward_sum', 'edge_forward_spline_u', "
                 r"'edge_backward', 'node_backward'", id="reg_metric"),
    pytest.param(lambda: KAN(width=[3, 2, 1], grid=3, seed=0).fit(_data(), steps=1, opt="SGD"),
                 r"'SGD'.*'LBFGS' or 'Adam'", id="opt"),
    pytest.param(lambda: _fitted_small().auto_swap(method="best"), r"'best'.*'greedy' or 'optimal'", id="method"),
    pytest.param(lambda: _fitted_small().prune_node(mode="half"), r"'auto' or 'manual'.*'half'", id="mode"),
    pytest.param(lambda: _fitted_small().plot(metric="sideways"),
                 r"'sideways'.*'backward', 'forward_n', 'forward_u'", id="metric"),
    pytest.param(lambda: KANLayer(3, 2, backend="cuda").output(torch.rand(4, 3)),
                 r"backend must be one of \('auto', 'triton', 'reference'\), got 'cuda'", id="backend"),
])
def test_unknown_option_lists_allowed_values(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_reg_unknown_metric():
    m = KAN(width=[3, 2, 1], grid=3, seed=0)
    m(torch.rand(5, 3))
    with pytest.raises(ValueError, match="nope"):
        m.reg("nope")


def test_forward_other_device(model):
    with pytest.raises(ValueError, match=r"meta.*cpu"):
        model(torch.empty(5, 3, device="meta"))
