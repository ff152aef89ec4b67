"""Shared set-up for the side-by-side benchmarks in bench/ (kanswap against pykan 0.2.8, flashkan,
inkan and plain torch, all in one process).

Run one file (an explicit path is collected although its name is bench_*.py):

    python -m pytest bench/bench_layer.py -p no:cacheprovider --benchmark-only --benchmark-json=layer.json

or all of them (this conftest collects bench_*.py when a folder is given):

    python -m pytest bench/ -p no:cacheprovider --benchmark-only --benchmark-json=bench.json

then ``python bench/report.py layer.json ...`` prints the markdown tables.

Every benchmark uses ``benchmark.pedantic`` with explicit rounds: ``--benchmark-min-rounds N``
(default 5) sets the number of timed rounds of the quick cases; cases whose single call takes
seconds (pykan) run fewer (see ``_measure``). Each benchmark records ``extra_info``:
``impl`` (kanswap, pykan, flashkan, inkan, nn.Linear), ``variant`` (what exactly ran) and
``ref`` (True on the kanswap entry that the report's ratios divide by).

``KANSWAP_BENCH_THREADS=N`` sets torch.set_num_threads(N) first (default: torch's choice, one
thread per core); the thread count and the load average at start go into the JSON's
machine_info["kanswap_bench"], which report.py prints.
"""

from __future__ import annotations

import fnmatch
import os
import platform
import time

import pytest
import torch


def pytest_configure(config):
    """KANSWAP_BENCH_THREADS=N sets torch's intra-op threads for the whole run (on a machine
    shared with other jobs, 1 thread avoids OpenMP spin contention that can inflate small ops
    a hundredfold; the default is torch's own choice)."""
    threads = os.environ.get("KANSWAP_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))


def pytest_collect_file(file_path, parent):
    """Collect bench/bench_*.py when pytest walks the folder (explicit file paths are collected
    by pytest itself; python_files patterns that already match are left to pytest too)."""
    if file_path.suffix != ".py" or not fnmatch.fnmatch(file_path.name, "bench_*.py"):
        return None
    if parent.session.isinitpath(file_path):
        return None
    if any(fnmatch.fnmatch(file_path.name, pat) for pat in parent.config.getini("python_files")):
        return None
    return pytest.Module.from_parent(parent, path=file_path)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_machine_info() -> dict:
    """CPU model, core counts, torch version and threads, load at start (also in the JSON)."""
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_avg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["kanswap_bench"] = bench_machine_info()


@pytest.fixture(scope="session")
def bench_rounds(request) -> int:
    """Timed rounds for quick cases: pytest-benchmark's --benchmark-min-rounds (default 5)."""
    return max(1, int(request.config.getoption("benchmark_min_rounds")))


def _measure(benchmark, fn, rounds: int, *, target_s: float = 0.05, slow_s: float = 1.0,
            slow_rounds: int = 2, warmup: bool = True):
    """Time fn() with benchmark.pedantic after one untimed warm-up call (compiles, first-touch
    allocations). Calls faster than target_s are repeated in each round (iterations) so a round
    lasts about target_s; calls slower than slow_s get min(rounds, slow_rounds) rounds.
    With warmup=False the first timed call is the first call (for seconds-long pykan cases)."""
    if warmup:
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
    else:
        t = slow_s
    iterations = max(1, min(1000, int(target_s / max(t, 1e-6)))) if t < target_s else 1
    if t >= slow_s:
        rounds = min(rounds, slow_rounds)
    return benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=0)


@pytest.fixture(scope="session")
def measure():
    """``measure(benchmark, fn, rounds, ...)``: see _measure."""
    return _measure


@pytest.fixture(scope="session")
def majority_data() -> dict:
    """The reference task's dataset: 512 9-bit inputs split as the reference scripts split them
    (numpy seed 5 before create_dataset_from_data)."""
    import numpy as np

    from kanswap import create_dataset_from_data
    from kanswap.data import majority_dataset

    np.random.seed(5)
    torch.manual_seed(5)
    x, y = majority_dataset()
    return create_dataset_from_data(x, y)
