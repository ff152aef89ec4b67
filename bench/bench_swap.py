"""Timing of greedy and optimal hidden-layer permutations on an MLP-sized problem.

Run: ``pytest bench/bench_swap.py --benchmark-only``. Scores are uniform random matrices for widths
[64, 1024, 1024, 1024, 10]; this is close to the worst case for ``optimal`` (nearly degenerate
assignments whose sweeps converge slowly; ``optimal_perms`` stops once a sweep gains < 0.01%).
"""

from __future__ import annotations

import pytest
import torch

from kanswap import swap

WIDTHS = [64, 1024, 1024, 1024, 10]


@pytest.fixture(scope="module")
def scores() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(WIDTHS[k + 1], WIDTHS[k], generator=g) for k in range(len(WIDTHS) - 1)]


def _cost(scores, perms) -> float:
    for l, p in enumerate(perms, 1):
        scores = swap.apply_perm_to_scores(scores, l, p)
    return float(swap.connection_cost([s.double() for s in scores]))


def test_bench_greedy(benchmark, scores):
    perms = benchmark.pedantic(swap.greedy_perms, args=(scores,), rounds=3, iterations=1)
    benchmark.extra_info["cc_before"] = _cost(scores, [])
    benchmark.extra_info["cc_after"] = _cost(scores, perms)


def test_bench_optimal(benchmark, scores):
    perms = benchmark.pedantic(swap.optimal_perms, args=(scores,), rounds=1, iterations=1)
    benchmark.extra_info["cc_greedy"] = _cost(scores, swap.greedy_perms(scores))
    benchmark.extra_info["cc_after"] = _cost(scores, perms)
