"""Network diagrams for KAN and MLP models (pykan 0.2.8's ``plot`` layouts, BEHAVIOR.md §11-§12).

Unlike pykan, nothing is written to disk unless ``folder`` is given: each edge's activation curve is
drawn as an inset axes of the same figure (pykan saves one PNG per edge and reads it back), and the
sum / mult symbols are drawn with matplotlib markers instead of image assets. Every function returns
the matplotlib Figure, which is also left as the current pyplot figure (so ``plt.savefig`` works as
after pykan's ``model.plot()``). ``plt.show`` is never called and no backend is forced.
"""

from __future__ import annotations

import os

import numpy as np
import torch

KAN_METRICS = ("backward", "forward_n", "forward_u")
MLP_METRICS = ("w", "act", "fa")

# pykan's layout constants: node layer -> subnodes height, subnodes -> next node layer height.
_Y0, _Z0 = 0.3, 0.1
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


def _new_axes(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
        if fig.canvas.manager is not None:
            plt.figure(fig.number)  # make it current, as pykan's plot leaves its figure
    return fig, ax


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


def _draw_inset(ax, bounds, x, y, colour, alpha, lw, fontsize, tick, sample, sample_size):
    inset = ax.inset_axes(bounds, transform=ax.transData)
    inset.set_facecolor("none")
    inset.plot(x, y, color=colour, lw=lw, alpha=alpha)
    if sample:
        inset.scatter(x, y, color=colour, s=sample_size, alpha=alpha)
    if tick and len(x):
        x_min, x_max, y_min, y_max = float(x.min()), float(x.max()), float(y.min()), float(y.max())
        inset.set_xticks([x_min, x_max], [f"{x_min:2.0f}", f"{x_max:2.0f}"])
        inset.set_yticks([y_min, y_max], [f"{y_min:2.0f}", f"{y_max:2.0f}"])
        inset.tick_params(axis="both", direction="in", labelsize=fontsize, pad=-fontsize, length=fontsize / 3,
                          width=lw / 4)
        for lab in inset.get_xticklabels() + inset.get_yticklabels():
            lab.set_alpha(alpha)
    else:
        inset.set_xticks([])
        inset.set_yticks([])
    for spine in inset.spines.values():
        spine.set_color(colour)
        spine.set_alpha(alpha)
        spine.set_linewidth(max(lw * 0.3, 0.3))
    return inset


def plot_kan(model, folder=None, beta: float = 3, metric: str = "backward", scale: float = 0.5,
             tick: bool = False, sample: bool = False, in_vars=None, out_vars=None, title=None,
             varscale: float = 1.0, ax=None):
    """Draw a KAN with pykan's layout (BEHAVIOR.md §11) and return the Figure.

    Edge (l, i, j) is drawn with alpha ``tanh(beta * score[l][j, i])`` times its mask, where score is
    ``edge_scores`` after ``attribute()`` (metric 'backward'), ``acts_scale`` ('forward_n') or
    ``edge_actscale`` ('forward_u'); its curve phi(x) on the cached data is an inset axes (none for
    masked edges). With ``ax`` given, draws into it (figure size untouched). Writes
    ``{folder}/kan.png`` only when ``folder`` is given. ``fig.kanswap_edges`` lists every edge as a
    dict {layer, i, j, alpha, score, masked} (masked edges have alpha 0 and no inset).
    """
    import matplotlib.lines as mlines
    from matplotlib.collections import LineCollection

    scores = _kan_prepare(model, metric)
    L = model.depth
    width = [list(w) for w in model.width]
    width_in, width_out = list(model.width_in), list(model.width_out)
    h = _Y0 + _Z0
    max_weights = max(width_in[l] * width_out[l + 1] for l in range(L))
    y1 = 0.4 / max(max_weights, 5)
    y2 = 0.15 / max(max(width_out), 5)
    min_spacing = 1 / max(max(width_out), 5)

    fig, ax = _new_axes(ax, (10 * scale, 10 * scale * L * h))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.1 * h, (L + 0.1) * h)
    ax.axis("off")
    ax_w, ax_h = _axes_inches(ax)
    pt_per_x = ax_w * 72  # points per data unit along x
    box_in = 2 * y1 * ax_w  # inset width in inches
    # pykan draws each curve with lw 5 in a 2-inch thumbnail, then shrinks it to the inset box.
    shrink = box_in / 2.0
    curve_lw = max(5 * shrink, 0.4)
    tick_fs = max(50 * shrink, 3.0)
    sample_size = max(400 * scale ** 2 * shrink ** 2, 0.5)

    # nodes
    for l in range(L + 1):
        n = width_in[l]
        ax.scatter((np.arange(n) + 0.5) / n, np.full(n, l * h), s=min_spacing ** 2 * 10000 * scale ** 2,
                   color="black", zorder=1)

    edges, segs, colours = [], [], []
    joins = []
    for l in range(L):
        n, n_next = width_in[l], width_out[l + 1]
        N = n * n_next
        alpha = np.tanh(beta * scores[l])
        x, phi = model.edge_activations(l)
        x, phi = _np(x), _np(phi)
        base = l * h
        for i in range(n):
            order = np.argsort(x[:, i], kind="stable")
            xs = x[order, i]
            for j in range(n_next):
                colour, mask_alpha = _edge_colour(model, l, i, j)
                a = float(alpha[j][i]) * mask_alpha
                x_s = (i * n_next + j + 0.5) / N
                edges.append({"layer": l, "i": i, "j": j, "alpha": a, "score": float(scores[l][j][i]),
                              "masked": mask_alpha == 0.0})
                if mask_alpha == 0.0:
                    continue
                rgba = (*_rgb(colour), a)
                segs.append([((i + 0.5) / n, base), (x_s, base + _Y0 / 2 - y1)])
                segs.append([(x_s, base + _Y0 / 2 + y1), ((j + 0.5) / n_next, base + _Y0)])
                colours += [rgba, rgba]
                box = [x_s - y1, base + _Y0 / 2 - y1, 2 * y1, 2 * y1]
                _draw_inset(ax, box, xs, phi[order, j, i], colour, a, curve_lw, tick_fs, tick, sample,
                            sample_size)
        # subnodes -> nodes of layer l+1 (mult subnodes join their mult node)
        n_node = width_in[l + 1]
        for node, group in enumerate(model.subnode_groups(l + 1)):
            for sub in group:
                joins.append([((sub + 0.5) / n_next, base + _Y0), ((node + 0.5) / n_node, (l + 1) * h)])
    if segs:
        ax.add_collection(LineCollection(segs, colors=colours, linewidths=2 * scale, zorder=2))
    if joins:
        ax.add_collection(LineCollection(joins, colors="black", linewidths=2 * scale, zorder=2))

    # sum symbols on every subnode, mult symbols on every mult node
    diam = 2 * y2 * pt_per_x
    for l in range(L):
        n_next = width_out[l + 1]
        xs = (np.arange(n_next) + 0.5) / n_next
        _symbols(ax, xs, l * h + _Y0, diam, "+", mlines)
        n_sum, n_mult = width[l + 1]
        if n_mult:
            n_node = width_in[l + 1]
            xs = (np.arange(n_sum, n_sum + n_mult) + 0.5) / n_node
            _symbols(ax, xs, (l + 1) * h, diam, "x", mlines)

    if in_vars is not None:
        n = width_in[0]
        for i in range(n):
            ax.text((i + 0.5) / n, -0.1, _label(in_vars[i]), fontsize=40 * scale * varscale,
                    ha="center", va="center")
    if out_vars is not None:
        n = width_in[-1]
        for i in range(n):
            ax.text((i + 0.5) / n, h * L + 0.15, _label(out_vars[i]), fontsize=40 * scale * varscale,
                    ha="center", va="center")
    if title is not None:
        ax.text(0.5, h * L + 0.3, _label(title), fontsize=40 * scale, ha="center", va="center")

    fig.kanswap_edges = edges
    _save(fig, folder, "kan.png")
    return fig


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


def plot_mlp(model, beta: float = 3, scale: float = 1.0, metric: str = "w", folder=None, ax=None):
    """Draw an MLP with pykan's layout (BEHAVIOR.md §12) and return the Figure.

    Each weight is a line between its nodes with alpha ``tanh(beta * |p|)``; blue for p > 0, red for
    p < 0 and grey for p == 0 (pykan draws zero red). p is the weight ('w'), ``wa_forward`` ('act')
    or ``wa_backward`` after ``attribute()`` ('fa'). Writes ``{folder}/mlp.png`` only when ``folder``
    is given. ``fig.kanswap_edges`` lists {layer, i (output), j (input), alpha, value, colour}.
    """
    from matplotlib.collections import LineCollection

    values = _mlp_values(model, metric)
    width = [int(w) for w in model.width]
    depth = len(width) - 1
    y0 = 0.5
    fig, ax = _new_axes(ax, (3 * scale, 3 * y0 * depth * scale))
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
                colour = "blue" if v > 0 else "red" if v < 0 else "grey"
                a = float(np.tanh(beta * abs(v)))
                edges.append({"layer": l, "i": i, "j": j, "alpha": a, "value": v, "colour": colour})
                segs.append([((i + 0.5) / n_out, y0 * (l + 1)), ((j + 0.5) / n_in, y0 * l)])
                colours.append((*_rgb(colour), a))
    if segs:
        ax.add_collection(LineCollection(segs, colors=colours, linewidths=0.5 * scale, zorder=2))
    ax.axis("off")
    fig.kanswap_edges = edges
    _save(fig, folder, "mlp.png")
    return fig


# ------------------------------------------------------------------------------------------------
# several models in one picture
# ------------------------------------------------------------------------------------------------
def _is_kan(obj) -> bool:
    return hasattr(obj, "act_fun") and hasattr(obj, "subnode_groups")


def plot_summary(figures_or_models, titles=None, path=None, panel_width: float = 4.0, dpi: int = 150,
                 kan_kwargs=None, mlp_kwargs=None):
    """Render several KANs / MLPs (or existing Figures) side by side into one Figure and, when
    ``path`` is given, save it there as a PNG (parent folders are created). Models are drawn with
    ``plot_kan`` / ``plot_mlp`` into their own panel (extra options via kan_kwargs / mlp_kwargs);
    Figures are rasterised into theirs. Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    items = list(figures_or_models)
    if not items:
        raise ValueError("plot_summary needs at least one model or figure")
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"got {len(titles)} titles for {len(items)} panels")
    kan_kwargs, mlp_kwargs = dict(kan_kwargs or {}), dict(mlp_kwargs or {})

    aspects = []
    for obj in items:
        if isinstance(obj, Figure):
            w, h = obj.get_size_inches()
            aspects.append(h / w)
        elif _is_kan(obj):
            aspects.append((obj.depth + 0.2) * (_Y0 + _Z0))
        elif hasattr(obj, "linears"):
            aspects.append(0.5 * (len(obj.width) - 1) + 0.1)
        else:
            raise TypeError(f"plot_summary: cannot draw {type(obj).__name__} (expected a KAN, MLP or Figure)")
    height = panel_width * max(aspects) + 0.8
    fig, axes = plt.subplots(1, len(items), figsize=(panel_width * len(items), height), squeeze=False)
    axes = axes[0]
    for k, (obj, ax, aspect) in enumerate(zip(items, axes, aspects, strict=True)):
        ax.set_box_aspect(aspect)
        if isinstance(obj, Figure):
            obj.canvas.draw()
            ax.imshow(np.asarray(obj.canvas.buffer_rgba()))
            ax.axis("off")
        elif _is_kan(obj):
            # pykan's scale is the figure width / 10 (axes ~ 0.775 of it); match this panel's width.
            kw = {"scale": panel_width * 0.8 / 7.75, **kan_kwargs}
            plot_kan(obj, ax=ax, **kw)
        else:
            kw = {"scale": panel_width / 3.0, **mlp_kwargs}
            plot_mlp(obj, ax=ax, **kw)
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=12)
    plt.figure(fig.number)
    if path is not None:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig
