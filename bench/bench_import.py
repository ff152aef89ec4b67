"""Cost of a tutorial's first cell: ``from kanswap import *`` against pykan's ``from kan import *``,
and of ``import kanswap`` alone (what ``kanswap --version`` pays), each in a fresh interpreter.

Run: ``python -m pytest bench/bench_import.py -p no:cacheprovider --benchmark-only -s``.

The floor is ``import torch, numpy, matplotlib.pyplot`` (what the star import must load to give
``torch``, ``np``, ``plt``); pykan's star import also loads sympy, pandas, sklearn and yaml. Each
timed round starts one new Python process per case, the cases interleaved (so load on a shared
machine hits them alike); times include interpreter start-up. The benchmark's own timing is one
whole round; ``extra_info`` holds each case's median over the rounds and its ratio to kanswap's
star import, and the test prints them.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest

CASES = {
    "kanswap-star": "from kanswap import *",
    "pykan-star": "from kan import *",
    "floor": "import torch, numpy, matplotlib.pyplot",
    "kanswap-bare": "import kanswap",
}


def test_bench_import_interleaved(benchmark):
    pytest.importorskip("kan")
    times: dict[str, list[float]] = {case: [] for case in CASES}

    def one_round():
        for case, code in CASES.items():
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import matplotlib; matplotlib.use('Agg'); " + code],
                           check=True, capture_output=True)
            times[case].append(time.perf_counter() - t)

    benchmark.pedantic(one_round, rounds=5, iterations=1, warmup_rounds=1)
    medians = {case: statistics.median(ts[1:]) for case, ts in times.items()}  # [0] is the warm-up round
    ref = medians["kanswap-star"]
    benchmark.extra_info.update(impl="kanswap", variant="import costs, cases interleaved", ref=True,
                                medians_s=medians, ratio_to_kanswap_star={c: m / ref for c, m in medians.items()})
    for case, m in medians.items():
        print(f"{case:>14}: median {m:.3f} s  ({m / ref:.2f}x kanswap's star import)  {CASES[case]}")
