"""fit's engine: flat parameter buffers, hand-written objectives against autograd, threads, progress bar."""

import io

import numpy as np
import pytest
import torch

from kanswap import KAN, MLP, create_dataset
from kanswap.fit import show_progress
from kanswap.threads import fit_threads


def _data(n_var=2, seed=0, dtype=torch.float32):
    data = create_dataset(lambda x: torch.sin(2 * x[:, [0]]) + x[:, [1]] ** 2, n_var=n_var, train_num=67,
                          test_num=31, seed=seed)
    return {k: v.to(dtype) for k, v in data.items()}


def _mse(pred, y):
    return torch.mean((pred - y) ** 2)


def test_parameters_are_views_of_one_flat_buffer_after_fit(tmp_path):
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    model.fit(_data(), steps=2, lamb=0.01, progress=False)
    params = [p for p in model.parameters() if p.requires_grad]
    base = params[0].untyped_storage().data_ptr()
    assert all(p.untyped_storage().data_ptr() == base for p in params)
    assert all(p.grad.untyped_storage().data_ptr() == params[0].grad.untyped_storage().data_ptr() for p in params)
    # state_dict round trip and a second fit (which re-seats the views) still work
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = KAN(width=[2, 3, 1], grid=3, seed=1)
    other.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    for key, val in model.state_dict().items():
        assert torch.equal(val, other.state_dict()[key]), key
    other.fit(_data(), steps=1, progress=False)


@pytest.mark.parametrize("kind", ["KAN", "MLP"])
def test_hand_written_objective_follows_autograd_fit(kind):
    """The same float64 fit through the hand-written objective and through autograd (a loss_fn that
    is the default MSE forces autograd): losses agree to 5e-9 relative over 2 L-BFGS steps."""
    data = _data(dtype=torch.float64)
    runs = []
    for loss_fn in (None, _mse):
        if kind == "KAN":
            model = KAN(width=[2, 4, 1], grid=4, seed=3).double()
            kwargs = dict(lamb=0.01, lamb_entropy=2.0, update_grid=False)
        else:
            model = MLP(width=[2, 6, 1], seed=3).double()
            kwargs = dict(lamb=0.01, lamb_entropy=2.0, reg_metric="w")
        np.random.seed(0)
        res = model.fit(data, steps=2, loss_fn=loss_fn, progress=False, **kwargs)
        runs.append(np.array([float(v) for v in res["train_loss"]]))
    rel = np.abs(runs[0] - runs[1]) / np.abs(runs[1])
    assert rel.max() < 5e-9, rel  # measured 5e-10 (KAN), ~1e-15 (MLP); L-BFGS amplifies it each step


def test_mlp_fit_is_bitwise_reproducible():
    data = _data(seed=2)
    states = []
    for _ in range(2):
        np.random.seed(1)
        model = MLP(width=[2, 5, 1], seed=4)
        model.fit(data, steps=3, lamb=1e-3, progress=False)
        states.append(model.state_dict())
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_threads_from_work_size_and_restored():
    assert fit_threads(409, 1000) == 1
    torch.set_num_threads(2)
    try:
        assert fit_threads(10 ** 5, 10 ** 5) == 2
        model = KAN(width=[2, 3, 1], grid=3, seed=0)
        seen = []

        def threads_metric():
            seen.append(torch.get_num_threads())
            return torch.zeros(())

        model.fit(_data(), steps=1, metrics=[threads_metric], progress=False)
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_off_when_stderr_is_not_a_terminal(capsys):
    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    model.fit(_data(), steps=2, opt="Adam")
    assert capsys.readouterr().err == ""


def test_progress_switches(monkeypatch):
    monkeypatch.setattr("sys.stderr", _Tty())
    monkeypatch.delenv("KANSWAP_PROGRESS", raising=False)
    assert show_progress(None)
    assert not show_progress(False)
    monkeypatch.setenv("KANSWAP_PROGRESS", "0")
    assert not show_progress(None)
    assert show_progress(True)


def test_progress_bar_has_no_placeholder(monkeypatch):
    err = _Tty()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.delenv("KANSWAP_PROGRESS", raising=False)
    KAN(width=[2, 3, 1], grid=3, seed=0).fit(_data(), steps=2, opt="Adam")
    text = err.getvalue()
    assert "train_loss" in text and "description" not in text
    err = _Tty()
    monkeypatch.setattr("sys.stderr", err)
    KAN(width=[2, 3, 1], grid=3, seed=0).fit(_data(), steps=2, opt="Adam", progress=False)
    assert err.getvalue() == ""


def test_mult_node_fit_reaches_pykans_precision():
    """float64 x*y with a multiplication node ([2,[5,2],1], base_fun='identity'): fit 20 steps with
    lamb 0.01, prune, fit 20 more. pykan 0.2.8 reaches train RMSE 1.25e-5 on this recipe (measured,
    same data and seeds); kanswap measured 5.1e-6. The target: within 2x of pykan's."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        data = create_dataset(lambda x: x[:, [0]] * x[:, [1]], n_var=2, train_num=1000, test_num=100, seed=0)
        np.random.seed(0)
        model = KAN(width=[2, [5, 2], 1], base_fun="identity", seed=0)
        model.fit(data, steps=20, lamb=0.01, progress=False)
        model = model.prune()
        res = model.fit(data, steps=20, progress=False)
    finally:
        torch.set_default_dtype(old)
    assert float(res["train_loss"][-1]) < 2 * 1.25e-5
