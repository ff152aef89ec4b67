"""kanswap's fit against pykan 0.2.8's, on the workloads of the fit engine's targets, one process, CPU.

    python -m pytest bench/bench_fit.py -p no:cacheprovider --benchmark-only --benchmark-json=bench-fit.json
    python bench/report.py bench-fit.json
    python bench/bench_fit.py          # ops per closure call (torch profiler) and the cold-process demo
    python bench/bench_fit.py --cold   # reference KAN fit: first in a fresh process against the second

Workloads (``WORKLOADS``; pykan's KAN built with ``auto_save=False``, same seeds, same data tensors):

* ``ref KAN``: ``KAN(width=[9, 10, 10, 1], seed=5, noise_scale=1.0)``, ``fit(lamb=0.001,
  lamb_entropy=5., steps=20, stop_grid_update_step=1000, metrics=[train_acc, test_acc])`` on the
  9-bit majority task, as the reference script;
* ``ref MLP``: ``MLP(width=[9, 20, 20, 1], seed=5)``, ``fit(lamb=1e-4, lamb_entropy=2., steps=100,
  reg_metric='w', metrics=...)``, the reference script's settings with 100 steps instead of 1000;
* ``KAN [2,5,1]``: grid 5, k 3, 1000 samples of exp(sin(pi x) + y^2), 20 steps, lamb 0.01;
* ``KAN [100,10,10,1]``: 1000 samples of exp(mean_i sin(pi x_i) + mean_{i<10} x_i^2), 50 steps,
  lamb 1e-3;
* ``KAN [16,64,64,4]``: 2048 samples of four sin(pi * sum of 4 inputs), 3 steps, lamb 0 (pykan's
  (batch, in, out) tensors dominate);
* ``ref KAN busy``: kanswap's reference fit while another process keeps one core busy
  (``python -c "while 1: pass"``, killed afterwards); its ratio to ``ref KAN`` is the busy target.

Each round builds a fresh model (untimed) and times one fit, after one untimed warm-up fit per
implementation (pykan's first ``torch.optim`` optimizer imports ``torch._dynamo``: seconds). pykan
runs one timed round (its fits take seconds to minutes), kanswap ``min(--benchmark-min-rounds, 3)``.
Final train loss and accuracies go into ``extra_info``. On a shared machine absolute times vary a
lot; the ratios of interleaved runs are the figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

ACC = ["train_loss", "train_acc", "test_acc", "reg"]


def _target_2(x):
    return torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)


def _target_100(x):
    return torch.exp(torch.sin(torch.pi * x).mean(dim=1, keepdim=True) + (x[:, :10] ** 2).mean(dim=1, keepdim=True))


def _target_16(x):
    return torch.stack([torch.sin(torch.pi * x[:, 4 * i:4 * i + 4].sum(1)) for i in range(4)], dim=1)


# name: (kind, model kwargs, data (None = the majority task) as (target, n_var, train_num), fit kwargs)
WORKLOADS = {
    "ref KAN": ("KAN", dict(width=[9, 10, 10, 1], seed=5, noise_scale=1.0), None,
                dict(lamb=0.001, lamb_entropy=5.0, steps=20, stop_grid_update_step=1000)),
    "ref MLP": ("MLP", dict(width=[9, 20, 20, 1], seed=5), None,
                dict(lamb=0.0001, lamb_entropy=2.0, steps=100, reg_metric="w")),
    "KAN [2,5,1]": ("KAN", dict(width=[2, 5, 1], grid=5, k=3, seed=0), (_target_2, 2, 1000),
                    dict(lamb=0.01, steps=20)),
    "KAN [100,10,10,1]": ("KAN", dict(width=[100, 10, 10, 1], seed=0), (_target_100, 100, 1000),
                          dict(lamb=0.001, steps=50)),
    "KAN [16,64,64,4]": ("KAN", dict(width=[16, 64, 64, 4], seed=0), (_target_16, 16, 2048), dict(steps=3)),
}


def make_model(impl: str, kind: str, kwargs: dict):
    if impl == "kanswap":
        from kanswap import KAN, MLP

        return (KAN if kind == "KAN" else MLP)(**kwargs)
    if kind == "KAN":
        from kan import KAN

        return KAN(**kwargs, auto_save=False)
    from kan.MLP import MLP  # importing kan.MLP runs torch.manual_seed(0); MLP() reseeds anyway

    return MLP(**kwargs)


def make_data(spec, majority_data: dict) -> dict:
    if spec is None:
        return majority_data
    from kanswap import create_dataset

    target, n_var, n = spec
    return create_dataset(target, n_var=n_var, train_num=n, test_num=n // 4, seed=0)


def _metrics(model, data: dict):
    def train_acc():
        return torch.mean(((model(data["train_input"]) > 0.5) == data["train_label"]).float())

    def test_acc():
        return torch.mean(((model(data["test_input"]) > 0.5) == data["test_label"]).float())

    return [train_acc, test_acc]


def run_fit(impl: str, name: str, data: dict) -> dict:
    kind, model_kwargs, spec, fit_kwargs = WORKLOADS[name]
    model = make_model(impl, kind, model_kwargs)
    extra = dict(metrics=_metrics(model, data), display_metrics=ACC) if spec is None else {}
    if impl == "kanswap":
        extra["progress"] = False
    return model.fit(data, **fit_kwargs, **extra)


@pytest.fixture
def busy_core():
    """Another process keeping one core busy for the duration of the test."""
    proc = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    time.sleep(0.5)
    yield proc
    proc.kill()
    proc.wait()


def _bench(benchmark, rounds: int, impl: str, name: str, data: dict) -> None:
    out = {}

    def setup():
        np.random.seed(0)
        return (), {}

    def run():
        out["results"] = run_fit(impl, name, data)

    benchmark.pedantic(run, setup=setup, rounds=rounds, warmup_rounds=1, iterations=1)
    res = out["results"]
    benchmark.extra_info.update({key: float(res[key][-1]) for key in ACC[:3] if key in res})
    assert np.isfinite([float(v) for v in res["train_loss"]]).all()


@pytest.mark.parametrize("impl", ["kanswap", "pykan"])
@pytest.mark.parametrize("name", list(WORKLOADS))
def test_fit(benchmark, bench_rounds, majority_data, name, impl):
    benchmark.group = f"fit {name}"
    benchmark.extra_info.update(impl=impl, variant=f"{WORKLOADS[name][0]}.fit", ref=impl == "kanswap")
    rounds = 1 if impl == "pykan" else min(bench_rounds, 3)
    _bench(benchmark, rounds, impl, name, make_data(WORKLOADS[name][2], majority_data))


def test_fit_busy(benchmark, bench_rounds, majority_data, busy_core):
    benchmark.group = "fit ref KAN"
    benchmark.extra_info.update(impl="kanswap busy", variant="KAN.fit, one other core-busy process", ref=False)
    _bench(benchmark, min(bench_rounds, 3), "kanswap", "ref KAN", majority_data)


# -- run as a script: ops per closure call, the demo in cold processes -------------------------------------------
def _count_ops(fn) -> int:
    """Top-level aten ops (no aten op above them) in one call of fn, by the torch profiler."""
    fn()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    count = 0
    for ev in prof.events():
        if not ev.name.startswith("aten::"):
            continue
        parent = ev.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        count += parent is None
    return count


def ops_per_closure(majority_data: dict) -> dict:
    """Ops per closure call of the reference KAN and MLP fits: kanswap's objective (as fit builds it)
    and pykan's closure body (forward, loss, get_reg, backward)."""
    from kanswap.flat import FlatParams
    from kanswap.kan_objective_fused import kan_objective
    from kanswap.mlp_objective import mlp_objective

    x, y = majority_data["train_input"], majority_data["train_label"]
    out = {}
    for name in ("ref KAN", "ref MLP"):
        kind, model_kwargs, _, fit_kwargs = WORKLOADS[name]
        model = make_model("kanswap", kind, model_kwargs)
        FlatParams([p for p in model.parameters() if p.requires_grad])
        if kind == "KAN":
            f = kan_objective(model, lamb=1e-3, reg_metric="edge_forward_spline_n", lamb_l1=1.0, lamb_entropy=5.0,
                              lamb_coef=0.0, lamb_coefdiff=0.0)
        else:
            f = mlp_objective(model, lamb=1e-4, reg_metric="w", lamb_l1=1.0, lamb_entropy=2.0)
        out[f"{name} kanswap"] = _count_ops(lambda f=f: f(x, y))
        ref = make_model("pykan", kind, model_kwargs)

        def pykan_closure(ref=ref, kind=kind):
            ref.zero_grad()
            loss = torch.mean((ref.forward(x) - y) ** 2)
            if kind == "KAN":
                reg = ref.get_reg("edge_forward_spline_n", 1.0, 5.0, 0.0, 0.0)
            else:
                reg = ref.get_reg("w", 1.0, 2.0)
            (loss + 1e-3 * reg).backward()

        out[f"{name} pykan"] = _count_ops(pykan_closure)
    return out


def demo_cold(reference_dir: str | None) -> dict:
    """Seconds of ``python -m kanswap demo`` and of the two pykan reference scripts, each in a fresh
    process in a temporary folder (they write files)."""
    import tempfile

    runs = {"kanswap demo": [sys.executable, "-m", "kanswap", "demo"]}
    if reference_dir:
        for script in ("swap_kan_pykan.py", "swap_mlp_pykan.py"):
            runs[script] = [sys.executable, os.path.join(reference_dir, script)]
    env = dict(os.environ, MPLBACKEND="Agg", KANSWAP_PROGRESS="0")
    out = {}
    for label, cmd in runs.items():
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run(cmd, cwd=tmp, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            out[label] = time.perf_counter() - t0
    return out


_COLD_FIT = """
import time
t0 = time.perf_counter()
import numpy as np, torch
from kanswap import KAN, create_dataset_from_data
from kanswap.data import majority_dataset
t1 = time.perf_counter()
torch.set_num_threads(1)
fits = []
for _ in range(2):
    np.random.seed(5)
    torch.manual_seed(5)
    data = create_dataset_from_data(*majority_dataset())
    model = KAN(width=[9, 10, 10, 1], seed=5, noise_scale=1.0)
    t = time.perf_counter()
    model.fit(data, lamb=0.001, lamb_entropy=5.0, steps=20, stop_grid_update_step=1000, progress=False)
    fits.append(time.perf_counter() - t)
print(t1 - t0, fits[0], fits[1])
"""


def cold_first_fit(repeats: int = 3) -> list[tuple[float, float, float]]:
    """(import seconds, first fit, second fit) of the reference KAN fit, each triple from a fresh
    process: the first fit pays every first-use cost (library load, lazy imports, caches)."""
    out = []
    for _ in range(repeats):
        res = subprocess.run([sys.executable, "-c", _COLD_FIT], check=True, capture_output=True, text=True,
                             env=dict(os.environ, KANSWAP_PROGRESS="0"))
        out.append(tuple(float(v) for v in res.stdout.split()))
    return out


if __name__ == "__main__":
    import argparse

    from kanswap import create_dataset_from_data
    from kanswap.data import majority_dataset

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-dir", default=None, help="folder holding pykan's two reference scripts")
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--cold", action="store_true", help="only the cold-process first fit against a warm one")
    args = parser.parse_args()
    if args.cold:
        for imp, first, second in cold_first_fit():
            print(f"fresh process: import {imp:.2f} s, first reference KAN fit {first:.2f} s, second {second:.2f} s, "
                  f"first - second {first - second:+.2f} s")
        sys.exit(0)
    np.random.seed(5)
    torch.manual_seed(5)
    data = create_dataset_from_data(*majority_dataset())
    for key, n in ops_per_closure(data).items():
        print(f"ops per closure call, {key}: {n}")
    if not args.no_demo:
        for key, secs in demo_cold(args.reference_dir).items():
            print(f"cold process, {key}: {secs:.1f} s")
