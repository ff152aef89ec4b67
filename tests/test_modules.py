"""find_modules: modules from strong edges, on hand-made score matrices, random ones (invariance
under permutations), KANs (mult nodes included), MLPs, the reference task, and bad input."""

import numpy as np
import pytest
import torch

from kanswap import KAN, MLP, create_dataset_from_data, swap
from kanswap.data import majority_dataset
from kanswap.modules import LayerModules, find_modules, format_modules, modules_from_scores

D = torch.float64
TRIPLES = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def _check_contract(mods: list[LayerModules], scores: list[torch.Tensor], threshold: float) -> None:
    """The contract, by brute force: groups partition the layer, nodes are disjoint, an edge is
    strong iff above threshold * max, every strong edge lies inside exactly one module, no module
    splits into two without cutting a strong edge, and modularity is the share inside."""
    for l, (mod, s) in enumerate(zip(mods, scores, strict=True)):
        n_out, n_in = s.shape
        assert mod.layer == l
        assert sorted(i for g in mod.groups for i in g) == list(range(n_in))
        reached = [j for nd in mod.nodes for j in nd]
        assert len(reached) == len(set(reached)) and set(reached) <= set(range(n_out))
        member = {i: m for m, g in enumerate(mod.groups) for i in g}
        owner = {j: m for m, nd in enumerate(mod.nodes) for j in nd}
        strong = s > threshold * s.max()
        inside = 0.0
        for j in range(n_out):
            for i in range(n_in):
                if strong[j, i]:
                    assert owner.get(j) == member[i], (l, i, j)
                if owner.get(j) == member[i]:
                    inside += float(s[j, i])
        assert mod.modularity == pytest.approx(inside / float(s.sum()), rel=1e-12)
        # finest: every module is connected through its strong edges
        for g, nd in zip(mod.groups, mod.nodes, strict=True):
            seen, todo = {("i", g[0])}, [("i", g[0])]
            while todo:
                side, a = todo.pop()
                nbrs = ([("o", j) for j in range(n_out) if strong[j, a]] if side == "i"
                        else [("i", i) for i in range(n_in) if strong[a, i]])
                for b in nbrs:
                    if b not in seen:
                        seen.add(b)
                        todo.append(b)
            assert seen == {("i", i) for i in g} | {("o", j) for j in nd}


def test_block_matrix_modules_and_modularity():
    # layer 0: inputs {0,1} -> node 1, {2} -> nodes {0,2}, input 3 has only a weak edge (0.05 < 0.1 * 1)
    s0 = torch.tensor([[0.0, 0.0, 0.5, 0.0],
                       [1.0, 0.3, 0.0, 0.05],
                       [0.0, 0.0, 0.2, 0.0]], dtype=D)
    # layer 1: everything meets in output 0; hidden node 1's edge sits exactly at the threshold
    s1 = torch.tensor([[2.0, 0.2, 0.4]], dtype=D)
    mods = modules_from_scores([s0, s1], threshold=0.1)
    assert mods[0] == LayerModules(layer=0, groups=[[0, 1], [2], [3]], nodes=[[1], [0, 2], []],
                                   modularity=pytest.approx(2.0 / 2.05, rel=1e-12))
    # "above the threshold": 0.2 == 0.1 * 2.0 is not strong, so hidden node 1 reaches nothing
    assert mods[1].groups == [[0, 2], [1]] and mods[1].nodes == [[0], []]
    assert mods[1].modularity == pytest.approx(2.4 / 2.6, rel=1e-12)
    assert modules_from_scores([s0, s1], threshold=0.09)[1].groups == [[0, 1, 2]]


def test_zero_layer_is_separable_singletons():
    mods = modules_from_scores([torch.zeros(2, 3, dtype=D)])
    assert mods[0].groups == [[0], [1], [2]] and mods[0].nodes == [[], [], []] and mods[0].modularity == 1.0


def _sparse_scores(widths, seed, density=0.12):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(b, a, generator=g, dtype=D) * (torch.rand(b, a, generator=g) < density)
            for a, b in zip(widths[:-1], widths[1:], strict=False)]


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("widths", [[9, 13, 7, 3], [20, 31, 31, 2]], ids=str)
def test_contract_and_permutation_invariance(widths, threshold):
    s = _sparse_scores(widths, 3 + len(widths))
    mods = modules_from_scores(s, threshold)
    _check_contract(mods, s, threshold)
    assert any(len(m.groups) > 1 for m in mods)  # sparse enough to have several modules
    # permute every hidden layer: the modules are the same up to the permutation
    rng = np.random.default_rng(0)
    perms = [torch.from_numpy(rng.permutation(n)) for n in widths[1:-1]]
    t = list(s)
    for l, p in enumerate(perms, 1):
        t[l - 1], t[l] = t[l - 1][p], t[l][:, p]
    def as_sets(ms, maps):  # modules by original node ids
        return [{(frozenset(maps[m.layer][g].tolist()), frozenset(maps[m.layer + 1][nd].tolist()))
                 for g, nd in zip(m.groups, m.nodes, strict=True)} for m in ms]

    ident = [torch.arange(n) for n in widths]
    to_orig = [torch.arange(widths[0])] + perms + [torch.arange(widths[-1])]
    assert as_sets(modules_from_scores(t, threshold), to_orig) == as_sets(mods, ident)


def test_kan_mult_nodes_map_subnodes_to_their_node():
    model = KAN(width=[3, [1, 2], 2], mult_arity=2, seed=0)
    x = torch.rand(64, 3) * 2 - 1
    model(x)
    with torch.no_grad():  # input 0 feeds only subnodes 1, 2 (mult node 1); inputs 1, 2 only subnodes 3, 4
        model.act_fun[0].mask.zero_()
        model.act_fun[0].mask[0, 1:3] = 1
        model.act_fun[0].mask[1:3, 3:5] = 1
    mods = model.find_modules()
    assert mods[0].groups == [[0], [1, 2]] and mods[0].nodes == [[1], [2]]
    assert len(mods) == 2 and sorted(i for g in mods[1].groups for i in g) == [0, 1, 2]


def test_mlp_modules_from_weights_and_after_swap():
    model = MLP([4, 6, 2], seed=0)
    with torch.no_grad():
        w0 = torch.zeros(6, 4)
        w0[[1, 4], 0] = 1.0  # input 0 -> hidden 1, 4
        w0[[0, 2], 1] = -2.0  # input 1 -> hidden 0, 2
        w0[3, 2:] = 0.5  # inputs 2, 3 -> hidden 3; hidden 5 gets nothing
        model.linears[0].weight.copy_(w0)
        w1 = torch.zeros(2, 6)
        w1[0, [1, 4]] = 1.0
        w1[1, [0, 2, 3]] = 1.0
        model.linears[1].weight.copy_(w1)
    mods = model.find_modules()
    assert mods[0].groups == [[0], [1], [2, 3]] and mods[0].nodes == [[1, 4], [0, 2], [3]]
    assert mods[0].modularity == 1.0
    assert mods[1].groups == [[0, 2, 3], [1, 4], [5]] and mods[1].nodes == [[1], [0], []]
    (perm,) = swap.swap_perms([lin.weight.detach().abs() for lin in model.linears], "optimal")
    model.permute_layer(1, perm)  # what auto_swap(method="optimal") does
    after = model.find_modules()
    # the same modules, named by where the hidden nodes went
    assert [sorted(perm[j].item() for j in nd) for nd in after[0].nodes] == [[1, 4], [0, 2], [3]]
    # and each module's nodes now sit side by side
    for nd in after[0].nodes:
        assert max(nd) - min(nd) + 1 == len(nd)


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), "0.1", True])
def test_bad_threshold(bad):
    with pytest.raises(ValueError, match="threshold"):
        modules_from_scores([torch.ones(2, 2)], threshold=bad)


def test_bad_input():
    with pytest.raises(ValueError, match="not seen any data"):
        KAN(width=[2, 3, 1], seed=0).find_modules()
    with pytest.raises(TypeError, match="KAN or MLP"):
        find_modules(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="non-negative"):
        modules_from_scores([-torch.ones(2, 2)])
    with pytest.raises(ValueError, match="same node layer"):
        modules_from_scores([torch.ones(3, 2), torch.ones(1, 2)])


@pytest.fixture(scope="module")
def reference_kan():
    """The reference task's KAN after its fit (as bench/bench_fit.py: 20 L-BFGS steps)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds synchronisation
    try:
        np.random.seed(5)
        torch.manual_seed(5)
        x, y = majority_dataset()
        dataset = create_dataset_from_data(x, y)
        model = KAN(width=[9, 10, 10, 1], seed=5, noise_scale=1.0)
        model.fit(dataset, lamb=0.001, lamb_entropy=5., steps=20, stop_grid_update_step=1000, log=100)
    finally:
        torch.set_num_threads(threads)
    return model


def _reference_structure(mods):
    """Layer 1 (edges 0): the triples are separate modules, each reaching its own hidden nodes;
    layer 2 (edges 1): all the nodes they reach form one module. Returns the hidden nodes reached."""
    live = [(g, nd) for g, nd in zip(mods[0].groups, mods[0].nodes, strict=True) if nd]
    assert sorted(g for g, _ in live) == TRIPLES
    assert all(len(g) == 1 for g, nd in zip(mods[0].groups, mods[0].nodes, strict=True) if not nd)
    hidden = sorted(j for _, nd in live for j in nd)
    merged = [(g, nd) for g, nd in zip(mods[1].groups, mods[1].nodes, strict=True) if nd]
    assert len(merged) == 1 and set(hidden) <= set(merged[0][0]) and merged[0][1]
    assert mods[0].modularity > 0.99  # measured 0.999
    return hidden


@pytest.mark.parametrize("threshold", [0.05, 0.1, 0.2])
def test_reference_task_modules(reference_kan, threshold):
    model = reference_kan.copy()
    mods = model.find_modules(threshold)
    _reference_structure(mods)
    text = format_modules(mods)
    assert "{x1,x2,x3}" in text and "{x4,x5,x6}" in text and "{x7,x8,x9}" in text


@pytest.mark.parametrize("how", ["greedy", "optimal", "random"])
def test_reference_task_modules_same_after_swap(reference_kan, how):
    model = reference_kan.copy()
    model.get_act(reference_kan.cache_data)
    before = model.find_modules()
    if how == "random":
        rng = np.random.default_rng(1)
        perms = {l: rng.permutation(model.width_in[l]) for l in (1, 2)}
        for l, p in perms.items():
            model.permute_layer(l, p.tolist())
    else:  # what auto_swap(method=how) does, keeping the permutations
        perms = dict(zip((1, 2), swap.swap_perms(model._score_matrices(), how), strict=True))
        for l, p in perms.items():
            model.permute_layer(l, p)
    after = model.find_modules()
    ident = np.arange(9), np.arange(1)
    to_orig = [ident[0], np.asarray(perms[1]), np.asarray(perms[2]), ident[1]]
    for a, b in zip(before, after, strict=True):
        mapped = {(frozenset(to_orig[b.layer][g].tolist()), frozenset(to_orig[b.layer + 1][nd].tolist()))
                  for g, nd in zip(b.groups, b.nodes, strict=True)}
        assert mapped == {(frozenset(g), frozenset(nd)) for g, nd in zip(a.groups, a.nodes, strict=True)}
        assert b.modularity == pytest.approx(a.modularity, rel=1e-5)  # float32 summation order
    hidden = _reference_structure(after)
    if how == "optimal":
        # the merged module's nodes are the ones its layer-2 edges leave from; the triples' nodes
        # in the order of their inputs (the cost pulls each under its triple)
        live = [nd for nd in after[0].nodes if nd]
        assert live == sorted(live) and len(hidden) == 3


def test_module_report_prints_one_based_and_keeps_the_raw_structure():
    """Before: print(find_modules()) showed 0-based LayerModules(...) while the demo prints
    "layer 1: {x1,x2,x3}". Now it prints as the demo, counted from 1; the items stay 0-based."""
    model = KAN(width=[4, 2, 1], seed=0)
    with torch.no_grad():  # inputs 0, 1 -> hidden node 0; inputs 2, 3 -> hidden node 1
        model.act_fun[0].mask[:2, 1] = 0
        model.act_fun[0].mask[2:, 0] = 0
    model(torch.rand(30, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    mods = model.find_modules(threshold=1e-6)
    text = str(mods)
    lines = text.splitlines()
    assert lines[0].startswith("layer 1: {x1,x2} -> {1}  {x3,x4} -> {2}  (modularity ")
    assert lines[1].startswith("layer 2: {1,2} -> {y1}  (modularity ")
    assert repr(mods) == text == format_modules(mods)
    assert isinstance(mods, list) and isinstance(mods[0], LayerModules)
    assert mods[0].layer == 0 and mods[0].groups == [[0, 1], [2, 3]] and mods[0].nodes == [[0], [1]]
    pruned = model.prune_input(active_inputs=[0, 2, 3])  # names follow the original inputs
    pruned(torch.rand(30, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    assert str(pruned.find_modules(threshold=1e-6)).startswith("layer 1: {x1} -> {1}  {x3,x4} -> {2}")
