"""The reference workflow's training, kanswap against pykan 0.2.8 in one process, on CPU.

Run (about a minute on 2 quiet cores, pykan's fits are most of it):

    python -m pytest bench/bench_fit.py -p no:cacheprovider --benchmark-only \
        --benchmark-json=bench-fit.json
    python bench/report.py bench-fit.json

* ``fit KAN``: ``KAN(width=[9, 10, 10, 1], seed=5, noise_scale=1.0)`` (pykan's with
  ``auto_save=False``) and ``fit(dataset, lamb=0.001, lamb_entropy=5., steps=20,
  stop_grid_update_step=1000, metrics=[train_acc, test_acc], display_metrics=[...])``, as in
  ``swap_kan_pykan.py``, on the 9-bit majority task (``np.random.seed(5)`` before
  ``create_dataset_from_data``);
* ``fit MLP``: ``MLP(width=[9, 20, 20, 1], seed=5)`` (kanswap's ``MLP``, pykan's ``kan.MLP.MLP``)
  and ``fit(dataset, lamb=0.0001, lamb_entropy=2., steps=100, reg_metric='w', metrics=...)``, as
  in ``swap_mlp_pykan.py`` but 100 steps instead of 1000.

Each round builds a fresh model (untimed) and times one fit. One untimed warm-up fit per
implementation comes first: the first optimizer construction in a process imports torch._dynamo
(seconds, in both libraries). pykan runs one timed round; kanswap ``min(--benchmark-min-rounds, 3)``.
The final train loss and accuracies go into ``extra_info``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

KAN_WIDTH = [9, 10, 10, 1]
MLP_WIDTH = [9, 20, 20, 1]
KAN_FIT = dict(lamb=0.001, lamb_entropy=5.0, steps=20, stop_grid_update_step=1000)
MLP_FIT = dict(lamb=0.0001, lamb_entropy=2.0, steps=100, reg_metric="w")
DISPLAY = ["train_loss", "train_acc", "test_acc", "reg"]


def _kan(impl: str):
    if impl == "kanswap":
        from kanswap import KAN

        return KAN(width=KAN_WIDTH, seed=5, noise_scale=1.0)
    from kan import KAN

    return KAN(width=KAN_WIDTH, seed=5, noise_scale=1.0, auto_save=False)


def _mlp(impl: str):
    if impl == "kanswap":
        from kanswap import MLP

        return MLP(width=MLP_WIDTH, seed=5)
    from kan.MLP import MLP  # importing kan.MLP runs torch.manual_seed(0); MLP() reseeds anyway

    return MLP(width=MLP_WIDTH, seed=5)


def _metrics(model, data: dict):
    def train_acc():
        return torch.mean(((model(data["train_input"]) > 0.5) == data["train_label"]).float())

    def test_acc():
        return torch.mean(((model(data["test_input"]) > 0.5) == data["test_label"]).float())

    return [train_acc, test_acc]


def _bench_fit(benchmark, rounds: int, data: dict, make, fit_kwargs: dict):
    out = {}

    def setup():
        return (make(),), {}

    def run(model):
        out["results"] = model.fit(data, metrics=_metrics(model, data), display_metrics=DISPLAY, **fit_kwargs)

    benchmark.pedantic(run, setup=setup, rounds=rounds, warmup_rounds=1, iterations=1)
    res = out["results"]
    benchmark.extra_info.update({key: float(res[key][-1]) for key in ("train_loss", "train_acc", "test_acc")})
    assert np.isfinite([float(v) for v in res["train_loss"]]).all()


@pytest.mark.parametrize("impl", ["kanswap", "pykan"])
def test_fit_kan(benchmark, bench_rounds, majority_data, impl):
    benchmark.group = f"fit KAN {KAN_WIDTH} {KAN_FIT['steps']} steps"
    benchmark.extra_info.update(impl=impl, variant="KAN.fit", ref=impl == "kanswap")
    rounds = 1 if impl == "pykan" else min(bench_rounds, 3)
    _bench_fit(benchmark, rounds, majority_data, lambda: _kan(impl), KAN_FIT)


@pytest.mark.parametrize("impl", ["kanswap", "pykan"])
def test_fit_mlp(benchmark, bench_rounds, majority_data, impl):
    benchmark.group = f"fit MLP {MLP_WIDTH} {MLP_FIT['steps']} steps"
    benchmark.extra_info.update(impl=impl, variant="MLP.fit", ref=impl == "kanswap")
    rounds = 1 if impl == "pykan" else min(bench_rounds, 3)
    _bench_fit(benchmark, rounds, majority_data, lambda: _mlp(impl), MLP_FIT)
