"""Symbolic regression on kanswap.KAN against pykan 0.2.8 on the same state_dict: the symbolic
branch's forward and records, its gradient (the affine values train as in pykan), the functions
suggest_symbolic / auto_symbolic choose and the r2 they reach, symbolic_formula, checkpoints,
swaps, pruning, plots, the classic flow, and bad input."""

import copy

import kan
import numpy as np
import pytest
import sympy
import torch
from kan.utils import fit_params as pykan_fit_params

# KAN pairs with the same random parameters, inputs, relative error: shared with the API tests.
from test_api_pykan import _pair, _rel, _x

import kanswap
from kanswap.symbolic import auto_symbolic, fix_symbolic, suggest_symbolic
from kanswap.symbolic_fit import fit_affine, r2_score
from kanswap.symbolic_lib import SYMBOLIC_LIB, add_symbolic

# Edges of both branches: (l, i, j, function, affine a, b, c, d)
FIXED = [(0, 0, 1, "sin", 2.0, 0.3, 0.7, -0.1), (0, 1, 0, "x^2", 1.5, -0.2, 0.4, 0.05),
         (0, 2, 2, "tanh", 3.0, 0.1, -0.5, 0.2), (1, 1, 0, "exp", 0.8, -0.3, 0.3, 0.1),
         (1, 2, 1, "gaussian", 1.2, 0.4, 0.9, 0.0)]


def _fixed_pair(modes=("s", "sn", "s", "sn", "s")):
    ours, ref = _pair([3, 3, 2], seed=4)
    for (l, i, j, name, *aff), mode in zip(FIXED, modes, strict=True):
        for m in (ours, ref):
            m.fix_symbolic(l, i, j, name, fit_params_bool=False, verbose=False, log_history=False)
            m.set_mode(l, i, j, mode)
            with torch.no_grad():
                m.symbolic_fun[l].affine.data[j, i] = torch.tensor(aff)
    return ours, ref


def test_forward_and_records_with_symbolic_edges_match_pykan():
    ours, ref = _fixed_pair()
    x = _x(203, 3, seed=1)
    out, want = ours(x), ref(x)
    assert _rel(out, want) < 1e-5  # float32 (measured 1e-7)
    for l in range(2):
        assert _rel(ours.edge_actscale[l], ref.edge_actscale[l]) < 1e-5
        assert _rel(ours.acts_scale[l], ref.acts_scale[l]) < 1e-5
        assert _rel(ours.acts_scale_spline[l], ref.acts_scale_spline[l]) < 1e-5  # numeric branch only
        assert _rel(ours.subnode_actscale[l], ref.subnode_actscale[l]) < 1e-5
        _, phi = ours.edge_activations(l)
        assert _rel(phi, ref.spline_postacts[l]) < 1e-5
    # the singularity-avoiding forward, with a pole in range
    for m in (ours, ref):
        m.fix_symbolic(0, 1, 1, "1/x", fit_params_bool=False, verbose=False, log_history=False)
    x[0, 1] = 0.0
    assert _rel(ours(x, singularity_avoiding=True, y_th=5.0), ref(x, singularity_avoiding=True, y_th=5.0)) < 1e-5


def test_singularity_avoiding_functions_match_pykan():
    from kan.utils import SYMBOLIC_LIB as PYKAN_LIB

    from kanswap.symbolic_lib import singular_value

    x = torch.linspace(-7, 7, 2001)  # hits 0 and the tan poles' neighbourhoods
    for name, entry in SYMBOLIC_LIB.items():
        for y_th in (3.0, 10.0):
            if name == "x^1.5":
                # pykan's returns |x|^1.5 without the (aux, value) pair, and its forward then takes
                # element [1] of that tensor for every sample; kanswap uses |x|^1.5
                want = x.abs() ** 1.5
            elif name == "tan":
                # pykan's returns (x mod pi, delta, value) and its forward takes [1], the constant
                # delta; kanswap uses the value
                want = PYKAN_LIB[name][3](x, torch.tensor(y_th))[2]
            else:
                want = PYKAN_LIB[name][3](x, torch.tensor(y_th))[1]
            got = singular_value(entry[3], x, y_th)
            assert torch.allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True), name


def test_affine_values_get_pykans_gradient_and_train():
    """With symbolic functions fixed, the fit's objective falls back to autograd and the affine
    values are trainable, as in pykan: the same loss gradient for every parameter, and a fit moves
    them and lowers the loss."""
    ours, ref = _fixed_pair()
    x, y = _x(150, 3, seed=2), _x(150, 2, seed=3)
    grads = []
    for m in (ours, ref):
        m.zero_grad()
        ((m(x) - y) ** 2).mean().backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert set(grads[1]) <= set(grads[0]) | {n for n in grads[1] if "affine" in n and n.startswith("symbolic")}
    for name, g in grads[1].items():
        if name in grads[0]:
            assert _rel(grads[0][name], g) < 1e-5, name
    assert grads[0]["symbolic_fun.0.affine"].abs().sum() > 0
    before = ours.symbolic_fun[0].affine.detach().clone()
    dataset = {"train_input": x, "train_label": y, "test_input": x, "test_label": y}
    res = ours.fit(dataset, steps=3, update_grid=False, progress=False)
    assert not torch.equal(ours.symbolic_fun[0].affine.detach(), before)
    assert res["train_loss"][-1] < res["train_loss"][0]


def _samples(ref, x):
    ref(x)
    return ref.acts, ref.spline_postacts


LIB = ["x", "x^2", "1/x", "sqrt", "exp", "log", "sin", "tanh", "abs", "0", "gaussian"]


@pytest.fixture(scope="module")
def fitted_pair():
    """A [2, 3, 1] KAN fitted to exp(sin(pi x) + y^2), and pykan's KAN with the same state_dict."""
    torch.manual_seed(0)
    f = lambda x: torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)  # noqa: E731
    dataset = kanswap.create_dataset(f, n_var=2, train_num=200, test_num=50)
    ours = kanswap.KAN(width=[2, 3, 1], grid=5, k=3, seed=0)
    ours.fit(dataset, steps=15, lamb=0.001, progress=False)
    ref = kan.KAN(width=[2, 3, 1], grid=5, k=3, seed=0, auto_save=False)
    ref.load_state_dict(ours.state_dict())
    x = dataset["train_input"]
    ours(x)
    ref(x)
    return ours, ref, x


@pytest.fixture(scope="module")
def r2_misses(fitted_pair) -> list[tuple]:
    return _r2_misses(fitted_pair[1])


def test_suggest_symbolic_chooses_pykans_function_with_at_least_its_r2(fitted_pair, r2_misses, capsys):
    """On every edge, pykan's fit_params per library function (what its suggest_symbolic runs)
    against kanswap's batched fit: r2 of kanswap's (a, b) >= r2 of pykan's - 1e-6, both scored in
    float64 on pykan's samples, except the known misses bounded at the end; the function chosen is
    pykan's wherever pykan's two best losses differ by more than 1e-3."""
    ours, ref, x = fitted_pair
    compared, misses = 0, r2_misses
    for l in range(ref.depth):
        for i in range(ref.width_in[l]):
            for j in range(ref.width_out[l + 1]):
                xs, ys = ref.acts[l][:, i].detach(), ref.spline_postacts[l][:, j, i].detach()
                pk_loss = [0.8 * SYMBOLIC_LIB[name][2] + 0.2 * np.log2(1 + 1e-5 - float(
                    pykan_fit_params(xs, ys, kan.utils.SYMBOLIC_LIB[name][0], verbose=False)[1])) for name in LIB]
                order = np.argsort(pk_loss)
                name, entry, r2, c = suggest_symbolic(ours, l, i, j, lib=LIB, verbose=False)
                assert entry is SYMBOLIC_LIB[name] and c == SYMBOLIC_LIB[name][2]
                if pk_loss[order[1]] - pk_loss[order[0]] > 1e-3:
                    assert name == LIB[order[0]], (l, i, j, name, LIB[order[0]])
                    compared += 1
    assert compared >= 5
    # The misses: where the best cells form a ridge of equal scores (log, sqrt, 1/x, abs write
    # f(a x + b) as g(a) f(x + b/a) + h(a), so every cell with the same b/a scores the same up to
    # rounding) or a narrow peak next to a pole, pykan's grid search follows whichever tied cell its
    # float32 rounding ranks first and kanswap's follows another; the zoomed rounds then end a few
    # 1e-4 apart, either way. Measured on this fixture over builds: 1 to 4 of 99 pairs, by up to
    # 1.2e-3 in r2 (log at r2 0.004, where no function fits). What suggest_symbolic ranks by is the
    # loss 0.2 log2(1 + 1e-5 - r2) (+ complexity): there every miss is within the 1e-3 that the
    # choice above already treats as a tie (measured: at most 3.4e-4). The r2 target: the xfail below.
    excess = [0.2 * np.log2((1 + 1e-5 - got) / (1 + 1e-5 - want)) for *_, got, want in misses]
    assert all(e < 1e-3 for e in excess), list(zip(misses, excess, strict=True))
    assert len(misses) <= 9, misses  # at most 1 pair in 11


@pytest.mark.xfail(strict=True, reason="target missed: on ridges of tied cells (log, sqrt, 1/x, abs) the "
                   "search ends up to 1.2e-3 in r2 below pykan's on poor fits (see the test above)")
def test_batched_fit_reaches_pykans_r2_on_every_pair(r2_misses):
    """The target: r2 of kanswap's (a, b) >= pykan's - 1e-6 on every (edge, function) pair."""
    assert r2_misses == []


def _r2_misses(ref) -> list[tuple]:
    """(l, i, j, name, kanswap's r2, pykan's r2) for every pair where kanswap's batched fit scores
    below pykan's fit_params - 1e-6, both scored in float64 on pykan's samples."""
    misses = []
    funs = [SYMBOLIC_LIB[name][0] for name in LIB]
    for l in range(ref.depth):
        for i in range(ref.width_in[l]):
            for j in range(ref.width_out[l + 1]):
                xs, ys = ref.acts[l][:, i].detach(), ref.spline_postacts[l][:, j, i].detach()
                params, _ = fit_affine(xs[None], ys[None], funs)
                for k, name in enumerate(LIB):
                    p, _r2 = pykan_fit_params(xs, ys, kan.utils.SYMBOLIC_LIB[name][0], verbose=False)
                    want = float(r2_score(funs[k], xs[None], ys[None], p[0].reshape(1, 1), p[1].reshape(1, 1)))
                    # kanswap's (a, b) as the model stores them (float32)
                    a, b = params[0, k, :2].float().double()
                    got = float(r2_score(funs[k], xs[None], ys[None], a.reshape(1, 1), b.reshape(1, 1)))
                    if got < want - 1e-6:
                        misses.append((l, i, j, name, got, want))
    return misses


def test_suggest_symbolic_prints_pykans_table_and_leaves_the_model(fitted_pair, capsys):
    ours, ref, x = fitted_pair
    state = copy.deepcopy(ours.state_dict())
    got = suggest_symbolic(ours, 0, 0, 1, lib=LIB, topk=3)
    out = capsys.readouterr().out
    ref = kan.KAN(width=[2, 3, 1], grid=5, k=3, seed=0, auto_save=False)  # pykan's changes the model
    ref.load_state_dict(ours.state_dict())
    ref(x)
    want = ref.suggest_symbolic(0, 0, 1, lib=LIB, topk=3)
    pk_out = capsys.readouterr().out
    assert out.split("\n")[0].split() == pk_out.split("\n")[0].split() == [
        "function", "fitting", "r2", "r2", "loss", "complexity", "complexity", "loss", "total", "loss"]
    assert [row.split()[:2] for row in out.strip().split("\n")[1:]] == \
        [row.split()[:2] for row in pk_out.strip().split("\n")[1:]]  # index and function, 3 rows
    assert got[0] == want[0] and got[3] == want[3] and got[2] >= want[2] - 1e-4
    for key, val in ours.state_dict().items():
        assert torch.equal(val, state[key]), key  # pykan's suggest_symbolic leaves edges unfixed


def test_auto_symbolic_prints_and_fixes_as_pykan(fitted_pair, capsys):
    ours, _, x = fitted_pair
    ours = copy.deepcopy(ours)
    ref = kan.KAN(width=[2, 3, 1], grid=5, k=3, seed=0, auto_save=False)
    ref.load_state_dict(ours.state_dict())
    with torch.no_grad():  # one dead edge: both branches off, fixed to '0'
        ours.act_fun[0].mask[1, 2] = ref.act_fun[0].mask[1, 2] = 0.0
    ours(x)
    ref(x)
    auto_symbolic(ours, lib=LIB)
    mine = capsys.readouterr().out.strip().split("\n")
    ref.auto_symbolic(lib=LIB)
    theirs = [s for s in capsys.readouterr().out.strip().split("\n") if s.startswith("fixing")]
    assert [s.split(", r2=")[0] for s in mine] == [s.split(", r2=")[0] for s in theirs]
    assert "fixing (0,1,2) with 0" in mine
    for l in range(2):
        assert ours.symbolic_fun[l].funs_name == ref.symbolic_fun[l].funs_name
        assert torch.equal(ours.symbolic_fun[l].mask, ref.symbolic_fun[l].mask)
        assert torch.equal(ours.act_fun[l].mask, ref.act_fun[l].mask)
    # the symbolic model computes what pykan's does (its own fitted affine values, loaded into pykan)
    ref.load_state_dict(ours.state_dict())
    assert _rel(ours(x), ref(x)) < 1e-5
    formula, variables = ours.symbolic_formula()
    pk_formula, pk_vars = ref.symbolic_formula()
    assert [str(v) for v in variables] == [str(v) for v in pk_vars] == ["x_1", "x_2"]
    pts = _x(64, 2, seed=9).double().numpy()
    f1 = sympy.lambdify(variables, formula[0], "numpy")(pts[:, 0], pts[:, 1])
    f2 = sympy.lambdify(pk_vars, pk_formula[0], "numpy")(pts[:, 0], pts[:, 1])
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f1, ours(torch.tensor(pts, dtype=torch.float32)).detach()[:, 0].numpy(), rtol=1e-4,
                               atol=1e-4)
    # already symbolic: skipped
    auto_symbolic(ours, lib=LIB)
    assert capsys.readouterr().out.count("since already symbolic") == 9


def test_auto_symbolic_threshold_keeps_weak_edges_numeric(fitted_pair, capsys):
    ours = copy.deepcopy(fitted_pair[0])
    ours(fitted_pair[2])
    ours.auto_symbolic(lib=["x"], r2_threshold=1.01)
    assert "this is lower than 1.01" in capsys.readouterr().out
    assert all(not sym.active for sym in ours.symbolic_fun)


def test_checkpoints_and_history_keep_symbolic_functions(tmp_path):
    ours, ref = _fixed_pair()
    x = _x(50, 3, seed=5)
    want = ours(x).detach()
    ours.saveckpt(str(tmp_path / "m.ckpt"))
    loaded = kanswap.KAN.loadckpt(str(tmp_path / "m.ckpt"))
    assert loaded.symbolic_fun[1].funs_name == ours.symbolic_fun[1].funs_name
    assert torch.equal(loaded(x).detach(), want)
    # pykan's three-file checkpoint, names in its yml
    ref.saveckpt(str(tmp_path / "pk"))
    from kanswap.checkpoint import load_model

    from_pykan = load_model(str(tmp_path / "pk"))
    assert _rel(from_pykan(x), ref(x)) < 1e-5
    # in-memory history
    ours.log_history("test")
    ours.unfix_symbolic_all(log_history=False)
    back = ours.checkout(f"{ours.round}.{ours.state_id}")
    assert torch.equal(back(x).detach(), want)
    # anonymous functions cannot be restored by name
    ours.fix_symbolic(0, 0, 0, lambda t: t * 2, fit_params_bool=False, log_history=False)
    ours.saveckpt(str(tmp_path / "anon.ckpt"))
    with pytest.raises(ValueError, match="anonymous"):
        kanswap.KAN.loadckpt(str(tmp_path / "anon.ckpt"))


def test_prune_copy_and_plot_with_symbolic_edges():
    ours, _ = _fixed_pair(modes=("s", "s", "s", "s", "s"))
    x = _x(100, 3, seed=6)
    ours(x)
    small = ours.prune(node_th=0.0, edge_th=0.0)
    assert _rel(small(x), ours(x)) < 1e-5
    assert small.symbolic_fun[1].funs_name == ours.symbolic_fun[1].funs_name
    assert _rel(ours.copy()(x), ours(x)) == 0
    from kanswap.plot import _edge_colour

    assert _edge_colour(ours, 0, 0, 1) == ("red", 1.0)
    ours.set_mode(0, 0, 1, "sn")
    assert _edge_colour(ours, 0, 0, 1) == ("purple", 1.0)
    ours.plot()


def test_add_symbolic_and_sympy_forms():
    add_symbolic("cube_root_test", lambda t: torch.sign(t) * t.abs() ** (1 / 3), c=3)
    try:
        model = kanswap.KAN(width=[1, 1], grid=3, seed=0)
        model(_x(40, 1, seed=7))
        model.fix_symbolic(0, 0, 0, "cube_root_test", verbose=False, log_history=False)
        formula, (x1,) = model.symbolic_formula()
        assert formula[0].has(sympy.Function("cube_root_test"))
        SYMBOLIC_LIB["no_sympy_test"] = (torch.sin, None, 2, lambda t, y: torch.sin(t))
        model.fix_symbolic(0, 0, 0, "no_sympy_test", verbose=False, log_history=False)
        with pytest.raises(ValueError, match="no sympy form"):
            model.symbolic_formula()
    finally:
        SYMBOLIC_LIB.pop("cube_root_test", None)
        SYMBOLIC_LIB.pop("no_sympy_test", None)


def test_bad_input_gets_clear_errors():
    model = kanswap.KAN(width=[2, 3, 1], grid=3, seed=0)
    model(_x(30, 2, seed=8))
    with pytest.raises(ValueError, match="unknown symbolic function 'sinh'"):
        model.fix_symbolic(0, 0, 0, "sinh")
    with pytest.raises(ValueError, match="unknown symbolic function"):
        model.suggest_symbolic(0, 0, 0, lib=["x", "cosh"])
    with pytest.raises(ValueError, match="layer l=2 out of range"):
        model.fix_symbolic(2, 0, 0, "x")
    with pytest.raises(ValueError, match=r"edge \(i=2, j=0\) out of range"):
        model.suggest_symbolic(0, 2, 0)
    with pytest.raises(ValueError, match="mode must be"):
        model.set_mode(0, 0, 0, "symbolic")
    with pytest.raises(ValueError, match="var has 1 entries"):
        model.symbolic_formula(var=["a"])
    mlp = kanswap.MLP(width=[2, 3, 1], seed=0)
    for op in (auto_symbolic, lambda m: fix_symbolic(m, 0, 0, 0, "x")):
        with pytest.raises(TypeError, match="needs a KAN"):
            op(mlp)


def test_classic_flow_recovers_the_formula():
    """pykan's tutorial flow (fit with lamb, prune, fit, refine, fit, auto_symbolic, fit): the
    formula, evaluated on fresh points, is within 1e-3 RMSE of exp(sin(pi x) + y^2) (measured 8e-5)."""
    f = lambda x: torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)  # noqa: E731
    dataset = kanswap.create_dataset(f, n_var=2)  # 1000 training samples
    model = kanswap.KAN(width=[2, 5, 1], grid=3, k=3, seed=42)
    model.fit(dataset, steps=50, lamb=0.001, progress=False)
    model = model.prune()
    model.fit(dataset, steps=50, progress=False)
    model = model.refine(10)
    model.fit(dataset, steps=50, progress=False)
    model.auto_symbolic(lib=["x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs"])
    model.fit(dataset, steps=50, progress=False)
    formula, variables = model.symbolic_formula()
    fresh = _x(1000, 2, seed=11)
    value = sympy.lambdify(variables, formula[0], "numpy")(fresh[:, 0].double().numpy(), fresh[:, 1].double().numpy())
    rmse = np.sqrt(np.mean((value - f(fresh.double())[:, 0].numpy()) ** 2))
    assert rmse < 1e-3


def test_formula_follows_masks_and_mult_arity():
    """The formula equals the forward of an all-symbolic model with a mult node of arity 3 (pykan
    groups mult inputs as if every arity were 2), and an edge unfixed after a fit drops out of it
    (pykan keeps its stale affine values)."""
    torch.manual_seed(0)
    model = kanswap.KAN(width=[2, [1, 1], 1], mult_arity=3, grid=3, seed=0)
    names = ["sin", "x^2", "tanh", "exp"]
    for l in range(2):
        for i in range(model.width_in[l]):
            for j in range(model.width_out[l + 1]):
                name = names[(i + j + l) % 4]
                model.fix_symbolic(l, i, j, name, fit_params_bool=False, random=True, log_history=False)
    x = _x(32, 2, seed=12)
    (expr,), variables = model.symbolic_formula()
    value = sympy.lambdify(variables, expr, "numpy")(x[:, 0].double().numpy(), x[:, 1].double().numpy())
    np.testing.assert_allclose(value, model(x).detach()[:, 0].double().numpy(), rtol=1e-5, atol=1e-5)
    model.unfix_symbolic(1, 0, 0, log_history=False)  # numeric again; its affine values stay
    (expr2,), _ = model.symbolic_formula()
    with torch.no_grad():
        model.act_fun[1].mask.zero_()  # the numeric branch off: what is left is the formula
    value2 = sympy.lambdify(variables, expr2, "numpy")(x[:, 0].double().numpy(), x[:, 1].double().numpy())
    np.testing.assert_allclose(value2, model(x).detach()[:, 0].double().numpy(), rtol=1e-5, atol=1e-5)
