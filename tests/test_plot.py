"""kanswap.plot: KAN / MLP diagrams (pykan's layouts, made for papers), headless, no files unless asked."""

import math
import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from torch import nn  # noqa: E402

from kanswap import KAN  # noqa: E402
from kanswap.plot import MIN_ALPHA, MIN_INSET_PT, kan_figsize, mlp_figsize, plot_kan, plot_mlp, plot_summary  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _x(n=40, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g) * 2 - 1


@pytest.fixture
def kan():
    model = KAN(width=[3, 4, 2], seed=0)
    model(_x())
    model.act_fun[0].mask.data[1, 2] = 0.0  # edge (l=0, i=1, j=2) masked
    return model


def _curves(ax):
    """The drawn edge curves of a KAN plot (one polyline per unmasked edge)."""
    sets = [c for c in ax.collections if getattr(c, "kanswap_role", None) == "edge curves"]
    return [seg for c in sets for seg in c.get_segments()]


def _alphas(fig):
    return {(e["layer"], e["i"], e["j"]): e["alpha"] for e in fig.kanswap_edges}


def test_kan_plot_insets_alphas_no_files(kan, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = kan.plot()
    assert plt.gcf() is fig
    assert tuple(fig.get_size_inches()) == pytest.approx(kan_figsize(kan, 0.5))
    assert fig.get_size_inches()[0] == pytest.approx(5.0)  # pykan's 10 scale: 12 edges fit in one row
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((0, 1))
    assert ax.get_ylim() == pytest.approx((-0.04, 0.84))
    assert len(_curves(ax)) == 3 * 4 + 4 * 2 - 1  # one curve per unmasked edge
    assert ax.child_axes == []  # curves are lines of the main axes, not inset Axes
    kan.attribute()
    alphas = _alphas(fig)
    assert len(alphas) == 20
    for l, score in enumerate(kan.edge_scores):
        score = score.detach()
        for j in range(score.shape[0]):
            for i in range(score.shape[1]):
                want = 0.0 if (l, i, j) == (0, 1, 2) else math.tanh(3 * float(score[j, i]))
                assert alphas[(l, i, j)] == pytest.approx(want, abs=1e-6)
    fig.savefig(tmp_path / "shown.png")  # renders headless (Agg)
    assert os.listdir(tmp_path) == ["shown.png"]


@pytest.mark.parametrize("metric, attr", [("forward_n", "acts_scale"), ("forward_u", "edge_actscale")])
def test_kan_plot_forward_metrics(kan, metric, attr):
    fig = plot_kan(kan, metric=metric, beta=2)
    alphas = _alphas(fig)
    for l, score in enumerate(getattr(kan, attr)):
        score = score.detach()
        for j in range(score.shape[0]):
            for i in range(score.shape[1]):
                mask = float(kan.act_fun[l].mask[i, j])
                assert alphas[(l, i, j)] == pytest.approx(math.tanh(2 * float(score[j, i])) * mask, abs=1e-6)


def test_kan_plot_inset_curve_is_edge_output(kan):
    fig = kan.plot()
    edge = fig.kanswap_edges[0]
    assert (edge["layer"], edge["i"], edge["j"]) == (0, 0, 0)
    xs, ys = edge["curve"]
    x, phi = kan.edge_activations(0)
    order = np.argsort(x[:, 0].numpy(), kind="stable")
    np.testing.assert_allclose(xs, x[order, 0].numpy())
    np.testing.assert_allclose(ys, phi[order, 0, 0].numpy(), rtol=1e-6, atol=1e-7)
    drawn = _curves(fig.axes[0])[0]  # the same curve, scaled into its box
    for k, v in enumerate((xs, ys)):
        want = (v - v.min()) / (v.max() - v.min())
        got = (drawn[:, k] - drawn[:, k].min()) / (drawn[:, k].max() - drawn[:, k].min())
        np.testing.assert_allclose(got, want, atol=1e-6)  # float32 curve vs its float64 drawing: 9e-8


def test_kan_plot_mult_nodes():
    model = KAN(width=[3, [2, 1], 1], seed=0)
    model(_x())
    fig = model.plot(tick=True, sample=True)
    ax = fig.axes[0]
    assert len(_curves(ax)) == 3 * 4 + 3 * 1  # width_out [4, 1], width_in [3, 3]
    # subnodes 2 and 3 of node layer 1 join mult node 2: segments from y0=0.3 to 0.4
    joins = {tuple(map(tuple, np.round(s, 6))) for c in ax.collections
             if isinstance(c, LineCollection) for s in c.get_segments()}
    for sub in (2, 3):
        assert ((round((sub + 0.5) / 4, 6), 0.3), (round(2.5 / 3, 6), 0.4)) in joins


def test_kan_plot_folder_writes_png(kan, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kan.plot(folder="figs", in_vars=["a", "b", "c"], out_vars=["y1", "y2"], title="T")
    assert os.listdir(tmp_path) == ["figs"]
    assert os.listdir(tmp_path / "figs") == ["kan.png"]
    assert (tmp_path / "figs" / "kan.png").stat().st_size > 1000


def test_kan_plot_labels():
    sympy = pytest.importorskip("sympy")
    model = KAN(width=[2, 2, 1], seed=0)
    model(_x(d=2))
    fig = model.plot(in_vars=[sympy.Symbol("x_1"), "b"], out_vars=["y"], title="T", scale=0.5, varscale=0.5)
    ax = fig.axes[0]
    texts = {t.get_text(): t for t in ax.texts}
    assert set(texts) == {"$x_{1}$", "b", "y"}
    assert ax.get_title() == "T"
    assert texts["b"].xy == pytest.approx((0.75, 0.0))  # under input node 1
    assert texts["y"].xy == pytest.approx((0.5, 0.8))  # over the output node
    assert texts["b"].get_fontsize() == pytest.approx(5)  # 10 pt times varscale


def test_kan_plot_default_labels_title_and_colour_bar():
    """Before: no labels, no legend. Now x_i / y_j (original input numbers after prune_input) and
    a colour bar explaining opacity."""
    model = KAN(width=[3, 2, 2], seed=0)
    model(_x())
    fig = model.plot(title="fitted")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["$x_{1}$", "$x_{2}$", "$x_{3}$", "$y_{1}$", "$y_{2}$"]
    assert ax.get_title() == "fitted"
    bars = [a for a in fig.axes if getattr(a, "kanswap_colourbar", False)]
    assert len(bars) == 1 and "opacity = tanh(3 × score)" in bars[0].get_xlabel()
    pruned = model.prune_input(active_inputs=[0, 2])
    pruned(_x())
    assert [t.get_text() for t in pruned.plot(legend=False).axes[0].texts][:2] == ["$x_{1}$", "$x_{3}$"]
    with pytest.raises(ValueError, match="got 2 names in in_vars for the model's 3 inputs"):
        model.plot(in_vars=["a", "b"])


def _boxes_points(fig):
    """Edge-curve boxes of fig's KAN axes as (x0, y0, x1, y1) in points."""
    from matplotlib.collections import PolyCollection

    ax = fig.axes[0]
    fig.canvas.draw()
    polys = [c for c in ax.collections if isinstance(c, PolyCollection)][0]
    scale = 72 / fig.dpi
    out = []
    for path in polys.get_paths():
        v = ax.transData.transform(path.vertices) * scale
        out.append((v[:, 0].min(), v[:, 1].min(), v[:, 0].max(), v[:, 1].max()))
    return np.array(out)


def test_kan_plot_curves_are_readable_size_and_do_not_overlap():
    """Before: the reference KAN's [9, 10, 10, 1] insets were ~5 px (3 pt). Now >= 14 pt, one row a
    layer, and no edge line runs over another edge's box (staggered rows made lines cross boxes)."""
    model = KAN(width=[9, 10, 10, 1], seed=5)
    model(torch.rand(60, 9, generator=torch.Generator().manual_seed(0)).round())
    fig = model.plot()
    boxes = _boxes_points(fig)
    visible = [e for e in fig.kanswap_edges if not e["masked"] and e["alpha"] >= MIN_ALPHA]
    assert len(boxes) == len(visible) and len(visible) > 0.9 * (9 * 10 + 10 * 10 + 10)
    ax = fig.axes[0]
    lines = [c for c in ax.collections if isinstance(c, LineCollection)][0]  # node -> box -> subnode lines
    t = np.linspace(0.02, 0.98, 60)[:, None]
    for k, seg in enumerate(lines.get_segments()):
        a, b = ax.transData.transform(seg) * 72 / fig.dpi
        pts = a + t * (b - a)  # points along the line, ends excluded (they touch their own box)
        inside = ((pts[:, None, 0] > boxes[None, :, 0] + 0.5) & (pts[:, None, 0] < boxes[None, :, 2] - 0.5)
                  & (pts[:, None, 1] > boxes[None, :, 1] + 0.5) & (pts[:, None, 1] < boxes[None, :, 3] - 0.5))
        assert not inside.any(), f"edge line {k} runs over box {np.nonzero(inside.any(0))[0]}"
    sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert sizes.min() >= MIN_INSET_PT - 0.01
    frame = fig.axes[0].get_window_extent().extents * 72 / fig.dpi  # every box inside the axes (not clipped)
    assert (boxes[:, 0] >= frame[0]).all() and (boxes[:, 2] <= frame[2]).all()
    for a in range(len(boxes)):  # no two boxes overlap
        b = boxes[a + 1:]
        overlap = (np.minimum(b[:, 2], boxes[a, 2]) - np.maximum(b[:, 0], boxes[a, 0]) > 0.01) & \
                  (np.minimum(b[:, 3], boxes[a, 3]) - np.maximum(b[:, 1], boxes[a, 1]) > 0.01)
        assert not overlap.any(), a


def test_kan_plot_modules_colours_module_edges():
    model = KAN(width=[4, 2, 1], seed=0)
    with torch.no_grad():  # two separate blocks: inputs 0, 1 -> node 0 and inputs 2, 3 -> node 1
        model.act_fun[0].mask[:2, 1] = 0
        model.act_fun[0].mask[2:, 0] = 0
    model(_x(d=4))
    mods = model.find_modules(threshold=1e-6)  # every unmasked edge is strong (masked ones score ~1e-12)
    assert [g for g, n in zip(mods[0].groups, mods[0].nodes, strict=True) if n] == [[0, 1], [2, 3]]
    fig = model.plot(modules=True, module_threshold=1e-6)
    colour = {(e["layer"], e["i"], e["j"]): e["colour"] for e in fig.kanswap_edges if not e["masked"]}
    tab10 = matplotlib.colormaps["tab10"].colors
    assert colour[(0, 0, 0)] == colour[(0, 1, 0)] == tab10[0]
    assert colour[(0, 2, 1)] == colour[(0, 3, 1)] == tab10[1]
    # the output node joins both modules: its own colour, not the first module's (blue meant both)
    assert colour[(1, 0, 0)] == colour[(1, 1, 0)] == tab10[6]
    assert fig.kanswap_module_key == [(tab10[0], "module $x_{1}$, $x_{2}$"), (tab10[1], "module $x_{3}$, $x_{4}$"),
                                      (tab10[6], "joins modules")]
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [label for _, label in fig.kanswap_module_key]
    assert all(e["colour"] == "black" for e in model.plot().kanswap_edges if not e["masked"])


def test_kan_plot_errors(kan):
    fresh = KAN(width=[2, 2, 1], seed=0)
    with pytest.raises(ValueError, match=r"model\(dataset\['train_input'\]\)"):
        fresh.plot()
    with pytest.raises(ValueError, match="'backward', 'forward_n', 'forward_u'"):
        kan.plot(metric="nope")


def test_kan_plot_recomputes_missing_acts(kan):
    kan.acts = None
    fig = kan.plot()
    assert kan.acts is not None
    assert len(_curves(fig.axes[0])) == 19


# -- MLP ----------------------------------------------------------------------------------------
class _StandInMLP:
    """Just what plot_mlp reads, with pykan's MLP formulas."""

    def __init__(self, width, seed=0):
        torch.manual_seed(seed)
        self.width, self.depth = list(width), len(width) - 1
        self.linears = nn.ModuleList([nn.Linear(a, b) for a, b in zip(width[:-1], width[1:], strict=True)])
        self.acts = self.cache_data = None

    def __call__(self, x):
        self.cache_data, self.acts, self.acts_scale, self.wa_forward = x, [], [], []
        with torch.no_grad():
            for l, lin in enumerate(self.linears):
                self.acts.append(x)
                s = x.std(0)
                if l:
                    self.acts_scale.append(s)
                self.wa_forward.append(s[None, :] * lin.weight)
                x = lin(x)
                if l < self.depth - 1:
                    x = torch.nn.functional.silu(x)
            self.acts_scale.append(x.std(0))
        return x

    def get_act(self):
        self(self.cache_data)

    def attribute(self):
        score = torch.ones(self.width[-1])
        edges = []
        for l in range(self.depth, 0, -1):
            e = self.wa_forward[l - 1].abs() * (score / (self.acts_scale[l - 1] + 1e-4))[:, None]
            edges.append(e)
            score = e.sum(0) / math.sqrt(self.width[l - 1])
        self.edge_scores = self.wa_backward = edges[::-1]


@pytest.fixture
def mlp():
    try:
        from kanswap.mlp import MLP
    except ImportError:
        MLP = _StandInMLP
    model = MLP([3, 4, 2], seed=0)
    with torch.no_grad():
        model.linears[0].weight[0, 0] = 0.0
        model.linears[0].weight[1, 0] = 0.5
        model.linears[0].weight[1, 1] = -0.5
    return model


def test_mlp_plot_weights_colours_alpha(mlp, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = plot_mlp(mlp, beta=2)  # 'w' needs no data
    assert plt.gcf() is fig
    assert tuple(fig.get_size_inches()) == pytest.approx(mlp_figsize(mlp, 1.0))
    edges = {(e["layer"], e["i"], e["j"]): e for e in fig.kanswap_edges}
    assert len(edges) == 3 * 4 + 4 * 2
    assert edges[(0, 0, 0)]["colour"] == "grey" and edges[(0, 0, 0)]["alpha"] == 0.0
    assert edges[(0, 1, 0)]["colour"] == "blue"
    assert edges[(0, 1, 1)]["colour"] == "red"
    assert edges[(0, 1, 0)]["alpha"] == pytest.approx(math.tanh(1.0))
    for l, lin in enumerate(mlp.linears):
        w = lin.weight.detach()
        for (i, j), v in np.ndenumerate(w.numpy()):
            e = edges[(l, i, j)]
            assert e["alpha"] == pytest.approx(math.tanh(2 * abs(v)), abs=1e-6)
            assert e["colour"] == ("blue" if v > 0 else "red" if v < 0 else "grey")
    segments = fig.axes[0].collections[-1].get_segments()
    assert len(segments) == len(edges) - 1  # the zero weight (alpha 0) is not drawn at all
    assert os.listdir(tmp_path) == []


def test_mlp_plot_act_fa_and_folder(mlp, tmp_path):
    with pytest.raises(ValueError, match="run the model on data first"):
        plot_mlp(mlp, metric="act")
    mlp(_x())
    fig = plot_mlp(mlp, metric="act")
    for e in fig.kanswap_edges:
        want = float(mlp.wa_forward[e["layer"]].detach()[e["i"], e["j"]])
        assert e["value"] == pytest.approx(want, abs=1e-6)
    fig = plot_mlp(mlp, metric="fa", folder=str(tmp_path / "out"))
    for e in fig.kanswap_edges:
        want = float(mlp.wa_backward[e["layer"]].detach()[e["i"], e["j"]])
        assert e["value"] == pytest.approx(want, abs=1e-6)
        assert e["value"] >= 0
    assert os.listdir(tmp_path / "out") == ["mlp.png"]
    assert (tmp_path / "out" / "mlp.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="'w', 'act', 'fa'"):
        plot_mlp(mlp, metric="x")


def test_plot_summary(kan, mlp, tmp_path):
    mlp(_x())
    path = tmp_path / "sub" / "summary.png"
    fig = plot_summary([kan, mlp], ["KAN", "MLP"], str(path))
    assert path.stat().st_size > 1000
    kan_ax, mlp_ax = fig.axes[:2]
    assert len(_curves(kan_ax)) == 19
    assert kan_ax.get_title() == "KAN" and mlp_ax.get_title() == "MLP"
    with pytest.raises(ValueError, match="titles"):
        plot_summary([kan], ["a", "b"], None)


def test_kan_plot_fractional_mask_colour_D24():
    """pykan tests `mask == 1.`, so a mask of 0.5 reuses the previous edge's colour; here any
    positive mask is a numeric (black) edge, and a zero mask gets no inset."""
    model = KAN(width=[2, 2, 1], seed=0)
    with torch.no_grad():
        model.act_fun[0].mask[0, 1] = 0.5
        model.act_fun[0].mask[1, 0] = 0.0
    model(torch.rand(16, 2))
    fig = model.plot()
    edges = {(e["layer"], e["i"], e["j"]): e for e in fig.kanswap_edges}
    assert edges[(0, 0, 1)]["alpha"] > 0 and not edges[(0, 0, 1)]["masked"]
    assert edges[(0, 1, 0)]["alpha"] == 0 and edges[(0, 1, 0)]["masked"]
    assert len(_curves(fig.axes[0])) == 5  # 6 edges, one masked


def test_mlp_plot_labels_colour_bar_and_modules(mlp):
    fig = plot_mlp(mlp, title="MLP", in_vars=["a", "b", "c"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["a", "b", "c", "$y_{1}$", "$y_{2}$"]
    assert ax.get_title() == "MLP"
    bar = [a for a in fig.axes if getattr(a, "kanswap_colourbar", False)][0]
    assert "blue > 0, red < 0" in bar.get_xlabel()
    fig = plot_mlp(mlp, modules=True)
    mods = mlp.find_modules()
    tab10 = matplotlib.colormaps["tab10"].colors
    for e in fig.kanswap_edges:
        inside = [m for m, (g, n) in enumerate(zip(mods[e["layer"]].groups, mods[e["layer"]].nodes, strict=True))
                  if e["j"] in g and e["i"] in n]
        if inside:
            assert e["colour"] in tab10
        else:
            assert e["colour"] == "grey"


@pytest.mark.parametrize("fmt", ["pdf", "svg"])
def test_plot_summary_vector_output_aligned_panels(kan, mlp, tmp_path, fmt):
    """Before: the summary was a collage of bitmaps with the MLP title higher than the others.
    Now: subplots drawn as vectors, one title line, a str panel for a message."""
    mlp(_x())
    path = tmp_path / f"summary.{fmt}"
    fig = plot_summary([kan, mlp, "nothing to show"], ["KAN", "MLP", "note"], str(path), ncols=3)
    data = path.read_bytes()
    assert data.startswith(b"%PDF") if fmt == "pdf" else (b"<svg" in data and b"<image" not in data)
    panels = [ax for ax in fig.axes if not getattr(ax, "kanswap_colourbar", False)]
    assert len(panels) == 3
    fig.canvas.draw()
    tops = [ax.title.get_window_extent().y0 for ax in panels]
    assert max(tops) - min(tops) < 1.0  # pixels
    assert panels[2].texts[0].get_text() == "nothing to show"
    with pytest.raises(TypeError, match="expected a KAN, MLP or str"):
        plot_summary([object()])


def _reference_like_kan(steps_seed: int = 5) -> KAN:
    """An untrained [9, 10, 10, 1] KAN on binary inputs: ~200 edges, many of them faint."""
    model = KAN(width=[9, 10, 10, 1], seed=steps_seed)
    model(torch.rand(60, 9, generator=torch.Generator().manual_seed(0)).round())
    return model


def test_plot_in_vars_original_names_after_prune_input():
    """Before: after prune_input, the original names raised "got 4 variable names for 3 nodes"
    (pykan's tutorials pass them). Now they are picked by input_id; a wrong count names what remains."""
    model = KAN(width=[4, 3, 1], seed=0)
    model(_x(d=4))
    pruned = model.prune_input(active_inputs=[0, 1, 3])
    pruned(_x(d=4, seed=1))
    names = ["a", "b", "c", "$d$"]
    labels = [t.get_text() for t in pruned.plot(in_vars=names, out_vars=["y"]).axes[0].texts]
    assert labels == ["a", "b", "$d$", "y"]
    labels = [t.get_text() for t in pruned.plot(in_vars=["p", "q", "r"]).axes[0].texts]
    assert labels[:3] == ["p", "q", "r"]
    with pytest.raises(ValueError, match=r"reads 3 of its 4 input columns \(x1, x2, x4 remain after prune_input\)"):
        pruned.plot(in_vars=["a", "b"])
    with pytest.raises(ValueError, match="got 2 names in out_vars for the model's 1 outputs"):
        pruned.plot(out_vars=["y", "z"])


def test_plot_names_in_dollars_are_math_text():
    """A name written as $...$ is set as math text (as the default $x_{1}$ labels); a plain one as text."""
    model = KAN(width=[2, 2, 1], seed=0)
    model(_x(d=2))
    texts = {t.get_text(): t for t in model.plot(in_vars=[r"$\alpha_1$", "speed"]).axes[0].texts}
    assert texts[r"$\alpha_1$"]._preprocess_math(texts[r"$\alpha_1$"].get_text())[1] is True
    assert texts["speed"]._preprocess_math("speed")[1] is False


def test_svg_has_no_invisible_elements(tmp_path):
    """Before: edges of opacity below 1e-5 were still written (~570 paths in the demo's summary.svg).
    Now nothing fainter than half an 8-bit step (MIN_ALPHA) is drawn."""
    import re

    model = _reference_like_kan()
    fig = model.plot()
    faint = [e for e in fig.kanswap_edges if not e["masked"] and e["alpha"] < MIN_ALPHA]
    assert faint, "the test model needs faint edges to mean anything"
    summary = plot_summary([model])
    for name, figure in (("kan.svg", fig), ("summary.svg", summary)):
        figure.savefig(tmp_path / name)
        svg = (tmp_path / name).read_text()
        opacities = [float(v) for v in re.findall(r"opacity:\s*([0-9.eE+-]+)", svg)]
        assert opacities and min(opacities) >= MIN_ALPHA, name
    with matplotlib.rc_context({"pdf.compression": 0}):
        for name, figure in (("kan.pdf", fig), ("summary.pdf", summary)):
            figure.savefig(tmp_path / name)
            pdf = (tmp_path / name).read_bytes().decode("latin-1")
            # an ExtGState sets stroke (CA) and fill (ca) opacity; "/CA 0 /ca 1" is a fill without an outline
            states = [(float(a), float(b)) for a, b in re.findall(r"/CA ([0-9.]+) /ca ([0-9.]+)", pdf)]
            assert states and min(max(a, b) for a, b in states) >= MIN_ALPHA, name


def test_summary_prints_at_seven_inches_with_one_key(mlp):
    """Before: 20 x 6.3 in (fonts ~4 pt at a 7-in text width) with four colour bars. Now 7 in wide,
    every text >= 7 pt at that size, one shared key with the module colours and the MLP signs."""
    from matplotlib.text import Text

    model = _reference_like_kan()
    mlp(_x())
    fig = plot_summary([model, model, mlp, "message"], titles=["a", "b", "c", "d"], kan_kwargs={"modules": True})
    assert fig.get_size_inches()[0] == pytest.approx(7.0)
    assert not [a for a in fig.axes if getattr(a, "kanswap_colourbar", False)]  # no per-panel bars
    assert all(a.get_legend() is None for a in fig.axes)  # and no per-panel keys
    (key,) = fig.legends
    labels = [t.get_text() for t in key.get_texts()]
    assert labels[0].startswith("KAN edge, opacity tanh(3") and "MLP weight > 0" in labels[1]
    assert "MLP weight < 0" in labels and sum(lab.startswith("module ") for lab in labels) >= 1
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert len(sizes) > 30 and min(sizes) >= 7.0


def test_plot_figure_stays_open_and_current_outside_jupyter(kan, mlp):
    """As pykan leaves its figure: open and current (plt.savefig works after plot); the notebook
    behaviour (shown once) is tested in a real kernel by test_notebook.py."""
    import pickle

    from kanswap.display import PlotFigure

    for draw in (kan.plot, lambda: plot_mlp(mlp), lambda: plot_summary([kan])):
        fig = draw()
        assert isinstance(fig, PlotFigure) and plt.gcf() is fig
    assert isinstance(pickle.loads(pickle.dumps(fig)), PlotFigure)  # matplotlib figures pickle; so do these
