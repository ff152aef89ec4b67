"""Pruning (pykan's defects D6-D9) on the fitted reference KAN: accuracy, structure, the original
left untouched, hyperparameters kept, no reseeding, pykan's widths, mean compensation, errors,
prune_input and manual prune_node."""

import os
import random

import numpy as np
import pytest
import torch

from kanswap import KAN, create_dataset_from_data
from kanswap.data import majority_dataset

NODE_TH = 5e-2
TRIPLES = ((0, 1, 2), (3, 4, 5), (6, 7, 8))


@pytest.fixture(scope="module")
def fitted():
    """The reference script's KAN after its fit (20 LBFGS steps), fitted once for the module.

    Its cache_data is the test input, as after the reference's fit. Tests use ``kan`` (a copy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds synchronisation
    rng = _rng_state()
    try:
        np.random.seed(5)
        torch.manual_seed(5)
        x, y = majority_dataset()
        dataset = create_dataset_from_data(x, y)
        model = KAN(width=[9, 10, 10, 1], seed=5, noise_scale=1.0)

        def train_acc():
            return torch.mean(((model(dataset["train_input"]) > 0.5) == dataset["train_label"]).float())

        def test_acc():
            return torch.mean(((model(dataset["test_input"]) > 0.5) == dataset["test_label"]).float())

        model.fit(dataset, lamb=0.001, lamb_entropy=5., steps=20, stop_grid_update_step=1000,
                  metrics=[train_acc, test_acc])
        assert _accuracy(model, dataset) == (1.0, 1.0)
    finally:
        _set_rng_state(rng)
        torch.set_num_threads(threads)
    return model, dataset


@pytest.fixture
def kan(fitted):
    """A fresh copy of the fitted model (same parameters and cache_data, no records)."""
    model, _ = fitted
    new = model.copy()
    assert torch.equal(new.cache_data, model.cache_data)
    return new


@pytest.fixture
def dataset(fitted):
    return fitted[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def _rng_state():
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def _set_rng_state(state):
    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    random.setstate(state[2])


def _rng_equal(a, b) -> bool:
    return (torch.equal(a[0], b[0]) and all(np.array_equal(u, v) for u, v in zip(a[1], b[1], strict=True))
            and a[2] == b[2])


def _accuracy(model, dataset) -> tuple[float, float]:
    """Train then test accuracy (so cache_data ends as the test input, as after fit)."""
    with torch.no_grad():
        return tuple(float(torch.mean(((model(dataset[f"{s}_input"]) > 0.5) == dataset[f"{s}_label"]).float()))
                     for s in ("train", "test"))


def _out(model, x):
    with torch.no_grad():
        return model(x)


# ------------------------------------------------------------------------------------------------
def test_prune_keeps_accuracy_and_shrinks(kan, dataset):
    pruned = kan.prune(node_th=NODE_TH)  # compensate=True is the default
    assert pruned is not kan
    assert pruned.width_in[0] == 9 and pruned.width_in[-1] == 1
    assert all(1 <= n < 10 for n in pruned.width_in[1:-1]), pruned.width_in
    assert _accuracy(pruned, dataset) == (1.0, 1.0)


@pytest.mark.parametrize("how", ["prune", "prune_node"])
def test_kept_first_layer_nodes_each_read_one_triple(kan, dataset, how):
    pruned = kan.prune(node_th=NODE_TH) if how == "prune" else kan.prune_node(NODE_TH)
    pruned.get_act()
    pruned.attribute()
    scores = pruned.edge_scores[0].detach().double()  # (out = kept layer-1 nodes, in = 9 inputs)
    assert scores.shape == (pruned.width_in[1], 9)
    per_triple = torch.stack([scores[:, list(t)].sum(1) for t in TRIPLES], dim=1)  # (kept, 3)
    share = per_triple / scores.sum(1, keepdim=True)
    best = share.max(1)
    assert (best.values >= 0.99).all(), share
    # accuracy 1.0 needs all three majorities, so together the kept nodes read every triple
    assert set(best.indices.tolist()) == {0, 1, 2}, share


def test_original_model_untouched(kan):
    """D6: pykan zeroes the original's masks; kanswap leaves every tensor of the original alone."""
    before = {name: t.clone() for name, t in kan.state_dict().items()}
    cache = kan.cache_data.clone()
    width = [list(w) for w in kan.width]
    kan.prune(node_th=NODE_TH)
    kan.prune(node_th=NODE_TH, compensate=False)
    kan.prune_node(NODE_TH)
    kan.prune_edge(3e-2)
    kan.prune_input(active_inputs=[0, 1, 2])
    after = kan.state_dict()
    assert after.keys() == before.keys()
    for name, t in before.items():
        assert torch.equal(after[name], t), name
    assert torch.equal(kan.cache_data, cache)
    assert kan.width == width
    assert int(sum((layer.mask == 0).sum() for layer in kan.act_fun)) == 0


def _hyper(model) -> dict:
    config = model.config()
    for key in ("width", "state_id"):
        config.pop(key)
    layers = [(layer.grid_eps, layer.grid_range, layer.base_fun_name, layer.k, layer.num,
               layer.scale_sp.requires_grad, layer.scale_base.requires_grad, layer.coef.requires_grad)
              for layer in model.act_fun]
    affine = sorted({p.requires_grad for name in ("node_bias", "node_scale", "subnode_bias", "subnode_scale")
                     for p in getattr(model, name)})
    return {"config": config, "layers": layers, "affine_requires_grad": affine,
            "base_fun_name": model.base_fun_name}


def test_pruned_model_keeps_hyperparameters_and_rng(kan):
    """D7: pykan rebuilds the pruned model with default settings and reseeds the RNGs to 1."""
    custom = KAN(width=[3, 4, 4, 1], grid=4, k=2, noise_scale=0.7, base_fun="identity", symbolic_enabled=False,
                 affine_trainable=True, grid_eps=0.5, grid_range=[-2, 2], sp_trainable=False, sb_trainable=False,
                 seed=3)
    custom(torch.rand(64, 3) * 4 - 2)
    custom.attribute()
    keep = [sorted(torch.topk(custom.node_scores[l].detach(), 2).indices.tolist()) for l in (1, 2)]
    for model, prune_calls in (
        (kan, [lambda m: m.prune(node_th=NODE_TH), lambda m: m.prune(node_th=NODE_TH, compensate=False),
               lambda m: m.prune_node(NODE_TH), lambda m: m.prune_edge(3e-2),
               lambda m: m.prune_input(active_inputs=[0, 1, 2, 3, 4, 5])]),
        (custom, [lambda m: m.prune(node_th=0.0), lambda m: m.prune_node(active_neurons_id=keep),
                  lambda m: m.prune_edge(0.0), lambda m: m.prune_input(active_inputs=[0, 2])]),
    ):
        expected = _hyper(model)
        for call in prune_calls:
            torch.manual_seed(1234)
            np.random.seed(1234)
            random.seed(1234)
            rng = _rng_state()
            pruned = call(model)
            assert _rng_equal(_rng_state(), rng), "prune touched a global RNG"
            assert _hyper(pruned) == expected
    assert custom.prune_node(active_neurons_id=keep).width_in == [3, 2, 2, 1]
    assert custom.noise_scale == 0.7 and custom.grid_range == [-2.0, 2.0]  # the values really are non-default


@pytest.fixture
def restore_rng():
    state = _rng_state()
    yield
    _set_rng_state(state)


def test_uncompensated_prune_matches_pykan(kan, tmp_path, monkeypatch, restore_rng):
    """Same state_dict, same cache_data: pykan's prune(node_th=5e-2) keeps the same nodes and edges."""
    kan_mod = pytest.importorskip("kan", reason="pykan 0.2.8 is needed for the comparison")
    monkeypatch.chdir(tmp_path)
    os.makedirs("model")  # pykan's prune forces auto_save and writes ./model (D7)
    ours = kan.prune(node_th=NODE_TH, compensate=False)
    ours_comp = kan.prune(node_th=NODE_TH)
    ref = kan_mod.KAN(width=[9, 10, 10, 1], seed=5, noise_scale=1.0, auto_save=False, device="cpu")
    ref.load_state_dict(kan.state_dict())
    with torch.no_grad():
        ref_out = ref(kan.cache_data)
    assert torch.allclose(ref_out, _out(kan, kan.cache_data), atol=1e-5)
    ref_pruned = ref.prune(node_th=NODE_TH)
    assert ref_pruned.width == ours.width == ours_comp.width
    assert ours.width_in == [n for n, _ in ref_pruned.width]
    for mine, theirs in zip(ours.act_fun, ref_pruned.act_fun, strict=True):
        assert torch.equal(mine.mask.detach().cpu(), theirs.mask.detach().cpu())
        assert torch.allclose(mine.coef.detach(), theirs.coef.detach())


def test_prune_edge_compensation_keeps_the_mean(kan):
    """D8: folding a removed edge's mean into the bias it fed keeps the fed subnode's mean exactly,
    and the output mean up to the removed edges' (tiny) variation; without it the mean jumps."""
    node_pruned = kan.prune_node(NODE_TH)
    x = node_pruned.cache_data
    node_pruned.get_act(x)
    hidden = node_pruned.acts[1].double().mean(0)
    out = node_pruned.acts[-1].double().mean()
    changes = {}
    for compensate in (True, False):
        pruned = node_pruned.prune_edge(3e-2, compensate=compensate)
        assert int((pruned.act_fun[0].mask == 0).sum()) > 0  # edges really were removed
        pruned.get_act(x)
        hidden_change = (pruned.acts[1].double().mean(0) - hidden).abs().max().item()
        changes[compensate] = (hidden_change, abs((pruned.acts[-1].double().mean() - out) / out).item())
    assert changes[True][0] < 1e-6, changes
    assert changes[True][1] < 1e-4, changes  # measured 1.1e-5: the removed edges' std is up to 5e-5
    assert changes[False][0] > 1e-2 and changes[False][1] > 1e-2, changes


def test_prune_edge_compensation_exact_for_constant_edges():
    """An edge that is constant over the data: compensation makes the output mean change only by
    float rounding (< 1e-5 relative), while dropping it changes the mean by the constant."""
    torch.manual_seed(0)
    model = KAN(width=[2, 3, 1], seed=0, noise_scale=0.5)
    x = torch.rand(200, 2) * 2 - 1
    x[:, 1] = 0.25  # input 1 is constant: its edges have std 0 and score 0
    model.get_act(x)
    base = _out(model, x).double().mean()
    kept = model.prune_edge(1e-8, compensate=True)
    dropped = model.prune_edge(1e-8, compensate=False)
    assert torch.equal(kept.act_fun[0].mask[1], torch.zeros(3))
    assert torch.equal(dropped.act_fun[0].mask[1], torch.zeros(3))
    rel_kept = abs((_out(kept, x).double().mean() - base) / base).item()
    rel_dropped = abs((_out(dropped, x).double().mean() - base) / base).item()
    assert rel_kept < 1e-5, rel_kept
    assert rel_dropped > 1e-3, rel_dropped


def test_prune_node_removing_every_node_raises(kan):
    with pytest.raises(ValueError, match=r"every node of layer 1\b") as err:
        kan.prune_node(10.0)
    # the message names the layer's highest score (the fresh one prune_node computed), so the user
    # knows which threshold would keep a node
    assert f"highest score {kan.node_scores[1].max().item():.3g})" in str(err.value)
    with pytest.raises(ValueError, match=r"every node of layer 1\b"):
        kan.prune(node_th=10.0)


def test_prune_input_keeps_the_right_inputs(kan, dataset, capsys):
    x = dataset["train_input"]
    kept = [0, 1, 2]
    p = kan.prune_input(active_inputs=kept, compensate=False)
    assert p.input_id.tolist() == kept
    assert p.width_in == [3] + kan.width_in[1:]
    assert p.input_dim == 9
    y = _out(p, x)  # the full-width input is accepted
    assert y.shape == (x.shape[0], 1)
    flipped = x.clone()
    flipped[:, 3:] = 1 - flipped[:, 3:]
    assert torch.equal(_out(p, flipped), y)  # dropped inputs are ignored
    flipped = x.clone()
    flipped[:, :3] = 1 - flipped[:, :3]
    assert not torch.equal(_out(p, flipped), y)  # kept ones are not
    # without compensation it is the original with the dropped inputs' edges masked
    masked = kan.copy()
    with torch.no_grad():
        masked.act_fun[0].mask[3:] = 0.0
    assert torch.allclose(y, _out(masked, x), atol=1e-6)
    with pytest.raises(ValueError, match="9 features|expects 9"):
        _out(p, x[:, :3])
    # all inputs kept: the same function
    assert torch.allclose(_out(kan.prune_input(active_inputs=range(9)), x), _out(kan, x), atol=1e-6)
    # auto mode: keep inputs whose node_scores[0] is above the threshold
    kan.get_act()
    kan.attribute()
    scores = kan.node_scores[0].detach()
    threshold = float(scores.sort().values[4])
    auto = kan.prune_input(threshold)
    assert auto.input_id.tolist() == torch.nonzero(scores > threshold).flatten().tolist()
    assert auto.width_in[0] == 4
    capsys.readouterr()
    with pytest.raises(ValueError):
        kan.prune_input(active_inputs=[9])
    with pytest.raises(ValueError, match="every input") as err:
        kan.prune_input(10.0)
    assert f"highest score {kan.node_scores[0].max().item():.3g})" in str(err.value)


def test_prune_node_manual(kan, dataset):
    x = dataset["train_input"]
    # keeping every node, in any order, is the identity
    everything = kan.prune_node(active_neurons_id=[list(range(9, -1, -1)), list(range(10))])
    assert everything.width_in == kan.width_in
    assert torch.allclose(_out(everything, x), _out(kan, x), atol=1e-6)
    # keep the most important nodes by id (mode='manual' is implied by active_neurons_id)
    kan.get_act()
    kan.attribute()
    l1 = torch.topk(kan.node_scores[1].detach(), 3).indices.tolist()
    l2 = torch.topk(kan.node_scores[2].detach(), 1).indices.tolist()
    manual = kan.prune_node(active_neurons_id=[l1[::-1], l2], compensate=False)
    rows = sorted(l1)
    assert manual.width_in == [9, 3, 1, 1]
    assert torch.equal(manual.act_fun[0].coef, kan.act_fun[0].coef[:, rows])
    assert torch.equal(manual.act_fun[0].grid, kan.act_fun[0].grid)
    assert torch.equal(manual.act_fun[1].coef, kan.act_fun[1].coef[rows][:, l2])
    assert torch.equal(manual.act_fun[1].grid, kan.act_fun[1].grid[rows])
    assert torch.equal(manual.act_fun[2].coef, kan.act_fun[2].coef[l2])
    compensated = kan.prune_node(mode="manual", active_neurons_id=[l1, l2])
    assert _accuracy(compensated, dataset) == (1.0, 1.0)
    with pytest.raises(ValueError, match="one list per hidden layer"):
        kan.prune_node(active_neurons_id=[l1])
    with pytest.raises(ValueError, match="active_neurons_id"):
        kan.prune_node(active_neurons_id=[[10], l2])
    with pytest.raises(ValueError, match="mode"):
        kan.prune_node(mode="by-hand")


# ------------------------------------------------------------------------------------------------
# Small random float64 models, no fit: exact statements about what each prune keeps and folds
# (fast enough for mutation testing, which runs only these from this file).

# Pruned against masked/shifted outputs in float64: largest error measured 8.9e-16.
F64_ATOL = 1e-14


def _small_model(width, seed=0):
    """A float64 KAN with every parameter but masks and grids redrawn, run on its cached data."""
    model = KAN(width=width, grid=3, seed=seed, noise_scale=1.0).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not (name.endswith("mask") or name.endswith("grid") or name.startswith("symbolic")):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5 + (1.0 if "scale" in name else 0.0))
    x = torch.rand(40, model.width_in[0], generator=gen, dtype=torch.float64) * 2 - 1
    model.get_act(x)
    return model, x


def _masked(model, l, removed):
    """A copy of model whose node layer l contributes nothing from the nodes in ``removed``."""
    new = model.copy()
    with torch.no_grad():
        new.act_fun[l].mask[removed, :] = 0.0
    return new


def _edge_means(model, l, x):
    """Mean over x of every edge output of layer l: (in, out), from the layer's own forward."""
    model.get_act(x)
    with torch.no_grad():
        return model.act_fun[l](model.acts[l])[2].mean(0).t()


def _state(model):
    return {name: t.clone() for name, t in model.state_dict().items()}


def _assert_same_state(model, state):
    for name, t in model.state_dict().items():
        assert torch.equal(t, state[name]), name


def test_small_model_prune_node_keeps_scores_above_threshold_and_folds_means():
    model, x = _small_model([3, 6, 2])
    state = _state(model)
    model.attribute()
    scores = model.node_scores[1].detach()
    threshold = float(scores.median())
    kept = torch.nonzero(scores > threshold).flatten().tolist()
    removed = [i for i in range(6) if i not in kept]
    assert 0 < len(kept) < 6
    plain = model.prune_node(threshold, compensate=False)
    folded = model.prune_node(threshold)
    _assert_same_state(model, state)
    for new in (plain, folded):
        assert new.width == [[3, 0], [len(kept), 0], [2, 0]]
        for name in ("node_bias_0", "node_scale_0", "subnode_bias_0", "subnode_scale_0"):
            assert torch.equal(getattr(new, name), state[name][kept]), name
        assert torch.equal(new.act_fun[0].coef, state["act_fun.0.coef"][:, kept])
        assert torch.equal(new.act_fun[1].coef, state["act_fun.1.coef"][kept])
    # without compensation the removed nodes simply contribute nothing
    expected = _out(_masked(model, 1, removed), x)
    torch.testing.assert_close(_out(plain, x), expected, atol=F64_ATOL, rtol=0)
    # with it, their edges' means are added to the output subnodes' biases: a constant shift per
    # output (times the output node's scale)
    shift = (_edge_means(model, 1, x)[removed].sum(0) * model.subnode_scale_1 * model.node_scale_1).detach()
    assert shift.abs().min() > 1e-3
    torch.testing.assert_close(_out(folded, x), expected + shift, atol=F64_ATOL, rtol=0)
    torch.testing.assert_close(_out(folded, x).mean(0), _out(model, x).mean(0), atol=F64_ATOL, rtol=0)


def test_small_model_prune_node_two_hidden_layers_and_manual_ids():
    model, x = _small_model([2, 5, 4, 1], seed=1)
    model.attribute()
    highest = [float(model.node_scores[l].detach().max()) for l in (1, 2)]
    with pytest.raises(ValueError, match=rf"every node of layer 1 \(highest score {highest[0]:.3g}\)"):
        model.prune_node(2 * max(highest))
    manual = model.prune_node(active_neurons_id=[[3, 0], [2]], compensate=False)
    assert manual.width == [[2, 0], [2, 0], [1, 0], [1, 0]]
    masked = _masked(_masked(model, 1, [1, 2, 4]), 2, [0, 1, 3])
    torch.testing.assert_close(_out(manual, x), _out(masked, x), atol=F64_ATOL, rtol=0)
    for bad, match in (([[0]], "one list per hidden layer"), ([[0, 5], [1]], r"ids in 0\.\.4"),
                       ([[], [1]], r"ids in 0\.\.4"), ([[-1], [1]], r"ids in 0\.\.4"),
                       ([[0], [4]], r"active_neurons_id\[1\] must list ids in 0\.\.3")):
        with pytest.raises(ValueError, match=match):
            model.prune_node(active_neurons_id=bad)
    with pytest.raises(ValueError, match=r"'auto' or 'manual'.*'some'"):
        model.prune_node(mode="some")


def test_small_model_prune_edge_keeps_scores_above_threshold_and_folds_means():
    model, x = _small_model([4, 3])  # one layer of edges: the output is the sum of the edges
    state = _state(model)
    with torch.no_grad():
        model.act_fun[0].mask[1, 2] = 0.0  # an edge already masked stays masked
    model.attribute()
    scores = model.edge_scores[0].detach().t()  # (in, out)
    threshold = float(scores[model.act_fun[0].mask > 0].median())
    keep = ((scores > threshold) & (model.act_fun[0].mask > 0)).double()
    removed = (model.act_fun[0].mask > 0) & (keep == 0)
    assert 0 < int(keep.sum()) < 11
    plain = model.prune_edge(threshold, compensate=False)
    folded = model.prune_edge(threshold)
    assert torch.equal(model.act_fun[0].mask[0], state["act_fun.0.mask"][0])  # the original is untouched
    for new in (plain, folded):
        assert torch.equal(new.act_fun[0].mask, keep)
    expected = model.copy()
    with torch.no_grad():
        expected.act_fun[0].mask.copy_(keep)
    torch.testing.assert_close(_out(plain, x), _out(expected, x), atol=F64_ATOL, rtol=0)
    shift = ((_edge_means(model, 0, x) * removed).sum(0) * model.subnode_scale_0 * model.node_scale_0).detach()
    torch.testing.assert_close(_out(folded, x), _out(expected, x) + shift, atol=F64_ATOL, rtol=0)


def test_small_model_prune_is_prune_node_then_prune_edge():
    model, _ = _small_model([3, 5, 2], seed=2)
    model.attribute()
    node_th = float(model.node_scores[1].detach().median())
    for compensate in (True, False):
        both = model.prune(node_th=node_th, edge_th=0.05, compensate=compensate)
        steps = model.prune_node(node_th, compensate=compensate).prune_edge(0.05, compensate=compensate)
        assert both.width == steps.width
        for name, t in steps.state_dict().items():
            assert torch.equal(both.state_dict()[name], t), name


def test_small_model_prune_input_selects_inputs():
    model, x = _small_model([5, 3, 1], seed=3)
    model.attribute()
    scores = model.node_scores[0].detach()
    threshold = float(scores.median())
    kept = torch.nonzero(scores > threshold).flatten().tolist()
    removed = [i for i in range(5) if i not in kept]
    plain = model.prune_input(threshold, compensate=False)
    folded = model.prune_input(threshold)
    assert plain.input_id.tolist() == kept and plain.width_in[0] == len(kept)
    expected = _masked(model, 0, removed)
    torch.testing.assert_close(_out(plain, x), _out(expected, x), atol=F64_ATOL, rtol=0)
    # the removed inputs' edge means go into the first layer's subnode biases
    bias = model.subnode_bias_0.detach() + model.subnode_scale_0.detach() * _edge_means(model, 0, x)[removed].sum(0)
    assert torch.equal(plain.subnode_bias_0, model.subnode_bias_0)
    torch.testing.assert_close(folded.subnode_bias_0.detach(), bias, atol=F64_ATOL, rtol=0)
    manual = model.prune_input(active_inputs=[4, 1], compensate=False)
    assert manual.input_id.tolist() == [1, 4]
    torch.testing.assert_close(_out(manual, x), _out(_masked(model, 0, [0, 2, 3]), x), atol=F64_ATOL, rtol=0)
    with pytest.raises(ValueError, match=rf"every input \(highest score {float(scores.max()):.3g}\)"):
        model.prune_input(2 * float(scores.max()))
    for bad in ([], [5], [-1]):
        with pytest.raises(ValueError, match=r"active_inputs must list ids in 0\.\.4"):
            model.prune_input(active_inputs=bad)


def test_small_model_prune_functions_defaults_and_history(tmp_path, capsys):
    """kanswap.prune's functions have pykan's defaults (thresholds 1e-2 / 3e-2, compensation on,
    history logged when auto_save is on), and prune_input prints pykan's "keep:" line."""
    from kanswap import prune as pr

    model, x = _small_model([4, 6, 2], seed=4)
    model.auto_save, model.ckpt_path = True, str(tmp_path)
    model.attribute()
    node_scores, input_scores = model.node_scores[1].detach(), model.node_scores[0].detach()
    # the defaults decide something here: some scores lie between them and 1.01 (pykan's 1e-2 + 1)
    assert bool(((node_scores > 1e-2) & (node_scores <= 1.01)).any())
    cases = [(pr.prune_node, dict(threshold=1e-2, compensate=True), "prune_node"),
             (pr.prune_edge, dict(threshold=3e-2, compensate=True), "prune_edge"),
             (pr.prune, dict(node_th=1e-2, edge_th=3e-2, compensate=True), "prune"),
             (pr.prune_input, dict(threshold=1e-2, compensate=True), "prune_input")]
    for fn, explicit, name in cases:
        history = tmp_path / "history.txt"
        history.unlink(missing_ok=True)
        default = fn(model)
        assert history.read_text().split(" => ")[1] == name
        capsys.readouterr()
        given = fn(model, **explicit)
        if name == "prune_input":
            assert capsys.readouterr().out == f"keep: {(input_scores > 1e-2).tolist()}\n"
        assert default.width == given.width
        for key, t in given.state_dict().items():
            assert torch.equal(default.state_dict()[key], t), (name, key)
    (tmp_path / "history.txt").unlink()
    pr.prune_node(model, log_history=False)
    pr.prune_edge(model, log_history=False)
    pr.prune_input(model, log_history=False)
    assert not (tmp_path / "history.txt").exists()
