"""Symbolic regression side by side: kanswap's batched fits against pykan 0.2.8, on CPU, in one
process, both starting from the same state_dict and the same recorded activations.

Run (pykan's side dominates: about 5-10 minutes on 2 idle cores, one thread each):

    KANSWAP_BENCH_THREADS=1 OMP_NUM_THREADS=1 python -m pytest bench/bench_symbolic.py -p no:cacheprovider \\
        --benchmark-only --benchmark-json=bench-symbolic.json
    python bench/report.py bench-symbolic.json

* ``auto_symbolic [9, 10, 10, 1]``: the reference KAN (``KAN(width=[9, 10, 10, 1], seed=5,
  noise_scale=1.0)`` fitted with lamb=0.001, lamb_entropy=5., 20 steps on the 9-bit majority
  task, 409 samples), all 200 edges, library ``REF_LIB`` (6 functions: pykan's whole library of
  29 would take it about 20 minutes).
* ``auto_symbolic [2, 5, 1]``: ``KAN(width=[2, 5, 1], grid=5, k=3, seed=1)`` fitted 20 steps
  (lamb 0.01) to exp(sin(pi x) + y^2) on 1000 samples, 15 edges, pykan's whole library.
* ``suggest_symbolic``: edge (0, 0, 0) of that KAN, pykan's whole library.

Each round starts from a fresh copy (untimed): kanswap's ``copy()`` plus ``get_act``; pykan's
``kan.KAN(..., auto_save=False)`` with kanswap's state_dict and a forward on the same data. pykan
runs one round after an untimed warm-up call of ``fit_params``. extra_info records how many edges
got the same function on both sides.
"""

from __future__ import annotations

import pytest
import torch

REF_WIDTH = [9, 10, 10, 1]
REF_LIB = ["x", "x^2", "sin", "tanh", "exp", "gaussian"]
SMALL_WIDTH = [2, 5, 1]


@pytest.fixture(scope="module")
def reference_kan(majority_data):
    from kanswap import KAN

    model = KAN(width=REF_WIDTH, seed=5, noise_scale=1.0)
    model.fit(majority_data, lamb=0.001, lamb_entropy=5.0, steps=20, stop_grid_update_step=1000, progress=False)
    model.get_act(majority_data["train_input"])
    return model, dict(width=REF_WIDTH, seed=5, noise_scale=1.0)


@pytest.fixture(scope="module")
def small_kan():
    from kanswap import KAN, create_dataset

    f = lambda x: torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)  # noqa: E731
    dataset = create_dataset(f, n_var=2)
    model = KAN(width=SMALL_WIDTH, grid=5, k=3, seed=1)
    model.fit(dataset, steps=20, lamb=0.01, progress=False)
    model.get_act(dataset["train_input"])
    return model, dict(width=SMALL_WIDTH, grid=5, k=3, seed=1)


def _copy(model, config, impl):
    if impl == "kanswap":
        out = model.copy()
        out.get_act(model.cache_data)
        return out
    import kan

    out = kan.KAN(**config, auto_save=False)
    out.load_state_dict(model.state_dict())
    out(model.cache_data)
    return out


def _names(model) -> list[str]:
    return [name for sym in model.symbolic_fun for row in sym.funs_name for name in row]


def _warm_pykan():
    from kan.utils import fit_params

    x = torch.linspace(-1, 1, 50)
    fit_params(x, torch.sin(x), torch.sin, verbose=False)


def _run_auto(benchmark, bench_rounds, fixture, impl, lib, group):
    trained, config = fixture
    benchmark.group = group
    benchmark.extra_info.update(impl=impl, variant=f"auto_symbolic (lib of {len(lib) if lib else 29})",
                                ref=impl == "kanswap")
    out = {}

    def setup():
        out["model"] = _copy(trained, config, impl)
        return (out["model"],), {}

    if impl == "pykan":
        _warm_pykan()
    benchmark.pedantic(lambda m: m.auto_symbolic(lib=lib, verbose=0), setup=setup,
                       rounds=1 if impl == "pykan" else bench_rounds, warmup_rounds=0 if impl == "pykan" else 1)
    benchmark.extra_info["functions"] = _names(out["model"])


@pytest.mark.parametrize("impl", ["kanswap", "pykan"])
def test_auto_symbolic_reference(benchmark, bench_rounds, reference_kan, impl):
    _run_auto(benchmark, bench_rounds, reference_kan, impl, REF_LIB, f"auto_symbolic {REF_WIDTH}")


@pytest.mark.parametrize("impl", ["kanswap", "pykan"])
def test_auto_symbolic_small(benchmark, bench_rounds, small_kan, impl):
    _run_auto(benchmark, bench_rounds, small_kan, impl, None, f"auto_symbolic {SMALL_WIDTH} grid 5")


@pytest.mark.parametrize("impl", ["kanswap", "pykan"])
def test_suggest_symbolic(benchmark, bench_rounds, small_kan, impl):
    trained, config = small_kan
    benchmark.group = "suggest_symbolic one edge"
    benchmark.extra_info.update(impl=impl, variant="suggest_symbolic(0, 0, 0), lib of 29", ref=impl == "kanswap")
    out = {}

    def setup():
        return (_copy(trained, config, impl),), {}

    def run(model):
        out["best"] = model.suggest_symbolic(0, 0, 0, verbose=False)[0]

    if impl == "pykan":
        _warm_pykan()
    benchmark.pedantic(run, setup=setup, rounds=1 if impl == "pykan" else bench_rounds,
                       warmup_rounds=0 if impl == "pykan" else 1)
    benchmark.extra_info["best"] = out["best"]
