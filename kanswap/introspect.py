"""Looking into a KAN: pykan's get_fun, get_range, evaluate, speed, get_params,
feature_interaction, plus the two helpers pykan keeps inside other methods (score2alpha from
plot, get_coordinate from connection_cost).

pykan reads ``spline_preacts``/``spline_postacts`` (B, out, in) recorded by its forward; kanswap
never records those tensors and evaluates only the one edge asked for, on the inputs the last
forward recorded (``acts``), which gives the same numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from .functional import BASE_FUNS
from .spline import coef_to_curve

__all__ = ["edge_samples", "get_fun", "get_range", "evaluate", "speed", "feature_interaction", "score2alpha",
           "get_coordinate"]


def edge_samples(model, l: int, i: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs x (B,) and outputs phi (B,) of edge (l, i, j) on the last recorded forward (the
    cached data's forward if none is recorded)."""
    if not isinstance(l, (int, np.integer)) or not 0 <= l < model.depth:
        raise ValueError(f"layer l must be in 0..{model.depth - 1}, got {l!r}")
    layer = model.act_fun[l]
    if not 0 <= i < layer.in_dim or not 0 <= j < layer.out_dim:
        raise ValueError(f"edge ({i}, {j}) out of range for layer {l} with {layer.in_dim} inputs and "
                         f"{layer.out_dim} outputs")
    if model.acts is None:
        model.get_act()
    x = model.acts[l][:, i:i + 1]
    with torch.no_grad():
        spline = coef_to_curve(x, layer.grid[i:i + 1], layer.coef[i:i + 1, j:j + 1], layer.k)[:, 0, 0]
        fun = BASE_FUNS[layer.base_fun][0] if isinstance(layer.base_fun, str) else layer.base_fun
        phi = layer.mask[i, j] * (layer.scale_base[i, j] * fun(x[:, 0]) + layer.scale_sp[i, j] * spline)
    return x[:, 0].detach(), phi


def get_fun(model, l: int, i: int, j: int, plot: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Sorted inputs and outputs (numpy, (B,)) of edge (l, i, j); plots them as pykan does."""
    x, y = edge_samples(model, l, i, j)
    x, y = x.cpu().numpy(), y.cpu().numpy()
    rank = np.argsort(x)
    x, y = x[rank], y[rank]
    if plot:
        import matplotlib.pyplot as plt

        plt.figure(figsize=(3, 3))
        plt.plot(x, y, marker="o")
    return x, y


def get_range(model, l: int, i: int, j: int, verbose: bool = True):
    """(x_min, x_max, y_min, y_max) of edge (l, i, j) on the last recorded forward, as numpy scalars."""
    x, y = edge_samples(model, l, i, j)
    x_min, x_max = x.min().cpu().numpy(), x.max().cpu().numpy()
    y_min, y_max = y.min().cpu().numpy(), y.max().cpu().numpy()
    if verbose:
        print("x range: [" + f"{x_min:.2f}", ",", f"{x_max:.2f}", "]")
        print("y range: [" + f"{y_min:.2f}", ",", f"{y_max:.2f}", "]")
    return x_min, x_max, y_min, y_max


def evaluate(model, dataset: dict) -> dict:
    """pykan's evaluate: test RMSE, number of active edges and the grid size."""
    for key in ("test_input", "test_label"):
        if key not in dataset:
            raise KeyError(f"dataset has no {key!r}; evaluate needs test_input and test_label")
    with torch.no_grad():
        err = model(dataset["test_input"]) - dataset["test_label"]
    return {"test_loss": torch.sqrt(torch.mean(err ** 2)).item(), "n_edge": model.n_edge, "n_grid": model.grid}


def speed(model, compile: bool = False):
    """Switch off recording (and symbolic, auto_save); return the model, or torch.compile of it."""
    model.symbolic_enabled = False
    model.save_act = False
    model.auto_save = False
    return torch.compile(model) if compile else model


def feature_interaction(model, l: int, neuron_th: float = 1e-2, feature_th: float = 1e-2) -> dict:
    """For each node of node layer l whose largest attribution to the inputs exceeds neuron_th, the
    tuple of inputs scoring above feature_th times that largest; returns {tuple: count}."""
    if not isinstance(l, (int, np.integer)) or not 1 <= l <= model.depth:
        raise ValueError(f"feature_interaction: layer l must be in 1..{model.depth}, got {l!r}")
    scores = model.attribute(l).detach()  # (width_in[l], n_0), one pass for all nodes
    found: dict[tuple, int] = {}
    for row in scores:
        top = row.max()
        if top > neuron_th:
            features = tuple(int(v) for v in torch.where(row > top * feature_th)[0].tolist())
            found[features] = found.get(features, 0) + 1
    return found


def score2alpha(score, beta: float = 3.0):
    """The plot's edge alpha: tanh(beta * score), for a tensor or an array (same type back)."""
    if isinstance(score, torch.Tensor):
        return torch.tanh(beta * score)
    return np.tanh(beta * np.asarray(score))


def get_coordinate(n: int, device=None) -> torch.Tensor:
    """Positions (n,) of n nodes on [0, 1] used by connection_cost: (i + 1/2) / n."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return torch.linspace(0, 1, steps=n + 1, device=device)[:n] + 1 / (2 * n)
