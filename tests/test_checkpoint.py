"""saveckpt / KAN.loadckpt: exact round trips, refusal of code-executing pickles, pykan checkpoints."""

import os

import kan
import pytest
import torch

from kanswap import KAN, create_dataset
from kanswap.checkpoint import FORMAT_VERSION


def _data():
    return create_dataset(lambda x: x[:, [0]] * x[:, [1]], n_var=2, train_num=30, test_num=9, seed=1)


def _assert_same(a, b, x):
    assert a.width == b.width
    assert [layer.num for layer in a.act_fun] == [layer.num for layer in b.act_fun]
    assert [tuple(layer.grid.shape) for layer in a.act_fun] == [tuple(layer.grid.shape) for layer in b.act_fun]
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert torch.equal(a(x), b(x))


def _trained(width, **kw):
    model = KAN(width=width, grid=3, seed=0, **kw)
    data = _data()
    model.fit(data, opt="Adam", lr=0.01, steps=2, update_grid=True, stop_grid_update_step=1)
    return model, data


@pytest.mark.parametrize("width,kw", [
    pytest.param([2, 5, 1], {}, id="plain"),
    pytest.param([2, [3, 2], 1], {}, id="mult"),
    pytest.param([2, [2, 2], 1], dict(mult_arity=[[], [2, 3], []]), id="hetero-mult"),
])
def test_round_trip_bitwise(tmp_path, width, kw):
    model, data = _trained(width, **kw)
    path = str(tmp_path / "ck")
    model.saveckpt(path)
    loaded = KAN.loadckpt(path)
    _assert_same(model, loaded, data["test_input"])
    assert loaded.mult_arity == model.mult_arity


def test_round_trip_pruned(tmp_path):
    model, data = _trained([2, 6, 4, 1])
    model(data["train_input"])
    pruned = model.prune_node(active_neurons_id=[[0, 2, 5], [1, 3]]).prune_edge(threshold=0.05)
    assert pruned.width == [[2, 0], [3, 0], [2, 0], [1, 0]]
    path = str(tmp_path / "pruned")
    pruned.saveckpt(path)
    loaded = KAN.loadckpt(path)
    _assert_same(pruned, loaded, data["test_input"])


def test_round_trip_pruned_inputs(tmp_path):
    model = KAN(width=[3, 3, 1], grid=3, seed=0)
    x = torch.rand(20, 3) * 2 - 1
    model(x)
    pruned = model.prune_input(active_inputs=[0, 2])
    path = str(tmp_path / "pin")
    pruned.saveckpt(path)
    loaded = KAN.loadckpt(path)
    assert torch.equal(loaded.input_id, pruned.input_id)
    assert torch.equal(loaded(x), pruned(x))


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.target}",))


@pytest.mark.parametrize("wrap", [pytest.param(False, id="bare"), pytest.param(True, id="inside-dict")])
def test_malicious_pickle_refused(tmp_path, wrap):
    marker = tmp_path / "ran"
    path = str(tmp_path / "evil")
    obj = _Payload(marker)
    torch.save({"format": "kanswap", "version": FORMAT_VERSION, "config": obj} if wrap else obj, path)
    with pytest.raises(ValueError, match="refusing to load"):
        KAN.loadckpt(path)
    assert not marker.exists()


def test_malicious_pykan_state_refused(tmp_path):
    marker = tmp_path / "ran"
    prefix = str(tmp_path / "pk")
    kan.KAN(width=[2, 3, 1], grid=3, seed=0, auto_save=False).saveckpt(prefix)
    torch.save(_Payload(marker), prefix + "_state")
    with pytest.raises(ValueError, match="refusing to load"):
        KAN.loadckpt(prefix)
    assert not marker.exists()


@pytest.mark.parametrize("width", [pytest.param([2, 3, 1], id="plain"), pytest.param([2, [2, 1], 1], id="mult")])
def test_pykan_checkpoint_loads(tmp_path, width):
    ref = kan.KAN(width=list(width), grid=3, seed=4, auto_save=False)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for layer in ref.act_fun:
            layer.coef.add_(torch.randn(layer.coef.shape, generator=gen))
    x = torch.rand(17, 2, generator=gen) * 2 - 1
    ref(x)
    prefix = str(tmp_path / "pk")
    ref.saveckpt(prefix)
    loaded = KAN.loadckpt(prefix)
    assert loaded.width == ref.width
    torch.testing.assert_close(loaded(x), ref(x), atol=1e-6, rtol=1e-6)
    assert torch.equal(loaded.cache_data, ref.cache_data)


def test_wrong_version_message(tmp_path):
    path = str(tmp_path / "v99")
    torch.save({"format": "kanswap", "version": 99, "config": {}, "state_dict": {}}, path)
    with pytest.raises(ValueError, match=r"version 99.*reads version"):
        KAN.loadckpt(path)


def test_not_a_kanswap_file(tmp_path):
    path = str(tmp_path / "other")
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a kanswap checkpoint"):
        KAN.loadckpt(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        KAN.loadckpt(str(tmp_path / "nothing"))


def test_loading_keeps_global_rngs(tmp_path):
    import random

    import numpy as np

    model = KAN(width=[2, 3, 1], grid=3, seed=0)
    path = str(tmp_path / "ck")
    model.saveckpt(path)
    torch.manual_seed(17)
    np.random.seed(17)
    random.seed(17)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    KAN.loadckpt(path)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert (np.random.get_state()[1] == states[1]).all()
    assert random.getstate() == states[2]
