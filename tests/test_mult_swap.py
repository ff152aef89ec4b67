"""auto_swap on node layers with multiplication nodes (kanswap.mult_swap.grouped_greedy_perms):
the same decisions as a greedy that re-runs the model for every candidate swap, and, on layers of
sum nodes only, the same permutations as the placement-cost greedy of kanswap.swap."""

import pytest
import torch

from kanswap import KAN
from kanswap import swap as swap_math
from kanswap.mult_swap import grouped_greedy_perms


def _model(width, mult_arity, seed):
    """A float64 KAN with random subnode biases (so products are not symmetric in their inputs)
    and cached data: scores have no ties."""
    model = KAN(width=width, mult_arity=mult_arity, seed=seed, noise_scale=1.0).to(torch.float64)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for l in range(model.depth):
            bias = model.subnode_bias[l]
            bias.copy_(torch.randn(bias.shape, generator=g, dtype=torch.float64))
    model(torch.rand(53, model.width_in[0], generator=g, dtype=torch.float64) * 2 - 1)
    return model


def _rerun_greedy(model, layers):
    """pykan's auto_swap rule by brute force: for i in 0..n-1, exchange i with the partner of its
    kind whose swap gives the lowest connection cost, each cost from a fresh forward + attribution."""
    for l in layers:
        n, n_sum = model.width_in[l], model.width[l][0]
        for i in range(n):
            same = range(n_sum) if i < n_sum else range(n_sum, n)
            best_j, best = i, float(model.connection_cost)
            for j in same:
                trial = model.copy()
                trial.swap(l, i, j, log_history=False)
                cost = float(trial.connection_cost)
                if cost < best:
                    best_j, best = j, cost
            if best_j != i:
                model.swap(l, i, best_j, log_history=False)


@pytest.mark.parametrize(("width", "mult_arity", "seed"), [
    pytest.param([3, [4, 3], 3], 2, 0, id="3-[4,3]-3"),
    pytest.param([4, [3, 3], [4, 2], 2], [[], [2, 3, 2], [3, 2], []], 1, id="arities-2-3"),
    pytest.param([5, [2, 3], 5, 1], 3, 2, id="arity-3-then-sum"),
])
def test_auto_swap_with_mult_nodes_equals_rerun_greedy(width, mult_arity, seed):
    ours = _model(width, mult_arity, seed)
    ref = ours.copy()
    ref.get_act(ours.cache_data)
    before = float(ours.connection_cost)
    ours.auto_swap()
    _rerun_greedy(ref, range(1, ref.depth))
    for name, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name
    assert ours.mult_arity == ref.mult_arity
    assert float(ours.connection_cost) <= before + 1e-12
    # The decisions moved something: the test would pass vacuously on an identity permutation.
    assert float(ours.connection_cost) < before - 1e-6


@pytest.mark.parametrize("sizes", [(4, 7, 5, 3), (6, 9, 2), (3, 11, 8, 6, 2)])
def test_sum_nodes_only_equals_placement_cost_greedy(sizes):
    g = torch.Generator().manual_seed(sum(sizes))
    scores = [torch.rand(sizes[l + 1], sizes[l], generator=g, dtype=torch.float64) for l in range(len(sizes) - 1)]
    layers = range(1, len(sizes) - 1)
    ours = grouped_greedy_perms(scores, layers, {l: [[i] for i in range(sizes[l])] for l in layers},
                                {l: sizes[l] for l in layers})
    want = swap_math.greedy_perms(scores)
    for l in layers:
        assert torch.equal(ours[l], want[l - 1]), l
