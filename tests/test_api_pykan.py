"""pykan 0.2.8's remaining numeric API on kanswap.KAN, against pykan on the same state_dict:
get_fun, get_range, evaluate, speed, get_params, feature_interaction, score2alpha,
get_coordinate, remove_edge, remove_node, module, expand_width, expand_depth, perturb (the symbolic
methods are tested in tests/test_symbolic*.py)."""

import copy

import kan
import numpy as np
import pytest
import torch

import kanswap


def _pair(width, seed=3, grid=5, arity=2):
    """kanswap and pykan KANs with the same random parameters (spline, scales, affine values)."""
    ref = kan.KAN(width=copy.deepcopy(width), grid=grid, k=3, seed=seed, mult_arity=copy.deepcopy(arity),
                  auto_save=False)
    ours = kanswap.KAN(width=copy.deepcopy(width), grid=grid, k=3, seed=seed, mult_arity=copy.deepcopy(arity))
    gen = torch.Generator().manual_seed(seed + 100)
    state = ref.state_dict()
    for key, val in state.items():
        if key.endswith("coef"):
            state[key] = 0.5 * torch.randn(val.shape, generator=gen)
        elif key.endswith("scale_base") or key.endswith("scale_sp") or "node_scale" in key:
            state[key] = 1.0 + 0.3 * torch.randn(val.shape, generator=gen)
        elif "node_bias" in key:
            state[key] = 0.2 * torch.randn(val.shape, generator=gen)
    ref.load_state_dict(state)
    ours.load_state_dict(state)
    return ours, ref


def _x(B, n, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(B, n, generator=gen) * 2 - 1


def _rel(a, b) -> float:
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


@pytest.fixture
def pair(one_thread):
    ours, ref = _pair([3, 4, 2], seed=11)
    x = _x(37, 3, 12)
    x[0, 0] = ours.act_fun[0].grid[0, 4].item()  # a knot hit exactly
    x[1, 1] = 1.7  # outside the grid's interior
    ours(x)
    ref(x)
    return ours, ref, x


def test_get_fun_and_get_range_equal_pykan(pair):
    ours, ref, _ = pair
    for l, i, j in ((0, 0, 0), (0, 2, 3), (1, 3, 1)):
        xo, yo = ours.get_fun(l, i, j)
        xr, yr = ref.get_fun(l, i, j)
        assert _rel(xo, xr) < 1e-6  # measured 1.1e-7 on layer 1 (float32 forward order)
        assert _rel(yo, yr) < 1e-5  # measured 2e-7 (float32 spline evaluation order)
        ro, rr = ours.get_range(l, i, j, verbose=False), ref.get_range(l, i, j, verbose=False)
        assert all(isinstance(v, np.ndarray) and v.shape == () for v in ro)
        np.testing.assert_allclose(np.array(ro, dtype=float), np.array(rr, dtype=float), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        ours.get_fun(0, 3, 0)


def test_evaluate_speed_get_params_equal_pykan(pair):
    ours, ref, _ = pair
    data = {"test_input": _x(19, 3, 5), "test_label": torch.randn(19, 2, generator=torch.Generator().manual_seed(6))}
    eo, er = ours.evaluate(data), ref.evaluate(data)
    assert eo.keys() == er.keys()
    assert abs(eo["test_loss"] - er["test_loss"]) <= 1e-5 * er["test_loss"]
    assert eo["n_edge"] == er["n_edge"] and eo["n_grid"] == er["n_grid"]
    with pytest.raises(KeyError, match="test_label"):
        ours.evaluate({"test_input": data["test_input"]})
    assert [p.shape for p in ours.get_params()] == [p.shape for p in ref.get_params()]
    for lamb in (0.0, 0.1):
        ours.save_act = ref.save_act = True
        assert ours.disable_symbolic_in_fit(lamb) == ref.disable_symbolic_in_fit(lamb) == (True, True)
        assert (ours.save_act, ours.symbolic_enabled) == (ref.save_act, ref.symbolic_enabled)
        ours.symbolic_enabled = ref.symbolic_enabled = True
    assert ours.speed() is ours
    assert (ours.save_act, ours.symbolic_enabled, ours.auto_save) == (False, False, False)
    assert ours(data["test_input"]).shape == (19, 2)


def test_feature_interaction_equals_pykan(one_thread):
    ours, ref = _pair([4, 5, 3, 1], seed=4)
    with torch.no_grad():
        for model in (ours, ref):  # input 3 reaches nothing: feature sets differ per node
            model.act_fun[0].mask[3, :2] = 0.0
            model.act_fun[0].mask[0, 2:] = 0.0
    x = _x(41, 4, 8)
    ours(x)
    ref(x)
    for l in (1, 2, 3):
        for th in (1e-2, 0.3):
            expect = {tuple(int(v) for v in key): n for key, n in ref.feature_interaction(l, feature_th=th).items()}
            assert ours.feature_interaction(l, feature_th=th) == expect
    assert len(ours.feature_interaction(1, feature_th=0.3)) > 1


def test_score2alpha_and_get_coordinate_match_pykan(pair):
    ours, ref, _ = pair
    ref.attribute()
    scores = [s.detach() for s in ref.edge_scores]
    # pykan's connection_cost places n nodes at get_coordinate(n): rebuild it from ours.
    cost = sum((torch.abs(ours.get_coordinate(s.shape[0])[:, None] - ours.get_coordinate(s.shape[1])[None, :])
                * s).sum() for s in scores)
    assert abs(cost.item() - ref.connection_cost.item()) <= 1e-6 * ref.connection_cost.item()
    s = np.array([0.0, 0.1, 2.0])
    np.testing.assert_allclose(ours.score2alpha(s), np.tanh(3 * s))
    assert torch.allclose(ours.score2alpha(torch.tensor(s), beta=2), torch.tanh(2 * torch.tensor(s)))
    with pytest.raises(ValueError, match="positive integer"):
        ours.get_coordinate(0)


def test_remove_edge_node_and_module_equal_pykan(pair):
    ours, ref, x = pair
    for model in (ours, ref):
        model.remove_edge(0, 1, 2, log_history=False)
        model.remove_node(1, 3, mode="up", log_history=False)
        model.remove_node(1, 0, mode="down", log_history=False)
        model.remove_node(1, 2, log_history=False)
    for l in range(2):
        assert torch.equal(ours.act_fun[l].mask, ref.act_fun[l].mask)
    assert _rel(ours(x), ref(x)) < 1e-5  # measured 5e-8
    o2, r2 = _pair([3, 4, 2], seed=2)
    o2.module(0, "[0,1]->[1,2]->[1,2]->[0]")
    r2.module(0, "[0,1]->[1,2]->[1,2]->[0]")
    for l in range(2):
        assert torch.equal(o2.act_fun[l].mask, r2.act_fun[l].mask)
        assert torch.equal(o2.symbolic_fun[l].mask, r2.symbolic_fun[l].mask)
    assert _rel(o2(x), r2(x)) < 1e-5
    with pytest.raises(ValueError, match="no incoming"):
        ours.remove_node(0, 1, mode="down")
    with pytest.raises(ValueError, match="out of range"):
        ours.remove_edge(0, 0, 4)


def test_remove_node_mult_uses_subnodes_D23_like():
    ours, _ = _pair([2, [1, 1], 1], seed=5)
    ours.remove_node(1, 1, mode="down", log_history=False)  # the mult node: subnodes 1 and 2
    assert torch.equal(ours.act_fun[0].mask[:, 1:], torch.zeros(2, 2))
    assert torch.equal(ours.act_fun[0].mask[:, 0], torch.ones(2))


def test_expand_width_keeps_function_where_pykan_loses_it(pair):
    ours, ref, x = pair
    y = ours(x).detach()
    ref.expand_width(1, 2)
    ours.expand_width(1, 2)
    assert ours.width == ref.width == [[3, 0], [6, 0], [2, 0]]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert _rel(ours(x), y) < 1e-6  # measured 0: the new nodes' edges are masked
    assert _rel(ref(x), y) > 0.5  # pykan: fresh layers with mask 0, the function is gone
    assert torch.equal(ours.act_fun[0].mask[:, :2], torch.zeros(3, 2))
    ours.expand_width(1, 1, sum_bool=False, mult_arity=3)
    assert ours.width[1] == [6, 1] and ours.width_out[1] == 9 and ours.mult_arity[1] == [3]
    assert _rel(ours(x), y) < 1e-6
    ours.perturb(0.5, mode="all")
    assert (ours.act_fun[0].mask == 0.5).sum() > 0


def test_expand_depth_equals_pykan():
    # pykan's expand_depth needs a list mult_arity (an int one raises AttributeError).
    arity = [[], [], []]
    ours, ref = _pair([3, 4, 2], seed=9, arity=arity)
    x = _x(29, 3, 1)
    y = ours(x).detach()
    ref.expand_depth()
    ours.expand_depth()
    assert ours.width == ref.width and ours.depth == ref.depth == 3
    assert _rel(ours(x), y) < 1e-5  # measured 3e-7: the spline reproduces y = x on the outputs' range
    assert _rel(ours(x), ref(x)) < 1e-5
    default, _ = _pair([3, 4, 2], seed=9)
    default(x)
    default.expand_depth()
    assert _rel(default(x), y) < 1e-5


def test_perturb_non_intrusive_keeps_function(pair):
    ours, ref, x = pair
    for model in (ours, ref):
        model.remove_node(1, 3, log_history=False)  # node 3 inactive
    y = ours(x).detach()
    ours.perturb(mag=0.7)
    m0, m1 = ours.act_fun[0].mask, ours.act_fun[1].mask
    assert torch.equal(m0[:, 3], torch.full((3,), 0.7))  # edges into the inactive node switched on
    assert torch.equal(m1[3], torch.ones(2)) and torch.equal(ours.act_fun[1].scale_sp[3], torch.zeros(2))
    assert _rel(ours(x), y) < 1e-6  # measured 0
    ref.perturb(mag=0.7)  # pykan: every numeric edge counts as inactive; the last layer is zeroed
    assert _rel(ref(x), y) > 0.5
    with pytest.raises(ValueError, match="mode"):
        ours.perturb(mode="bold")
