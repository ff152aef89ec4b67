"""Network diagrams for KAN and MLP models (pykan 0.2.8's ``plot`` layouts), made
for papers: titles, input/output labels, a colour bar, edge curves of a readable size, modules.

Unlike pykan, nothing is written to disk unless ``folder`` is given: each edge's activation curve is
drawn in a small box of the same axes (pykan saves one PNG per edge and reads it back), and the
sum / mult symbols are drawn with matplotlib markers instead of image assets, so PDF and SVG output
is all vector. Every function returns
the matplotlib Figure, which is also left as the current pyplot figure (so ``plt.savefig`` works as
after pykan's ``model.plot()``). ``plt.show`` is never called and no backend is forced.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from .display import hand_over, new_figure

KAN_METRICS = ("backward", "forward_n", "forward_u")
MLP_METRICS = ("w", "act", "fa")

# pykan's layout constants: node layer -> subnodes height, subnodes -> next node layer height.
_Y0, _Z0 = 0.3, 0.1
# An edge-curve inset narrower than ~14 pt (5 mm) no longer shows its curve's shape; pykan's are
# ~3 pt at the reference KAN's 100 edges per layer. One row per layer: with insets staggered over
# 4 rows (an earlier layout) the line to a box of an upper row ran over the boxes below it, so a
# wide layer makes the figure wider instead (the reference KAN's 100 edges: 24 in at 14 pt).
MIN_INSET_PT, MAX_ROWS = 14.0, 1
# Where the row leaves less than this per box (a summary panel 3.4 in wide: 2 pt for 100 edges)
# the curves are left out and each edge is one straight line: a 2 mm box shows no shape.
MIN_CURVE_PT = 6.0
# An element with opacity below half an 8-bit step prints as nothing; drawing it anyway left
# ~570 invisible paths in the demo's summary.svg (1.8 MB).
MIN_ALPHA = 0.5 / 255
_GAP = 1.15  # centre-to-centre spacing of neighbouring insets, in inset sizes
_BAND = 0.24  # height (data units, of 0.4 per layer) for a layer's insets between nodes and sum symbols
_FONT = 10  # points: labels and titles in a figure printed at its size
_TITLE_PAD = 22  # points above the axes: clears the output labels, drawn 7 pt above the top nodes
_SIDE = 0.03  # left/right margin, fraction of the figure width
_MARGIN_BOTTOM, _MARGIN_TOP = 0.4, 0.65  # inches: input labels; output labels and title
_CBAR = 0.04 + 0.06  # share of the axes height the colour bar and its pad take (see _colourbar)
_NO_DATA = ("the model has not seen any data yet: run the model on data first, "
            "e.g. model(dataset['train_input']), then plot")


def _np(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    return np.asarray(t)


def _label(v) -> str:
    """Text for an in/out variable or title: sympy-like objects become ``$latex$``."""
    if isinstance(v, str):
        return v
    try:
        import sympy
    except ImportError:  # pragma: no cover - sympy ships with torch
        sympy = None
    if sympy is not None and isinstance(v, sympy.Basic):
        return f"${sympy.latex(v)}$"
    rep = getattr(v, "_repr_latex_", None)
    if callable(rep):
        s = rep()
        if isinstance(s, str) and s:
            s = s.replace("\\displaystyle", "").strip()
            return s if s.startswith("$") else f"${s}$"
    return str(v)


def _axes_inches(ax) -> tuple[float, float]:
    """(width, height) of ax in inches, after its aspect constraint is applied."""
    ax.apply_aspect()
    pos = ax.get_position()
    fw, fh = ax.figure.get_size_inches()
    return pos.width * fw, pos.height * fh


def _save(fig, folder, name: str) -> None:
    if folder is None:
        return
    os.makedirs(folder, exist_ok=True)
    fig.savefig(os.path.join(folder, name), bbox_inches="tight", dpi=200)


# ------------------------------------------------------------------------------------------------
# KAN
# ------------------------------------------------------------------------------------------------
def _kan_prepare(model, metric: str):
    if metric not in KAN_METRICS:
        allowed = ", ".join(map(repr, KAN_METRICS))
        raise ValueError(f"metric = {metric!r} not recognized; choose one of {allowed}")
    if getattr(model, "cache_data", None) is None and getattr(model, "acts", None) is None:
        raise ValueError(_NO_DATA)
    if not getattr(model, "save_act", True):
        print("cannot plot since data are not saved. Set save_act=True first. "
              "(kanswap plots from the cached data instead)")
    if model.acts is None or not getattr(model, "edge_actscale", None):
        if getattr(model, "cache_data", None) is None:
            raise ValueError(_NO_DATA)
        if model.cache_data.shape[0] == 0:
            raise ValueError("the model's cached data has no rows; run the model on a non-empty batch first")
        model.get_act()
    if metric == "backward":
        model.attribute()
        return [_np(s) for s in model.edge_scores]
    if metric == "forward_n":
        return [_np(s) for s in model.acts_scale]
    return [_np(s) for s in model.edge_actscale]


def _edge_colour(model, l: int, i: int, j: int) -> tuple[str, float]:
    """pykan's colour rule: black numeric, red symbolic, purple both, white (alpha 0) neither."""
    numeric = float(model.act_fun[l].mask[i][j]) > 0
    sym = getattr(model, "symbolic_fun", None)
    symbolic = sym is not None and float(sym[l].mask[j][i]) > 0
    if numeric and symbolic:
        return "purple", 1.0
    if symbolic:
        return "red", 1.0
    if numeric:
        return "black", 1.0
    return "white", 0.0


def _curve_in_box(box, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The curve (x, y) scaled into box [x0, y0, w, h] (data units) with a 10% margin: (n, 2).
    A constant curve sits at mid-height. Drawn as lines of the main axes, not as inset axes: an
    inset Axes costs ~0.1 s to build and the reference KAN has 190 edges (20 s a plot, measured)."""
    x0, y0, w, h = box

    def fit(v: np.ndarray, lo: float, span: float) -> np.ndarray:
        vmin, vmax = (float(v.min()), float(v.max())) if len(v) else (0.0, 0.0)
        if not np.isfinite(vmin) or not np.isfinite(vmax) or vmax - vmin <= 1e-12 * max(1.0, abs(vmax)):
            return np.full(len(v), lo + span / 2)
        return lo + span * (0.1 + 0.8 * (v - vmin) / (vmax - vmin))

    return np.column_stack([fit(x, x0, w), fit(y, y0, h)])


def _box_outline(box) -> list[tuple[float, float]]:
    x0, y0, w, h = box
    return [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h), (x0, y0)]


def _layer_geometry(n_edges: list[int], ax_w_pt: float, py_pt: float, inset_pt: float) -> tuple[list[int], float]:
    """Rows of staggered insets per layer and the inset size in points that fit an axes ax_w_pt
    wide with py_pt points per unit of height. Insets keep ``inset_pt`` (>= MIN_INSET_PT) unless
    the axes is too small even for MAX_ROWS rows; then they shrink to fit (never below 4 pt)."""
    size = inset_pt
    for _ in range(3):
        span = ax_w_pt - 1.1 * size  # box centres stay half a box (+5%) inside each side
        rows = [min(MAX_ROWS, max(1, math.ceil(n * size * _GAP / span))) for n in n_edges]
        # a layer's insets sit in a band of _BAND height units between its nodes and sum symbols
        fit_h = _BAND * py_pt / (max(rows) * _GAP)
        fit_w = min(ax_w_pt * r / (n * _GAP + 1.1 * r) for n, r in zip(n_edges, rows, strict=True))
        new = max(min(size, fit_h, fit_w), 4.0)
        if new == size:
            break
        size = new
    return rows, size


def kan_figsize(model, scale: float = 0.5, n_edges: list[int] | None = None) -> tuple[float, float]:
    """(width, height) in inches of ``plot_kan``'s figure: pykan's (10 scale, 10 scale L 0.4) plus
    margins, grown until every drawn edge's inset is MIN_INSET_PT points wide in at most MAX_ROWS
    rows. ``n_edges``: drawn edges per layer (default: every edge)."""
    L = model.depth
    if n_edges is None:
        n_edges = [model.width_in[l] * model.width_out[l + 1] for l in range(L)]
    n_edges = [max(int(n), 1) for n in n_edges]
    w = 10 * scale
    ax_w_pt = w * 72 * (1 - 2 * _SIDE)
    need_w = max(n * MIN_INSET_PT * _GAP / MAX_ROWS + 1.1 * MIN_INSET_PT for n in n_edges) / (1 - 2 * _SIDE) / 72
    w = max(w, need_w)
    ax_w_pt = w * 72 * (1 - 2 * _SIDE)
    rows = [min(MAX_ROWS, max(1, math.ceil(n * MIN_INSET_PT * _GAP / (ax_w_pt - 1.1 * MIN_INSET_PT))))
            for n in n_edges]
    py_pt = max(10 * scale * L * (_Y0 + _Z0) * 72 / ((L + 0.2) * (_Y0 + _Z0)),  # pykan's points per unit
                max(rows) * MIN_INSET_PT * _GAP / _BAND)
    ax_h = (L + 0.2) * (_Y0 + _Z0) * py_pt / 72 / (1 - _CBAR)
    return w, ax_h + _MARGIN_BOTTOM + _MARGIN_TOP


def _default_vars(n: int, prefix: str, ids=None) -> list[str]:
    ids = list(range(n)) if ids is None else [int(i) for i in ids]
    return [f"${prefix}_{{{i + 1}}}$" for i in ids]


def node_names(model, in_vars=None, out_vars=None) -> tuple[list, list]:
    """The input and output labels of a drawing of ``model``: ``in_vars`` names either the inputs
    the model still reads (``width_in[0]``) or, after ``prune_input``, every original input column
    (``n_inputs``, as pykan's tutorials pass them; the kept ones are picked by ``input_id``).
    Defaults: $x_i$ by original input index, $y_j$. A wrong count is a ValueError naming the inputs
    that remain."""
    n_in, n_out = int(model.width_in[0]), int(model.width_in[-1])
    input_id = getattr(model, "input_id", None)
    ids = list(range(n_in)) if input_id is None else [int(i) for i in _np(input_id).tolist()]
    n_orig = int(getattr(model, "n_inputs", n_in))
    if in_vars is None:
        in_names = _default_vars(n_in, "x", ids if len(ids) == n_in else None)
    else:
        in_vars = list(in_vars)
        if len(in_vars) == n_in:
            in_names = in_vars
        elif len(in_vars) == n_orig and len(ids) == n_in:
            in_names = [in_vars[i] for i in ids]
        else:
            kept = ", ".join(f"x{i + 1}" for i in ids)
            if n_orig != n_in:
                raise ValueError(f"got {len(in_vars)} names in in_vars, but the model reads {n_in} of its {n_orig} "
                                 f"input columns ({kept} remain after prune_input): pass {n_orig} names (one per "
                                 f"original input) or {n_in} (one per remaining input)")
            raise ValueError(f"got {len(in_vars)} names in in_vars for the model's {n_in} inputs")
    if out_vars is None:
        out_names = _default_vars(n_out, "y")
    else:
        out_names = list(out_vars)
        if len(out_names) != n_out:
            raise ValueError(f"got {len(out_names)} names in out_vars for the model's {n_out} outputs")
    return in_names, out_names


def _place_axes(fig, ax, title) -> None:
    """Fix ax's margins in inches (labels below, title above, colour bar at the bottom)."""
    fw, fh = fig.get_size_inches()
    top = _MARGIN_TOP if title is not None else _MARGIN_TOP - 0.25
    ax.set_position([_SIDE, _MARGIN_BOTTOM / fh, 1 - 2 * _SIDE, 1 - (_MARGIN_BOTTOM + top) / fh])


def _figure_and_axes(ax, figsize, title):
    """A new figure with margins fixed by ``_place_axes`` when ax is None, else ax's figure made
    current (as pykan's plot leaves its figure current)."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig = new_figure(figsize=figsize)
        ax = fig.add_axes([0, 0, 1, 1])
        _place_axes(fig, ax, title)
        return fig, ax
    fig = ax.figure
    if fig.canvas.manager is not None:
        plt.figure(fig.number)
    return fig, ax


def _colourbar(fig, ax, cmap, vmin: float, vmax: float, label: str):
    """A horizontal colour bar under ax that explains edge colour and opacity."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    sm = ScalarMappable(norm=Normalize(vmin, vmax), cmap=cmap)
    bar = fig.colorbar(sm, ax=ax, location="bottom", fraction=0.04, pad=0.06, shrink=0.6, aspect=30)
    bar.set_label(label, fontsize=_FONT - 1)
    bar.ax.tick_params(labelsize=_FONT - 2)
    bar.solids.set_rasterized(False)  # matplotlib rasterises bars of >= 50 colours: keep PDF/SVG all vector
    bar.ax.kanswap_colourbar = True
    return bar


def _alpha_cmap(colour_lo: str | None, colour_hi: str, beta: float, vmax: float, n: int = 256):
    """Colour map of an edge's drawn colour: opacity tanh(beta |v|) of colour_hi (v > 0) or
    colour_lo (v < 0), composited on white as on the page."""
    from matplotlib.colors import ListedColormap, to_rgb

    lo = -vmax if colour_lo is not None else 0.0
    v = np.linspace(lo, vmax, n)
    a = np.tanh(beta * np.abs(v))[:, None]
    base = np.where((v >= 0)[:, None], np.array(to_rgb(colour_hi)), np.array(to_rgb(colour_lo or colour_hi)))
    return ListedColormap(1 - a * (1 - base))


# Module colours: tab10 without red and purple (pykan's colours of symbolic and numeric+symbolic
# edges) and without grey (MLP weights outside modules); pink marks a module that joins several.
_MODULE_PALETTE = (0, 1, 2, 5, 8, 9)
_JOINED = 6


def _module_colours(model, n_layers: int, threshold: float, in_names=None):
    """{(l, i, j_node): colour} for the edges inside a module of ``find_modules`` (modules that reach
    at least one node), and the legend entries [(colour, label)]. A first-layer module gets its own
    colour; a later module keeps the colour of the one module it continues, or the 'joins modules'
    colour when it takes in several (so the merged upper layers never share a first-layer colour)."""
    from matplotlib import colormaps

    from .modules import find_modules

    tab10 = colormaps["tab10"].colors
    palette = [tab10[k] for k in _MODULE_PALETTE]
    joined = tab10[_JOINED]
    modules = find_modules(model, threshold)
    names = in_names if in_names is not None else modules.in_vars
    colour_of: dict = {}
    legend: list = []
    node_colour: dict = {}  # node of the layer above -> colour of the module reaching it
    fresh = 0
    for mod in modules[:n_layers]:
        above = {}
        for group, nodes in zip(mod.groups, mod.nodes, strict=True):
            if not nodes:
                continue
            parents = {node_colour[i] for i in group if i in node_colour}
            if mod.layer > 0 and len(parents) == 1:
                colour = parents.pop()
            elif mod.layer > 0 and len(parents) > 1:
                colour = joined
                if all(c != joined for c, _ in legend):
                    legend.append((joined, "joins modules"))
            else:
                colour = palette[fresh % len(palette)]
                fresh += 1
                if mod.layer == 0:
                    members = [names[i] if names is not None else f"x{i + 1}" for i in group]
                    label = "module " + ", ".join(_label(v) for v in members)
                else:
                    label = f"module of layer {mod.layer + 1}"
                legend.append((colour, label))
            for i in group:
                for j in nodes:
                    colour_of[(mod.layer, i, j)] = colour
            for j in nodes:
                above[j] = colour
        node_colour = above
    return colour_of, legend


def _module_legend(where, entries, fontsize: float, **kwargs):
    """A legend of module colours (``entries`` = [(colour, label)]) on ``where`` (an Axes or Figure)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=2.5, label=text) for c, text in entries]
    return where.legend(handles=handles, fontsize=fontsize, frameon=False, **kwargs)


def plot_kan(model, folder=None, beta: float = 3, metric: str = "backward", scale: float = 0.5,
             tick: bool = False, sample: bool = False, in_vars=None, out_vars=None, title=None,
             varscale: float = 1.0, ax=None, legend: bool = True, modules: bool = False,
             module_threshold: float = 0.1):
    """Draw a KAN with pykan's layout and return the Figure.

    Edge (l, i, j) is drawn with alpha ``tanh(beta * score[l][j, i])`` times its mask, where score is
    ``edge_scores`` after ``attribute()`` (metric 'backward'), ``acts_scale`` ('forward_n') or
    ``edge_actscale`` ('forward_u'). Its curve phi(x) on the cached data is drawn in a box on the
    edge; the boxes of a layer's visible edges sit in one row, at least MIN_INSET_PT points wide
    (the figure grows, ``kan_figsize``). Drawn into a given ``ax`` with less than MIN_CURVE_PT per
    box, edges are straight lines without curves. Edges fainter than MIN_ALPHA are not drawn.

    Inputs are labelled ``in_vars`` (default x_1.. by original input index; after ``prune_input``
    one name per remaining input or one per original input column), outputs ``out_vars`` (default
    y_1..); ``$...$`` is set as math text. ``legend`` adds a colour bar of opacity against score.
    ``modules=True`` colours the edges of each module of ``find_modules(module_threshold)`` (a
    first-layer module its own colour, an upper module that joins several pink; weak edges between
    modules stay black) and, with ``legend``, adds a key of the module colours. With ``ax`` given,
    draws into it (figure size untouched). Writes ``{folder}/kan.png`` only when ``folder`` is given.

    ``fig.kanswap_edges`` lists every edge as a dict {layer, i, j, alpha, score, masked, colour}
    (masked edges have alpha 0 and no curve). The figure stays open and current, as pykan's; in
    Jupyter a cell ending in ``model.plot()`` shows it once (``kanswap.display``).
    """
    import matplotlib.lines as mlines
    from matplotlib.collections import LineCollection

    scores = _kan_prepare(model, metric)
    in_names, out_names = node_names(model, in_vars, out_vars)
    L = model.depth
    width = [list(w) for w in model.width]
    width_in, width_out = list(model.width_in), list(model.width_out)
    h = _Y0 + _Z0
    max_weights = max(width_in[l] * width_out[l + 1] for l in range(L))
    y2 = 0.15 / max(max(width_out), 5)
    min_spacing = 1 / max(max(width_out), 5)

    # Only edges that print get a box, so the row of boxes is as long as the visible edges need
    # (the fitted reference KAN: 13 of 200 edges visible, so 5 in wide instead of 24 in).
    drawn = []
    for l in range(L):
        n_next, n = np.shape(scores[l])
        shown = np.array([[_edge_colour(model, l, i, j)[1] > 0 for i in range(n)] for j in range(n_next)])
        drawn.append(shown.reshape(n_next, n) & (np.tanh(beta * scores[l]) >= MIN_ALPHA))
    n_drawn = [max(int(d.sum()), 1) for d in drawn]
    own_figure = ax is None
    fig, ax = _figure_and_axes(ax, kan_figsize(model, scale, n_drawn), title)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.1 * h, (L + 0.1) * h)
    ax.axis("off")
    smax = max(float(np.max(s)) if np.size(s) else 0.0 for s in scores)
    if title is not None:
        ax.set_title(_label(title), fontsize=_FONT + 2, pad=_TITLE_PAD)
    module_colour, module_key = _module_colours(model, L, module_threshold, in_names) if modules else ({}, [])
    if legend:
        label = {"backward": "edge score", "forward_n": "edge scale (normalised)",
                 "forward_u": "edge scale"}[metric]
        _colourbar(fig, ax, _alpha_cmap(None, "black", beta, max(smax, 1e-12)), 0.0, max(smax, 1e-12),
                   f"{label}; opacity = tanh({beta:g} × score)" + ("; colour: module (key)" if modules else ""))
        if module_key:
            _module_legend(ax, module_key, _FONT - 1, loc="center left", bbox_to_anchor=(1.0, 0.5))

    ax_w, ax_h = _axes_inches(ax)
    pt_per_x = ax_w * 72  # points per data unit along x
    py_pt = ax_h * 72 / ((L + 0.2) * h)  # points per data unit along y
    pykan_pt = 2 * (0.4 / max(max_weights, 5)) * pt_per_x  # pykan's inset size
    rows, size_pt = _layer_geometry(n_drawn, pt_per_x, py_pt, max(MIN_INSET_PT, pykan_pt))
    draw_curves = size_pt >= MIN_CURVE_PT
    half_x, half_y = size_pt / 2 / pt_per_x, size_pt / 2 / py_pt
    # pykan draws each curve with lw 5 in a 2-inch (144 pt) thumbnail, then shrinks it to the inset.
    shrink = size_pt / 144
    curve_lw = max(5 * shrink, 0.6)
    tick_fs = max(50 * shrink, 4.0)
    sample_size = max(400 * scale ** 2 * shrink ** 2, 0.5)

    # nodes
    for l in range(L + 1):
        n = width_in[l]
        ax.scatter((np.arange(n) + 0.5) / n, np.full(n, l * h), s=min_spacing ** 2 * 10000 * scale ** 2,
                   color="black", zorder=1)

    edges, segs, colours = [], [], []
    curves, boxes, curve_colours, points, point_colours = [], [], [], [], []
    joins = []
    for l in range(L):
        n, n_next = width_in[l], width_out[l + 1]
        N = n_drawn[l]
        slot = np.cumsum(drawn[l].T.reshape(-1)) - 1  # box position of edge e = i * n_next + j among drawn ones
        alpha = np.tanh(beta * scores[l])
        x, phi = model.edge_activations(l)
        x, phi = _np(x), _np(phi)
        base = l * h
        node_of = {sub: node for node, group in enumerate(model.subnode_groups(l + 1)) for sub in group}
        for i in range(n):
            order = np.argsort(x[:, i], kind="stable")
            xs = x[order, i]
            for j in range(n_next):
                colour, mask_alpha = _edge_colour(model, l, i, j)
                colour = module_colour.get((l, i, node_of[j]), colour) if mask_alpha else colour
                a = float(alpha[j][i]) * mask_alpha
                e = int(slot[i * n_next + j])
                x_s = 1.05 * half_x + (e + 0.5) / N * (1 - 2.1 * half_x)  # every box wholly inside the axes
                y_s = base + _Y0 / 2 + ((e % rows[l]) - (rows[l] - 1) / 2) * 2 * half_y * _GAP
                edges.append({"layer": l, "i": i, "j": j, "alpha": a, "score": float(scores[l][j][i]),
                              "masked": mask_alpha == 0.0, "colour": colour})
                if mask_alpha == 0.0:
                    continue
                ys = phi[order, j, i]
                edges[-1]["curve"] = (xs, ys)
                if a < MIN_ALPHA:
                    continue
                rgba = (*_rgb(colour), a)
                start, end = ((i + 0.5) / n, base), ((j + 0.5) / n_next, base + _Y0)
                if not draw_curves:
                    segs.append([start, end])
                    colours.append(rgba)
                    continue
                segs.append([start, (x_s, y_s - half_y)])
                segs.append([(x_s, y_s + half_y), end])
                colours += [rgba, rgba]
                box = [x_s - half_x, y_s - half_y, 2 * half_x, 2 * half_y]
                curve = _curve_in_box(box, xs, ys)
                curves.append(curve)
                boxes.append(_box_outline(box))
                curve_colours.append(rgba)
                if sample:
                    points.append(curve)
                    point_colours += [rgba] * len(curve)
                if tick and len(xs):
                    for text, (tx, ty), ha, va in (
                            (f"{xs.min():.2g}", (box[0], box[1]), "left", "top"),
                            (f"{xs.max():.2g}", (box[0] + box[2], box[1]), "right", "top"),
                            (f"{ys.min():.2g}", (box[0], box[1]), "right", "bottom"),
                            (f"{ys.max():.2g}", (box[0], box[1] + box[3]), "right", "top")):
                        ax.text(tx, ty, text, ha=ha, va=va, fontsize=tick_fs, color=colour, alpha=a, zorder=5)
        # subnodes -> nodes of layer l+1 (mult subnodes join their mult node)
        n_node = width_in[l + 1]
        for node, group in enumerate(model.subnode_groups(l + 1)):
            for sub in group:
                joins.append([((sub + 0.5) / n_next, base + _Y0), ((node + 0.5) / n_node, (l + 1) * h)])
    if segs:
        ax.add_collection(LineCollection(segs, colors=colours, linewidths=max(2 * scale, 0.6), zorder=2))
    if joins:
        ax.add_collection(LineCollection(joins, colors="black", linewidths=max(2 * scale, 0.6), zorder=2))
    if curves:  # the edge curves, each in its box (a white face, as opaque as the edge, hides lines behind)
        from matplotlib.collections import PolyCollection

        faces = [(1.0, 1.0, 1.0, rgba[3]) for rgba in curve_colours]
        ax.add_collection(PolyCollection(boxes, facecolors=faces, edgecolors=curve_colours, linewidths=0.5,
                                         zorder=3))
        curve_set = LineCollection(curves, colors=curve_colours, linewidths=curve_lw, zorder=4)
        curve_set.kanswap_role = "edge curves"
        ax.add_collection(curve_set)
    if points:
        ax.scatter(*np.concatenate(points).T, s=sample_size, c=point_colours, zorder=4, linewidths=0)

    # sum symbols on every subnode, mult symbols on every mult node
    # pykan's diameter grows with the figure's width: capped at 12 pt (a 24-in wide figure drew 50 pt)
    diam = min(2 * y2 * pt_per_x, 12.0)
    for l in range(L):
        n_next = width_out[l + 1]
        xs = (np.arange(n_next) + 0.5) / n_next
        _symbols(ax, xs, l * h + _Y0, diam, "+", mlines)
        n_sum, n_mult = width[l + 1]
        if n_mult:
            n_node = width_in[l + 1]
            xs = (np.arange(n_sum, n_sum + n_mult) + 0.5) / n_node
            _symbols(ax, xs, (l + 1) * h, diam, "x", mlines)

    _node_labels(ax, in_names, width_in[0], 0.0, "below", varscale)
    _node_labels(ax, out_names, width_in[-1], h * L, "above", varscale)

    fig.kanswap_edges = edges
    fig.kanswap_module_key = module_key
    _save(fig, folder, "kan.png")
    if own_figure:
        hand_over(fig)
    return fig


def _node_labels(ax, names, n: int, y: float, where: str, varscale: float) -> None:
    """Label n nodes at height y, a few points below or above their markers."""
    if len(names) != n:
        raise ValueError(f"got {len(names)} variable names for {n} nodes")
    dy, va = (-7, "top") if where == "below" else (7, "bottom")
    for i in range(n):
        ax.annotate(_label(names[i]), xy=((i + 0.5) / n, y), xytext=(0, dy), textcoords="offset points",
                    ha="center", va=va, fontsize=_FONT * varscale, annotation_clip=False)


def _rgb(colour: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return to_rgb(colour)


def _symbols(ax, xs, y, diam: float, marker: str, mlines) -> None:
    """A white circle with a '+' (sum) or 'x' (mult) of diameter diam points at each (x, y)."""
    ys = np.full(len(xs), y)
    ax.add_line(mlines.Line2D(xs, ys, ls="none", marker="o", markersize=diam, markerfacecolor="white",
                              markeredgecolor="black", markeredgewidth=max(diam / 12, 0.5), zorder=3))
    ax.add_line(mlines.Line2D(xs, ys, ls="none", marker=marker, markersize=diam * 0.6, color="black",
                              markeredgewidth=max(diam / 10, 0.5), zorder=4))


# ------------------------------------------------------------------------------------------------
# MLP
# ------------------------------------------------------------------------------------------------
def _mlp_values(model, metric: str) -> list[np.ndarray]:
    if metric not in MLP_METRICS:
        allowed = ", ".join(map(repr, MLP_METRICS))
        raise ValueError(f"metric = {metric!r} not recognized; choose one of {allowed}")
    if metric == "w":
        return [_np(lin.weight) for lin in model.linears]
    if getattr(model, "acts", None) is None or not getattr(model, "wa_forward", None):
        if getattr(model, "cache_data", None) is None:
            raise ValueError(_NO_DATA)
        model.get_act()
    if metric == "fa":
        model.attribute()
        return [_np(p) for p in model.wa_backward]
    return [_np(p) for p in model.wa_forward]


def mlp_figsize(model, scale: float = 1.0) -> tuple[float, float]:
    """(width, height) in inches of ``plot_mlp``'s figure: pykan's (3 scale, 1.5 scale depth) axes
    plus margins for labels, title and colour bar."""
    depth = len(model.width) - 1
    return 3 * scale / (1 - 2 * _SIDE), 1.5 * depth * scale / (1 - _CBAR) + _MARGIN_BOTTOM + _MARGIN_TOP


def plot_mlp(model, beta: float = 3, scale: float = 1.0, metric: str = "w", folder=None, ax=None,
             in_vars=None, out_vars=None, title=None, legend: bool = True, modules: bool = False,
             module_threshold: float = 0.1):
    """Draw an MLP with pykan's layout and return the Figure.

    Each weight is a line between its nodes with alpha ``tanh(beta * |p|)``; blue for p > 0, red for
    p < 0 and grey for p == 0 (pykan draws zero red). p is the weight ('w'), ``wa_forward`` ('act')
    or ``wa_backward`` after ``attribute()`` ('fa'). Inputs are labelled ``in_vars`` (default
    x_1..), outputs ``out_vars`` (default y_1..); ``legend`` adds a colour bar of colour and opacity
    against p. ``modules=True`` colours each module of ``find_modules(module_threshold)``'s weights
    (first-layer modules their own colours, upper modules joining several pink, with a key; the
    sign is then not shown, weak weights between modules stay grey). Weights fainter than MIN_ALPHA
    are not drawn; in Jupyter a cell ending in ``plot`` shows the figure once. Writes
    ``{folder}/mlp.png`` only when ``folder`` is given. ``fig.kanswap_edges`` lists {layer, i
    (output), j (input), alpha, value, colour}.
    """
    from matplotlib.collections import LineCollection

    values = _mlp_values(model, metric)
    width = [int(w) for w in model.width]
    depth = len(width) - 1
    y0 = 0.5
    in_names = _default_vars(width[0], "x") if in_vars is None else list(in_vars)
    out_names = _default_vars(width[-1], "y") if out_vars is None else list(out_vars)
    for kind, names, n in (("in_vars", in_names, width[0]), ("out_vars", out_names, width[-1])):
        if len(names) != n:
            raise ValueError(f"got {len(names)} names in {kind} for the model's {n} "
                             f"{'inputs' if kind == 'in_vars' else 'outputs'}")
    own_figure = ax is None
    fig, ax = _figure_and_axes(ax, mlp_figsize(model, scale), title)
    module_colour, module_key = (_module_colours(model, depth, module_threshold, in_names) if modules
                                 else ({}, []))
    vmax = max(float(np.abs(p).max()) if p.size else 0.0 for p in values)
    if legend:
        name, sym = {"w": ("weight", "w"), "act": ("weight × input std", "p"),
                     "fa": ("attribution score", "p")}[metric]
        top = max(vmax, 1e-12)
        if modules:
            _colourbar(fig, ax, _alpha_cmap(None, "black", beta, top), 0.0, top,
                       f"|{name}|, colour: module; opacity = tanh({beta:g}|{sym}|)")
        else:
            _colourbar(fig, ax, _alpha_cmap("red", "blue", beta, top), -top, top,
                       f"{name} {sym}: blue > 0, red < 0; opacity = tanh({beta:g}|{sym}|)")
        if module_key:
            _module_legend(ax, module_key, _FONT - 1, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title is not None:
        ax.set_title(_label(title), fontsize=_FONT + 2, pad=_TITLE_PAD)
    min_spacing = 1 / max(width)
    for l, n in enumerate(width):
        ax.scatter((np.arange(n) + 0.5) / n, np.full(n, l * y0), s=min_spacing ** 2 * 5000 * scale ** 2,
                   color="black", zorder=1)
    ax.set_ylim(-0.1 * y0, y0 * depth + 0.1 * y0)
    ax.set_xlim(-0.02, 1.02)

    edges, segs, colours = [], [], []
    for l, p in enumerate(values):
        n_out, n_in = p.shape
        for i in range(n_out):
            for j in range(n_in):
                v = float(p[i, j])
                if modules:
                    colour = module_colour.get((l, j, i), "grey")
                else:
                    colour = "blue" if v > 0 else "red" if v < 0 else "grey"
                a = float(np.tanh(beta * abs(v)))
                edges.append({"layer": l, "i": i, "j": j, "alpha": a, "value": v, "colour": colour})
                if a < MIN_ALPHA:  # prints as nothing
                    continue
                segs.append([((i + 0.5) / n_out, y0 * (l + 1)), ((j + 0.5) / n_in, y0 * l)])
                colours.append((*_rgb(colour), a))
    if segs:
        ax.add_collection(LineCollection(segs, colors=colours, linewidths=max(0.5 * scale, 0.5), zorder=2))
    ax.axis("off")
    _node_labels(ax, in_names, width[0], 0.0, "below", 1.0)
    _node_labels(ax, out_names, width[-1], y0 * depth, "above", 1.0)
    fig.kanswap_edges = edges
    fig.kanswap_module_key = module_key
    _save(fig, folder, "mlp.png")
    if own_figure:
        hand_over(fig)
    return fig


# ------------------------------------------------------------------------------------------------
# several models in one picture
# ------------------------------------------------------------------------------------------------
def _is_kan(obj) -> bool:
    return hasattr(obj, "act_fun") and hasattr(obj, "subnode_groups")


# A two-column paper's text width, and the font size there: journals ask for >= 7 pt in print.
SUMMARY_WIDTH, SUMMARY_FONT = 7.0, 8.0
_PANEL_TOP, _PANEL_BOTTOM = 0.45, 0.3  # inches above a panel (title) and below it (input labels)


def _panel_height(obj, ax_w: float) -> float:
    """Axes height in inches of a summary panel ax_w inches wide: 0.27 ax_w per layer of edges (a
    [9, 10, 10, 1] KAN at 3.3 in: 2.9 in), 1.5 in for a message."""
    if isinstance(obj, str):
        return 1.5
    layers = obj.depth if _is_kan(obj) else len(obj.width) - 1
    return 0.27 * ax_w * (layers + 0.2)


def _shared_key(panels, beta_kan: float, beta_mlp: float) -> list:
    """Legend handles explaining every panel's colours: KAN edges, MLP signs, module colours."""
    from matplotlib.lines import Line2D

    handles, seen = [], set()

    def add(colour, label):
        if (str(colour), label) not in seen:
            seen.add((str(colour), label))
            handles.append(Line2D([], [], color=colour, lw=2.5, label=label))

    kinds = {kind for kind, _, _ in panels}
    if "kan" in kinds:
        add("black", f"KAN edge, opacity tanh({beta_kan:g} × score)")
    if "mlp" in kinds:
        add("blue", f"MLP weight > 0, opacity tanh({beta_mlp:g}|w|)")
        add("red", "MLP weight < 0")
    if "mlp-modules" in kinds:
        add("grey", f"MLP weight outside modules, opacity tanh({beta_mlp:g}|w|)")
    for _, _, key in panels:
        for colour, label in key:
            add(colour, label)
    return handles


def plot_summary(models, titles=None, path=None, width: float = SUMMARY_WIDTH, ncols: int | None = None,
                 dpi: int = 200, kan_kwargs=None, mlp_kwargs=None):
    """Draw several KANs / MLPs as panels of one Figure ``width`` inches wide (default 7 in, a
    two-column paper's text width, all text >= 7 pt at that size), ``ncols`` panels a row (default
    2), with one shared key under the panels (edge opacity, MLP signs, module colours) instead of a
    colour bar per panel; vector graphics when saved as PDF or SVG. ``path``: also save it there
    (format from the extension, ``dpi`` for bitmaps, parent folders created; saved at its size,
    not cropped). Each item is a model drawn with ``plot_kan`` / ``plot_mlp`` (extra options via
    kan_kwargs / mlp_kwargs) or a str, shown as a message. Panels of a row share their title line.
    At this width a layer with many edges leaves no room for curve boxes (see ``MIN_CURVE_PT``): its
    edges are straight lines. Returns the Figure (shown once in Jupyter, ``kanswap.display``)."""
    import matplotlib.pyplot as plt

    items = list(models)
    if not items:
        raise ValueError("plot_summary needs at least one model")
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"got {len(titles)} titles for {len(items)} panels")
    for obj in items:
        if not (isinstance(obj, str) or _is_kan(obj) or hasattr(obj, "linears")):
            raise TypeError(f"plot_summary: cannot draw {type(obj).__name__} (expected a KAN, MLP or str)")
    kan_kwargs, mlp_kwargs = dict(kan_kwargs or {}), dict(mlp_kwargs or {})
    for kwargs in (kan_kwargs, mlp_kwargs):
        kwargs.pop("legend", None)  # one shared key instead
    ncols = min(len(items), 2) if ncols is None else int(ncols)
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    nrows = math.ceil(len(items) / ncols)
    col_w = width / ncols
    ax_w = col_w * 0.92
    row_h = [max(_panel_height(obj, ax_w) for obj in items[r * ncols:(r + 1) * ncols]) for r in range(nrows)]
    key_h = 0.75
    height = sum(row_h) + nrows * (_PANEL_TOP + _PANEL_BOTTOM) + key_h
    fig = new_figure(figsize=(width, height))
    panels = []
    y = height
    for k, obj in enumerate(items):
        r, c = divmod(k, ncols)
        if c == 0:
            y -= _PANEL_TOP + row_h[r]
        ax = fig.add_axes([(c * col_w + (col_w - ax_w) / 2) / width, y / height, ax_w / width, row_h[r] / height])
        title = None if titles is None else titles[k]
        if isinstance(obj, str):
            ax.text(0.5, 0.5, obj, ha="center", va="center", wrap=True, fontsize=SUMMARY_FONT)
            ax.axis("off")
            if title is not None:
                ax.set_title(_label(title), fontsize=_FONT + 2, pad=_TITLE_PAD)
        elif _is_kan(obj):
            plot_kan(obj, ax=ax, title=title, legend=False, **{"scale": ax_w / 10, **kan_kwargs})
            panels.append(("kan", ax, fig.kanswap_module_key))
        else:
            plot_mlp(obj, ax=ax, title=title, legend=False, **{"scale": ax_w / 3.0, **mlp_kwargs})
            panels.append(("mlp-modules" if mlp_kwargs.get("modules") else "mlp", ax, fig.kanswap_module_key))
        for text in ax.texts:  # the panels' labels at the summary's print size
            text.set_fontsize(SUMMARY_FONT)
        ax.title.set_fontsize(SUMMARY_FONT + 1)
        if c == ncols - 1 or k == len(items) - 1:
            y -= _PANEL_BOTTOM
    handles = _shared_key(panels, kan_kwargs.get("beta", 3), mlp_kwargs.get("beta", 3))
    if handles:
        key = fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), fontsize=SUMMARY_FONT,
                         frameon=False, bbox_to_anchor=(0.5, 0.0), handlelength=1.8, columnspacing=1.5)
        key.kanswap_role = "shared key"
    fig.kanswap_edges = None  # per-panel lists live on the panels' drawings, not on the summary
    plt.figure(fig.number)
    if path is not None:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    hand_over(fig)
    return fig
