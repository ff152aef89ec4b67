"""auto_swap side by side: kanswap (greedy, optimal) against pykan 0.2.8 on the trained reference
KAN, and kanswap alone on a wide random MLP, on CPU.

Run (about 3-4 minutes on 2 cores: training and pykan take about 30 s, ``optimal`` on the
1024-wide MLP alone 2-3 minutes, one round):

    python -m pytest bench/bench_auto_swap.py -p no:cacheprovider --benchmark-only \
        --benchmark-json=bench-auto-swap.json
    python bench/report.py bench-auto-swap.json

Skip the long case with ``-k "not (mlp and optimal)"``.

* ``auto_swap KAN``: the reference KAN (``KAN(width=[9, 10, 10, 1], seed=5, noise_scale=1.0)``
  fitted as in ``swap_kan_pykan.py``: lamb=0.001, lamb_entropy=5., steps=20,
  stop_grid_update_step=1000, on the 9-bit majority task) is trained once with kanswap. Each round
  starts from a fresh copy of that state (untimed): kanswap's ``model.copy()`` after
  ``get_act(cache_data)``; pykan's ``kan.KAN(..., auto_save=False)`` with kanswap's state_dict
  loaded and a forward on kanswap's ``cache_data`` (so both start from the same activations). Then
  ``auto_swap()`` (pykan: one round after a warm-up round, it re-runs the model for every candidate swap),
  ``auto_swap(method="greedy")`` and ``auto_swap(method="optimal")`` (kanswap) are timed. The
  connection cost before and after goes into ``extra_info`` (greedy should equal pykan's).
* ``auto_swap MLP``: kanswap ``MLP(width=[64, 1024, 1024, 1024, 10], seed=0)`` with its random
  init weights, greedy (``--benchmark-min-rounds`` rounds) and optimal (one round: a 1024x1024
  linear assignment per layer per sweep). pykan's MLP auto_swap would take hours here.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

KAN_WIDTH = [9, 10, 10, 1]
KAN_FIT = dict(lamb=0.001, lamb_entropy=5.0, steps=20, stop_grid_update_step=1000)
MLP_WIDTH = [64, 1024, 1024, 1024, 10]


@pytest.fixture(scope="module")
def trained_kan(majority_data):
    """The reference KAN after kanswap's fit (with cache_data = the training inputs)."""
    from kanswap import KAN

    model = KAN(width=KAN_WIDTH, seed=5, noise_scale=1.0)
    model.fit(majority_data, log=KAN_FIT["steps"], **KAN_FIT)
    model.get_act(majority_data["train_input"])
    return model


def _kanswap_copy(trained):
    model = trained.copy()
    model.get_act(trained.cache_data)
    return model


def _pykan_copy(trained):
    import kan

    model = kan.KAN(width=KAN_WIDTH, seed=5, noise_scale=1.0, auto_save=False)
    model.load_state_dict(trained.state_dict())
    model(trained.cache_data)
    return model


def _cost(model, impl: str) -> float:
    if impl == "pykan":
        model.get_act()
        model.attribute()
    return float(model.connection_cost.detach())


@pytest.mark.parametrize("impl,method", [("kanswap", "greedy"), ("kanswap", "optimal"), ("pykan", "greedy")],
                         ids=["kanswap-greedy", "kanswap-optimal", "pykan"])
def test_auto_swap_kan(benchmark, bench_rounds, trained_kan, impl, method):
    benchmark.group = f"auto_swap KAN {KAN_WIDTH}"
    benchmark.extra_info.update(impl=impl, variant=f"auto_swap ({method})",
                                ref=(impl == "kanswap" and method == "greedy"))
    out = {}

    def setup():
        model = _pykan_copy(trained_kan) if impl == "pykan" else _kanswap_copy(trained_kan)
        out["model"] = model
        return (model,), {}

    # Both warm: one untimed warm-up round first (it imports scipy.optimize for optimal and fills
    # first-call caches), then kanswap's median of bench_rounds against one pykan round (~9 s each).
    if impl == "pykan":
        cost_before = _cost(_pykan_copy(trained_kan), impl)
        benchmark.pedantic(lambda m: m.auto_swap(), setup=setup, rounds=1, warmup_rounds=1)
    else:
        cost_before = _cost(_kanswap_copy(trained_kan), impl)
        benchmark.pedantic(lambda m: m.auto_swap(method=method), setup=setup, rounds=bench_rounds,
                           warmup_rounds=1)
    cost_after = _cost(out["model"], impl)
    benchmark.extra_info.update(cost_before=cost_before, cost_after=cost_after)
    assert cost_after <= cost_before + 1e-6


@pytest.fixture(scope="module")
def random_mlp():
    from kanswap import MLP

    return MLP(width=MLP_WIDTH, seed=0)


@pytest.mark.parametrize("method", ["greedy", "optimal"])
def test_auto_swap_mlp(benchmark, bench_rounds, random_mlp, method):
    import scipy.optimize  # noqa: F401  (imported by 'optimal'; keep the import out of the timing)

    benchmark.group = f"auto_swap MLP {MLP_WIDTH}"
    benchmark.extra_info.update(impl="kanswap", variant=f"auto_swap ({method})", ref=method == "greedy")
    out = {}

    def setup():
        out["model"] = copy.deepcopy(random_mlp)
        return (out["model"],), {}

    rounds = bench_rounds if method == "greedy" else 1
    benchmark.pedantic(lambda m: m.auto_swap(method=method), setup=setup, rounds=rounds, warmup_rounds=0)
    cost_before = float(random_mlp.connection_cost)
    cost_after = float(out["model"].connection_cost)
    benchmark.extra_info.update(cost_before=cost_before, cost_after=cost_after)
    assert cost_after <= cost_before
    # A permutation of hidden neurons leaves the function unchanged (forward on copies: it records
    # cache_data, which would make later rounds' permute_layer re-run the model).
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((8, MLP_WIDTH[0])).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(out["model"](x), copy.deepcopy(random_mlp)(x), atol=1e-4)
