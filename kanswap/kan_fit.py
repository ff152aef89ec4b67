"""``KAN.fit``: pykan's fit arguments turned into the shared training loop's callbacks (grid
updates on pykan's schedule, the regularisation with attribution for the backward metrics, frame
saving) and the fast objective (compiled on CPU where built, else the hand-written PyTorch one).

An operation on a model: it takes the KAN and never imports the class.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from .fit import fit as run_fit
from .kan_objective_fused import kan_objective
from .regularization import REG_METRICS

__all__ = ["fit_kan"]


def fit_kan(model, dataset: dict, *, opt: str = "LBFGS", steps: int = 100, log: int = 1, lamb: float = 0.0,
            lamb_l1: float = 1.0, lamb_entropy: float = 2.0, lamb_coef: float = 0.0, lamb_coefdiff: float = 0.0,
            update_grid: bool = True, grid_update_num: int = 10, loss_fn: Callable | None = None,
            lr: float = 1.0, start_grid_update_step: int = -1, stop_grid_update_step: int = 50,
            batch: int = -1, metrics: Sequence[Callable] | None = None, save_fig: bool = False,
            in_vars=None, out_vars=None, beta: float = 3, save_fig_freq: int = 1, img_folder: str = "./video",
            reg_metric: str = "edge_forward_spline_n", display_metrics: Sequence[str] | None = None,
            progress: bool | None = None) -> dict:
    """Train ``model`` (a KAN) on ``dataset`` ({train,test}_{input,label}: (n, in) / (n, out)) with
    pykan's arguments; returns pykan's results dict (``train_loss``, ``test_loss``, ``reg`` and one
    list per metric) and logs the version ``fit`` in the model's history."""
    if reg_metric not in REG_METRICS:
        raise ValueError(f"unknown reg_metric {reg_metric!r}; use one of {list(REG_METRICS)}")
    if grid_update_num < 1:
        raise ValueError(f"grid_update_num must be >= 1, got {grid_update_num}")
    freq = max(1, int(stop_grid_update_step / grid_update_num))

    def grid_update(step: int, x: torch.Tensor) -> bool:
        if update_grid and step % freq == 0 and step < stop_grid_update_step and step >= start_grid_update_step:
            model.update_grid(x)
            return True
        return False

    def reg() -> torch.Tensor:
        if reg_metric == "edge_backward":
            model.attribute()
        elif reg_metric == "node_backward":
            model.node_attribute()
        return model.reg(reg_metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff)

    after_step = None
    if save_fig:
        os.makedirs(img_folder, exist_ok=True)

        def after_step(step: int) -> None:
            if step % save_fig_freq == 0:
                import matplotlib.pyplot as plt

                fig = model.plot(in_vars=in_vars, out_vars=out_vars, title=f"Step {step}", beta=beta)
                fig.savefig(os.path.join(img_folder, f"{step}.jpg"), bbox_inches="tight", dpi=200)
                plt.close(fig)

    def fast_objective(lamb_: float):
        return kan_objective(model, lamb=lamb_, reg_metric=reg_metric, lamb_l1=lamb_l1, lamb_entropy=lamb_entropy,
                             lamb_coef=lamb_coef, lamb_coefdiff=lamb_coefdiff, loss_fn=loss_fn)

    results = run_fit(model, dataset, opt=opt, steps=steps, log=log, lamb=lamb, reg=reg, loss_fn=loss_fn,
                      lr=lr, batch=batch, metrics=metrics, display_metrics=display_metrics,
                      grid_update=grid_update, after_step=after_step, fast_objective=fast_objective,
                      progress=progress)
    model.log_history("fit")
    return results
