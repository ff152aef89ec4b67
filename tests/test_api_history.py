"""Model versions: log_history / rewind / checkout / history in memory (no files) and, with
auto_save=True, on disk in pykan's layout; a pykan notebook (fit, refine, rewind, prune) runs with
only the import changed and writes nothing."""

import os

import kan
import pytest
import torch

import kanswap
from kanswap.history import VersionStore, history_lines

NOTEBOOK = """
import torch
from kanswap import *

f = lambda x: torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)
dataset = create_dataset(f, n_var=2, train_num=100, test_num=100)
model = KAN(width=[2, 5, 1], grid=3, k=3, seed=1)
model.fit(dataset, opt="LBFGS", steps=3)
model = model.refine(10)
model.fit(dataset, opt="LBFGS", steps=2)
model = model.rewind('0.1')
model = model.prune()
model.history()
"""


def test_pykan_notebook_refine_rewind_prune_writes_no_files(tmp_path, monkeypatch, one_thread, capsys):
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(NOTEBOOK, "notebook", "exec"), scope)
    assert os.listdir(tmp_path) == []
    model = scope["model"]
    assert model.grid == 3 and model.round == 1 and model.state_id == 2
    out = capsys.readouterr().out
    assert "rewind to model version 0.1, renamed as 1.1" in out
    log = ["### Round 0 ###", "init => 0.0", "0.0 => fit => 0.1", "0.1 => refine => 0.2", "0.2 => fit => 0.3",
           "### Round 1 ###", "1.1 => prune => 1.2"]
    assert out.splitlines()[-len(log):] == log  # the notebook's own model.history()
    assert model.history() is None  # like pykan's: printed, not returned
    assert capsys.readouterr().out.splitlines() == log
    # Version 0.1 is the model after the first fit; 0.2 the refined one.
    v1, v2 = model.checkout("0.1"), model.checkout("1.1")
    assert all(torch.equal(a, b) for a, b in zip(v1.state_dict().values(), v2.state_dict().values(), strict=True))
    assert model.checkout("0.2").grid == 10


def _model():
    model = kanswap.KAN(width=[3, 4, 2], grid=3, seed=2)
    model(torch.rand(20, 3) * 2 - 1)
    return model


def test_versions_in_memory_and_caller_untouched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.remove_edge(0, 1, 1)  # 0.0 => remove_edge => 0.1
    model.swap(1, 0, 3)  # 0.1 => swap => 0.2
    assert model.state_id == 2
    old = model.checkout("0.0")
    assert all(torch.equal(old.state_dict()[k], before[k]) for k in before)
    assert model.checkout("0.1").act_fun[0].mask[1, 1] == 0
    torch.manual_seed(0)
    expect = torch.rand(1)
    torch.manual_seed(0)
    back = model.rewind("0.1")
    assert torch.equal(torch.rand(1), expect)  # rewinding touches no RNG
    assert (back.round, back.state_id) == (1, 1)
    assert (model.round, model.state_id) == (0, 2)  # pykan sets the caller's state_id to '1' (a str)
    back.remove_node(1, 2)
    assert history_lines(back, 2) == ["### Round 1 ###", "1.1 => remove_node => 1.2"]
    assert history_lines(model, k=1) == ["1.1 => remove_node => 1.2"]  # one shared log, like pykan's folder
    with pytest.raises(KeyError, match="no model version '3.3'"):
        model.checkout("3.3")
    with pytest.raises(ValueError, match="round"):
        model.rewind("latest")
    assert os.listdir(tmp_path) == []


def test_version_store_bounds():
    model = _model()
    store = VersionStore(max_versions=3)
    model._versions = store
    for _ in range(5):
        model.swap(1, 0, 1)
    assert list(store.versions) == ["0.3", "0.4", "0.5"]
    with pytest.raises(KeyError, match="dropped.*latest 3 versions"):
        model.checkout("0.1")
    per_version = store.versions["0.5"]["nbytes"]
    assert per_version == sum(v.numel() * 4 for v in model.state_dict().values()) + model.cache_data.numel() * 4
    store.max_bytes = 2 * per_version
    model.swap(1, 0, 1)
    assert list(store.versions) == ["0.5", "0.6"] and store.nbytes <= store.max_bytes
    with pytest.raises(ValueError, match=">= 1"):
        VersionStore(max_versions=0)


def test_auto_save_keeps_pykans_layout(tmp_path):
    path = str(tmp_path / "model")
    model = kanswap.KAN(width=[2, 3, 1], grid=3, seed=0, auto_save=True, ckpt_path=path)
    model(torch.rand(10, 2))
    model.remove_edge(0, 0, 0)
    model.remove_edge(0, 1, 0)
    assert sorted(os.listdir(path)) == ["0.0", "0.1", "0.2", "history.txt"]
    assert history_lines(model) == ["0.0 => remove_edge => 0.1", "0.1 => remove_edge => 0.2"]
    back = model.rewind("0.1")
    assert back.act_fun[0].mask[0, 0] == 0 and back.act_fun[0].mask[1, 0] == 1
    assert (back.round, back.state_id) == (1, 1) and "1.1" in os.listdir(path)
    assert model.checkout("0.2").act_fun[0].mask[1, 0] == 0
    assert history_lines(model, 1) == ["### Round 1 ###"]


def test_pykan_rewind_needs_files_and_breaks_the_caller(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref = kan.KAN(width=[2, 3, 1], grid=3, seed=0, auto_save=False)
    with pytest.raises(FileNotFoundError):
        ref.rewind("0.0")
    ref = kan.KAN(width=[2, 3, 1], grid=3, seed=0, auto_save=True)
    ref.remove_edge(0, 0, 0)
    ref.rewind("0.0")
    assert ref.state_id == "0"  # a string: the next log_history fails
    with pytest.raises(TypeError):
        ref.remove_edge(0, 1, 0)
    ours = _model()
    ours.remove_edge(0, 0, 0)
    ours.rewind("0.0")
    ours.remove_edge(0, 1, 0)
    assert ours.state_id == 2


def test_loaded_checkpoint_starts_its_history_at_the_loaded_weights(tmp_path):
    model = _model()
    model.remove_edge(0, 2, 3)  # version 0.1
    path = str(tmp_path / "ckpt")
    model.saveckpt(path)
    loaded = kanswap.KAN.loadckpt(path)
    assert (loaded.round, loaded.state_id) == (0, 1)
    loaded.remove_edge(0, 0, 0)
    first = loaded.checkout("0.1")
    assert first.act_fun[0].mask[2, 3] == 0 and first.act_fun[0].mask[0, 0] == 1
    assert torch.equal(first.act_fun[0].coef, model.act_fun[0].coef)
