"""The training loop shared by KAN and MLP: pykan's ``fit`` without its defects, on flat parameters.

Differences from pykan 0.2.8, each deliberate:
- the trainable parameters are views into one flat buffer and their gradients into another
  (``kanswap.flat``), and L-BFGS is kanswap's own (``kanswap.lbfgs``) on that vector, with pykan's
  settings (history 10, strong Wolfe, every tolerance 1e-32): it never reseeds the global torch RNG
  (D12) and never imports ``torch._dynamo``;
- each closure call is one objective function ``f(x, y) -> (objective, train_loss, reg)`` that writes
  the gradient into the flat buffer: hand-written for KAN (``kan_objective``) and MLP
  (``mlp_objective``) where they cover the case, autograd otherwise;
- the intra-op thread count follows the work per closure (``kanswap.threads``);
- the grid-update period is at least 1 (D10) and the test batch is capped at the test-set size (D11);
- the dataset is checked first (keys, shapes, dtype, device, NaN/inf) and refused with a clear error;
- the test loss is evaluated without building a graph;
- the progress bar shows on a terminal and in Jupyter (``kanswap.progress``), not when piped;
  ``progress=False`` or ``KANSWAP_PROGRESS=0`` turns it off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .flat import FlatParams
from .lbfgs import LBFGS
from .progress import progress_bar, show_progress
from .threads import fit_threads, threads

__all__ = ["fit", "check_dataset", "DATASET_KEYS", "Objective", "autograd_objective", "show_progress"]

DATASET_KEYS = ("train_input", "train_label", "test_input", "test_label")

# f(x, y) -> (objective, train_loss, reg), 0-d and detached; writes d objective / d p into p.grad.
Objective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def check_dataset(dataset: dict, in_dim: int, ref: torch.Tensor) -> None:
    """Raise a clear error unless ``dataset`` holds finite float tensors of matching shapes on ref's
    device and dtype, with ``in_dim`` input columns."""
    if not isinstance(dataset, dict):
        raise TypeError(f"dataset must be a dict with keys {DATASET_KEYS}, got {type(dataset).__name__}")
    missing = [key for key in DATASET_KEYS if key not in dataset]
    if missing:
        raise KeyError(f"dataset is missing {missing}; it needs {list(DATASET_KEYS)} "
                       "(see create_dataset_from_data)")
    for key in DATASET_KEYS:
        t = dataset[key]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"dataset[{key!r}] must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"dataset[{key!r}] must be 2-D (samples, features), got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"dataset[{key!r}] has integer dtype {t.dtype}; convert it with .float()")
        if t.dtype != ref.dtype:
            raise TypeError(f"dataset[{key!r}] dtype {t.dtype} does not match the model's {ref.dtype}")
        if t.device != ref.device:
            raise ValueError(f"dataset[{key!r}] is on {t.device} but the model is on {ref.device}")
        if not torch.isfinite(t).all():
            bad = (~torch.isfinite(t)).sum().item()
            raise ValueError(f"dataset[{key!r}] contains {bad} NaN/inf values; clean the data before fit")
    for split in ("train", "test"):
        x, y = dataset[f"{split}_input"], dataset[f"{split}_label"]
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{split}_input has {x.shape[0]} rows but {split}_label has {y.shape[0]}")
        if x.shape[0] == 0:
            raise ValueError(f"dataset[{split!r}_input] is empty")
        if x.shape[1] != in_dim:
            raise ValueError(f"{split}_input has {x.shape[1]} columns but the model expects {in_dim}")


def autograd_objective(model, flat: FlatParams, lamb: float, reg: Callable[[], torch.Tensor] | None,
                       loss_fn: Callable) -> Objective:
    """The objective by autograd, for every case the hand-written ones do not cover (a callable
    ``loss_fn``, symbolic or custom layers, MLP regularisation from activations)."""
    zero = torch.zeros((), dtype=flat.x.dtype, device=flat.x.device)

    def f(x: torch.Tensor, y: torch.Tensor):
        with torch.enable_grad():
            train_loss = loss_fn(model.forward(x), y)
            reg_ = reg() if (lamb != 0.0 and reg is not None) else zero
            objective = train_loss + lamb * reg_
            flat.set_grads(torch.autograd.grad(objective, flat.params, allow_unused=True))
        return objective.detach(), train_loss.detach(), reg_.detach()

    return f


def fit(
    model,
    dataset: dict,
    opt: str = "LBFGS",
    steps: int = 100,
    log: int = 1,
    lamb: float = 0.0,
    reg: Callable[[], torch.Tensor] | None = None,
    loss_fn: Callable | None = None,
    lr: float = 1.0,
    batch: int = -1,
    metrics: Sequence[Callable] | None = None,
    display_metrics: Sequence[str] | None = None,
    grid_update: Callable[[int, torch.Tensor], bool] | None = None,
    after_step: Callable[[int], None] | None = None,
    fast_objective: Callable[[float], Objective | None] | None = None,
    progress: bool | None = None,
) -> dict:
    """Train ``model`` on ``dataset`` as pykan's fit does; returns pykan's results dict.

    reg: computes the regularisation from the model's saved activations (called only while
    ``model.save_act`` is on); grid_update(step, train_x) runs before the optimizer step and returns
    whether it changed the model; fast_objective(lamb) builds a hand-written objective for the
    effective ``lamb`` (or None: autograd); progress: see ``show_progress``.
    """
    if opt not in ("LBFGS", "Adam"):
        raise ValueError(f"unknown opt {opt!r}; use 'LBFGS' or 'Adam'")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if not isinstance(log, int) or log < 1:
        raise ValueError(f"log must be a positive integer, got {log!r}")
    ref = next(model.parameters())
    check_dataset(dataset, model.input_dim, ref)
    if lamb > 0.0 and not model.save_act:
        print("setting lamb=0. If you want to set lamb > 0, set self.save_act=True")
    old_save_act = model.save_act
    if lamb == 0.0:
        model.save_act = False
    # The regularisation counts only while activations are saved (pykan's rule).
    lamb_eff = float(lamb) if model.save_act else 0.0

    if loss_fn is None:
        def loss_fn(x, y):
            return torch.mean((x - y) ** 2)

    results = {"train_loss": [], "test_loss": [], "reg": []}
    for metric in metrics or ():
        results[metric.__name__] = []
    for name in display_metrics or ():
        if name not in results:
            raise ValueError(f"display_metrics: {name!r} not recognized; known: {list(results)}")

    n_train, n_test = dataset["train_input"].shape[0], dataset["test_input"].shape[0]
    if batch == -1 or batch > n_train:
        bs, bs_test = n_train, n_test
    elif isinstance(batch, int) and batch > 0:
        bs, bs_test = batch, min(batch, n_test)
    else:
        raise ValueError(f"batch must be -1 or a positive integer, got {batch!r}")

    flat = FlatParams([p for p in model.parameters() if p.requires_grad])

    def build_objective() -> Objective:
        f = fast_objective(lamb_eff) if fast_objective is not None else None
        return f if f is not None else autograd_objective(model, flat, lamb_eff, reg, loss_fn)

    objective_fn = build_objective()
    if opt == "Adam":
        optimizer = torch.optim.Adam(flat.params, lr=lr)
    else:
        optimizer = LBFGS(flat.x, flat.g, lr=lr, history_size=10, line_search="strong_wolfe",
                          tolerance_grad=1e-32, tolerance_change=1e-32, tolerance_ys=1e-32)
    state = {}

    def evaluate(x, y) -> float:
        objective, state["train_loss"], state["reg"] = objective_fn(x, y)
        return objective.item()

    pbar = progress_bar(steps, show_progress(progress))
    try:
        with threads(fit_threads(bs, flat.x.numel())):
            for step in pbar:
                if step == steps - 1 and old_save_act:
                    model.save_act = True
                train_id = np.random.choice(n_train, bs, replace=False)
                test_id = np.random.choice(n_test, bs_test, replace=False)
                # One batch tensor for the whole step: objectives may cache per-x work (the first
                # layer's basis) for every closure call of the step (~21 on the reference fit).
                x_train, y_train = dataset["train_input"][train_id], dataset["train_label"][train_id]
                if grid_update is not None and grid_update(step, x_train):
                    if not flat.is_seated():
                        raise RuntimeError("a grid update replaced a parameter instead of writing into it")
                    objective_fn = build_objective()

                if opt == "LBFGS":
                    optimizer.step(lambda x=x_train, y=y_train: evaluate(x, y))
                else:
                    evaluate(x_train, y_train)
                    optimizer.step()

                reg_value = state["reg"]
                if model.save_act and lamb_eff == 0.0 and reg is not None:
                    # Last step with lamb = 0: pykan reports the regularisation of the trained model.
                    with torch.no_grad():
                        model.forward(x_train)
                        reg_value = reg().detach()
                # The test loss needs no graph and no records (what it would record, pykan's test forward
                # included, is overwritten by the metrics' forwards or recomputed on demand).
                save_act, model.save_act = model.save_act, False
                try:
                    with torch.no_grad():
                        # An objective that can predict (the compiled KAN one) runs its own loops, with
                        # model.forward's side effects: 0.25 ms against 2 ms per step on the reference KAN.
                        predict = getattr(objective_fn, "predict", model.forward)
                        test_loss = loss_fn(predict(dataset["test_input"][test_id]), dataset["test_label"][test_id])
                finally:
                    model.save_act = save_act
                for metric in metrics or ():
                    results[metric.__name__].append(metric().item())
                train_rmse = torch.sqrt(state["train_loss"]).cpu().numpy()
                test_rmse = torch.sqrt(test_loss).detach().cpu().numpy()
                reg_value = reg_value.cpu().numpy()
                results["train_loss"].append(train_rmse)
                results["test_loss"].append(test_rmse)
                results["reg"].append(reg_value)
                if after_step is not None:
                    after_step(step)
                if step % log == 0 and not pbar.disable:
                    if display_metrics is None:
                        pbar.set_description(f"| train_loss: {train_rmse:.2e} | test_loss: {test_rmse:.2e} "
                                             f"| reg: {reg_value:.2e} | ")
                    else:
                        pbar.set_description("".join(f" {name}: {results[name][-1]:.2e} |"
                                                     for name in display_metrics))
    finally:
        pbar.close()
        model.save_act = old_save_act
    return results
