"""The hypothesis tree (KAN.tree, MLP.tree) against pykan 0.2.8's kan.hypothesis on the same
functions and state_dicts (pykan's MLP.tree raises NameError)."""

import kan
import kan.hypothesis as ref_hyp
import pytest
import torch

import kanswap
import kanswap.tree as hyp


def _nested(x):
    sq = x ** 2
    return (((sq[:, [0]] + sq[:, [1]]) ** 2 + (sq[:, [2]] + sq[:, [3]]) ** 2) ** 2
            + ((sq[:, [4]] + sq[:, [5]]) ** 2 + (sq[:, [6]] + sq[:, [7]]) ** 2) ** 2)


def test_molecules_and_properties_equal_pykan_on_a_function(one_thread):
    x = torch.randn(100, 8, generator=torch.Generator().manual_seed(0))
    levels = hyp.get_molecule(_nested, x)
    assert levels == ref_hyp.get_molecule(_nested, x, verbose=False)
    assert levels[1:] == [[[0, 1], [2, 3], [4, 5], [6, 7]], [[0, 1, 2, 3], [4, 5, 6, 7]], [list(range(8))]]
    assert hyp.get_tree_node(_nested, x, levels, skip_test=False) == \
        ref_hyp.get_tree_node(_nested, x, levels, skip_test=False)
    f = lambda z: z[:, [0]] ** 2 * (z[:, [1]] + z[:, [2]])  # noqa: E731
    x3 = torch.randn(100, 3, generator=torch.Generator().manual_seed(1))
    assert hyp.test_separability(f, x3, [[0], [1, 2]], mode="mul")
    assert not hyp.test_separability(f, x3, [[0], [1, 2]], mode="add")
    assert hyp.test_symmetry(f, x3, [1, 2]) and not hyp.test_symmetry(f, x3, [0, 2])


def test_batch_hessian_matches_autograd():
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    f = lambda z: (z[:, [0]] * z[:, [1]] ** 2 + torch.sin(z[:, [2]]) * z[:, [0]])  # noqa: E731
    h = hyp.batch_hessian(f, x)
    for b in range(7):
        ref = torch.autograd.functional.hessian(lambda v: f(v[None])[0, 0], x[b])
        torch.testing.assert_close(h[b], ref, rtol=1e-12, atol=1e-12)


def test_kan_tree_equals_pykan_hypothesis(one_thread):
    ref = kan.KAN(width=[4, 2, 1], grid=5, k=3, seed=3, noise_scale=1.0, auto_save=False)
    ours = kanswap.KAN(width=[4, 2, 1], grid=5, k=3, seed=3, noise_scale=1.0)
    with torch.no_grad():
        ref.act_fun[0].mask.data = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    ours.load_state_dict(ref.state_dict())
    x = torch.rand(60, 4, generator=torch.Generator().manual_seed(4)) * 2 - 1
    # The per-edge spline path is twice differentiable and equals the fast forward.
    f = hyp.model_function(ours)
    torch.testing.assert_close(f(x), ours(x), rtol=1e-5, atol=1e-6)
    x1 = x[:5].clone().requires_grad_(True)
    torch.testing.assert_close(hyp.batch_jacobian(f, x1), hyp.batch_jacobian(ours, x1), rtol=1e-4, atol=1e-6)
    levels, arities, props = hyp.tree_structure(ours, x)
    ref_levels = ref_hyp.get_molecule(ref, x, verbose=False)
    assert levels == ref_levels
    assert (arities, props) == ref_hyp.get_tree_node(ref, x, ref_levels, sep_th=1e-1, skip_test=False)
    assert levels[1] == [[0, 1], [2, 3]] and props == [["GS", "GS"], ["Add"]]
    fig = ours.tree(x, in_var=["a", "b", "c", "d"])
    assert fig.axes and not fig.axes[0].axison
    with pytest.raises(ValueError, match="in_var has 2 names"):
        ours.tree(x, in_var=["a", "b"])


def test_mlp_tree_runs_where_pykans_raises():
    from kan.MLP import MLP as RefMLP

    model = kanswap.MLP(width=[2, 4, 1], seed=0)
    x = torch.rand(30, 2, generator=torch.Generator().manual_seed(5))
    model(x)
    assert model.tree().axes
    ref = RefMLP(width=[2, 4, 1], seed=0)
    ref.load_state_dict(model.state_dict())
    ref(x)
    with pytest.raises(NameError, match="plot_tree"):  # kan/MLP.py does not import it
        ref.tree(x)
    levels = kanswap.tree.tree_structure(model, x)[0]
    assert levels == ref_hyp.get_molecule(ref, x, verbose=False)
