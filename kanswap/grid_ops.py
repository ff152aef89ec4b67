"""Grid refinement: pykan's ``refine``, ``initialize_from_another_model`` and
``initialize_grid_from_another_model``, with splines that keep the model's function.

A layer's new grid interpolates the parent's interior knots piecewise-linearly in knot index (as
pykan's ``initialize_grid_from_parent``), so a sample-adapted grid stays adapted, and is extended
by k knots each side; where the layer's inputs leave the parent's interior, the interior is widened
to them (pykan's is not). Coefficients are the least-squares fit of the parent's spline part on
the layer's inputs over the data plus ``4 (G + k)`` evenly spaced points across the new interior
(every basis function then has samples, so the solve is full rank; the data still dominate: 1000
rows against 52 points for G = 10, k = 3).

pykan's refine changes the output of a [2,5,1] grid-3 KAN fitted for 5 steps by 24-55% (relative
L2, ``tests/test_api_grid.py``): after grid updates stop, hidden values drift outside the hidden
layer's grid (to -1.08 on an interior of [-0.31, 0.13]); the old spline still covers them with
its wide extension knots, pykan's finer grid, on the same interior, cannot. kanswap's refine stays
within 1e-2 (measured 1.2e-3).
pykan's refined model also shares the storage of scale_base, scale_sp, mask, the affine values and
the symbolic layers with the original, so fitting one changes the other; kanswap's copies them.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from .spline import coef_to_curve, curve_to_coef, extend_grid

__all__ = ["refined_grid", "initialize_grid_from_another_model", "initialize_from_another_model", "refine"]


def refined_grid(grid: torch.Tensor, k: int, num: int, k_new: int | None = None,
                 x: torch.Tensor | None = None) -> torch.Tensor:
    """Extended grid (n, num + 2 k_new + 1) whose num + 1 interior knots interpolate the interior
    knots of ``grid`` (n, G + 2k + 1) piecewise-linearly at evenly spaced fractional knot indices.

    With samples x (B, n), an input whose samples leave the interior has its interior widened to
    them (within the old extended grid, where the old spline can be non-zero), taking the old knots
    in between: a narrower new grid could not follow the old spline there (on a [2,5,1] KAN after
    5 fit steps, hidden values reach -1.08 on an interior of [-0.31, 0.13]).
    """
    if not isinstance(num, int) or isinstance(num, bool) or num < 1:
        raise ValueError(f"new grid size must be an integer >= 1, got {num!r}")
    P = grid.shape[1]
    rows = []
    for i in range(grid.shape[0]):
        knots = grid[i, k:P - k]
        if x is not None and x.shape[0] > 0:
            lo = torch.minimum(knots[0], x[:, i].min()).clamp(min=grid[i, 0])
            hi = torch.maximum(knots[-1], x[:, i].max()).clamp(max=grid[i, -1])
            inside = grid[i][(grid[i] > lo) & (grid[i] < hi)]
            knots = torch.cat([lo.reshape(1), inside, hi.reshape(1)])
        G = knots.shape[0] - 1
        t = torch.linspace(0, G, num + 1, dtype=torch.float64, device=grid.device)
        low = t.floor().long().clamp(max=G - 1)
        frac = (t - low).to(grid.dtype)
        rows.append(knots[low] * (1 - frac) + knots[low + 1] * frac)
    return extend_grid(torch.stack(rows), k if k_new is None else k_new)


def _fit_points(x: torch.Tensor, grid: torch.Tensor, k: int) -> torch.Tensor:
    """x (B, n) plus 4 (G + k) evenly spaced points per input over the grid's interior: (B + M, n)."""
    G = grid.shape[1] - 2 * k - 1
    lo, hi = grid[:, k], grid[:, grid.shape[1] - 1 - k]
    s = torch.linspace(0, 1, 4 * (G + k), dtype=x.dtype, device=x.device)
    even = lo[None, :] + s[:, None] * (hi - lo)[None, :]
    return torch.cat([x, even], dim=0)


@torch.no_grad()
def _refit_layer(layer, parent, x: torch.Tensor) -> None:
    """Give ``layer`` a grid refined from ``parent``'s and the coefficients whose splines best match
    parent's on x (B, in) and across the new grid; scales and mask are parent's."""
    layer.grid.data = refined_grid(parent.grid.data, parent.k, layer.num, layer.k, x)
    pts = _fit_points(x, layer.grid.data, layer.k)
    y = coef_to_curve(pts, parent.grid.data, parent.coef.data, parent.k)
    layer.coef.data = curve_to_coef(pts, y, layer.grid.data, layer.k)
    layer._feat_cache = None


def _check_pair(model, parent) -> None:
    if [list(w) for w in model.width] != [list(w) for w in parent.width]:
        raise ValueError(f"models must have the same width, got {model.width} and {parent.width}")


def _parent_acts(parent, x) -> list[torch.Tensor]:
    if x is None:
        raise ValueError("x is required: the parent model has not seen any data")
    parent.get_act(x)
    return parent.acts


def initialize_grid_from_another_model(model, parent, x: torch.Tensor) -> None:
    """Refine model's grids from parent's (same width), fitting the splines to parent's on x's
    activations. Changes model in place; parent only records the forward on x."""
    _check_pair(model, parent)
    acts = _parent_acts(parent, x)
    for l in range(model.depth):
        _refit_layer(model.act_fun[l], parent.act_fun[l], acts[l])
    model._reset_records()


def initialize_from_another_model(model, parent, x: torch.Tensor):
    """Make model (same width, any grid size) compute parent's function: refined grids and fitted
    splines, parent's scales, masks, affine values and input selection. Returns model."""
    initialize_grid_from_another_model(model, parent, x)
    with torch.no_grad():
        for l in range(model.depth):
            for name in ("scale_base", "scale_sp", "mask"):
                getattr(model.act_fun[l], name).data = getattr(parent.act_fun[l], name).data.clone()
            model.symbolic_fun[l].mask.data = parent.symbolic_fun[l].mask.data.clone()
            model.symbolic_fun[l].affine.data = parent.symbolic_fun[l].affine.data.clone()
            for name in ("node_bias", "node_scale", "subnode_bias", "subnode_scale"):
                model._affine(name, l).data = parent._affine(name, l).data.clone()
    model.input_id = parent.input_id.clone()
    model.n_inputs = parent.n_inputs
    return model


def refine(model, new_grid: int):
    """pykan's refine: a new model with ``new_grid`` intervals per spline computing the same
    function on the cached data (least squares on the finer grid). The caller is not changed; the
    new model is logged as the next version ``refine``."""
    if model.cache_data is None:
        raise ValueError("refine needs data: run the model on data (or fit it) first")
    config = dict(model.config(), grid=new_grid, first_init=False)
    # KAN() seeds the global RNGs; refining must not (pykan's reseeds them to its default seed 1).
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        new = type(model)(**config, device=model.device)
    np.random.set_state(np_state)
    random.setstate(py_state)
    new.to(model.act_fun[0].coef.dtype)
    initialize_from_another_model(new, model, model.cache_data)
    new.cache_data = model.cache_data
    new._versions = model.__dict__.get("_versions")
    new.log_history("refine")
    return new
