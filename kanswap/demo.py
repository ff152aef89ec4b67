"""``kanswap demo``: the reference workflow end to end, with a results table and figures.

The task is the reference workflow's (``examples/majority_workflow.py``, pykan's swap example): all 512
9-bit inputs, y = maj(maj(x1,x2,x3), maj(x4,x5,x6), maj(x7,x8,x9)), built in memory. Stages:

1. KAN [9, 10, 10, 1] fit (lamb=0.001, lamb_entropy=5., stop_grid_update_step=1000, noise_scale=1.0);
2. auto_swap method='greedy' (pykan's decisions, on a copy) and method='optimal';
3. prune(node_th=5e-2) of the swapped KAN with mean compensation, and without it (pykan's numbers);
4. MLP [9, 20, 20, 1] baseline fit (lamb=0.0001, lamb_entropy=2., reg_metric='w') and auto_swap.

It prints a table (stage, train/test accuracy, connection cost, width, seconds) and writes
``results.json`` and the figures (``--format png|pdf|svg``) into ``--out``. Run ``kanswap demo --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

__all__ = ["main", "build_parser", "run_demo"]

KAN_WIDTH = [9, 10, 10, 1]
MLP_WIDTH = [9, 20, 20, 1]
NODE_TH = 5e-2
QUICK_KAN_STEPS, QUICK_MLP_STEPS = 5, 100
DEFAULT_KAN_STEPS, DEFAULT_MLP_STEPS = 20, 1000
FIGURES = ("kan_before_swap", "kan_after_swap", "kan_pruned", "mlp_after_swap", "summary")  # + ".{format}"
FORMATS = ("png", "pdf", "svg")
STAGES = ("KAN fit", "KAN swap greedy", "KAN swap optimal", "KAN prune", "KAN prune uncompensated",
          "MLP fit", "MLP swap greedy", "MLP swap optimal")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _version() -> str:
    from . import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``kanswap`` command line: ``--version`` and the ``demo`` sub-command with its options."""
    parser = argparse.ArgumentParser(
        prog="kanswap",
        description="kanswap: fast KANs with pykan 0.2.8's API (fit, auto_swap, prune, plot).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="train, swap and prune a KAN (and an MLP baseline) on the 9-bit nested majority task",
        description="Run the reference workflow on the 9-bit nested majority task: KAN fit, "
                    "auto_swap (greedy and optimal), prune with and without mean compensation, and an "
                    "MLP baseline. Prints a table and writes PNG figures and results.json into --out.",
    )
    demo.add_argument("--out", default="kanswap-demo", metavar="DIR",
                      help="folder for the figures and results.json (default: ./kanswap-demo)")
    demo.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device (default: cpu)")
    demo.add_argument("--steps", type=_positive_int, default=None, metavar="N",
                      help=f"KAN fit steps (default {DEFAULT_KAN_STEPS}; {QUICK_KAN_STEPS} with --quick)")
    demo.add_argument("--mlp-steps", type=_positive_int, default=None, metavar="N",
                      help=f"MLP fit steps (default {DEFAULT_MLP_STEPS}; {QUICK_MLP_STEPS} with --quick)")
    demo.add_argument("--seed", type=_int, default=5, metavar="S",
                      help="seed of the data split and of the models (default: 5, as the reference)")
    demo.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                      help="torch CPU threads (default: 1; the tensors are tiny, more threads mostly add "
                           "synchronisation, which is slow on a busy machine)")
    demo.add_argument("--format", choices=FORMATS, default="png",
                      help="figure file format (default: png; pdf and svg are vector graphics)")
    demo.add_argument("--quick", action="store_true",
                      help=f"fewer fit steps (KAN {QUICK_KAN_STEPS}, MLP {QUICK_MLP_STEPS}) for a fast check")
    return parser


def main(argv=None) -> int:
    """Entry point of ``kanswap`` and ``python -m kanswap``; returns the exit code."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # a misspelt option of a sub-command: that sub-command's usage, not the top-level one
            sub = _subparsers(parser).get(args.command, parser)
            sub.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        import matplotlib

        matplotlib.use("Agg")  # files only, no windows; before pyplot is imported
        import torch

        from .device import cuda_unavailable_reason

        if args.device == "cuda" and not torch.cuda.is_available():
            print(f"kanswap demo: error: --device cuda was asked for but CUDA is not available "
                  f"({cuda_unavailable_reason()}); use --device cpu", file=sys.stderr)
            return 2
        problem = out_problem(args.out)
        if problem is not None:  # before training: a bad --out would otherwise fail after the whole run
            print(f"kanswap demo: error: {problem}", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
        kan_steps = args.steps or (QUICK_KAN_STEPS if args.quick else DEFAULT_KAN_STEPS)
        mlp_steps = args.mlp_steps or (QUICK_MLP_STEPS if args.quick else DEFAULT_MLP_STEPS)
        run_demo(out=args.out, device=args.device, kan_steps=kan_steps, mlp_steps=mlp_steps, seed=args.seed,
                 fmt=args.format)
        return 0
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects it first
    return 2


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """{command name: its parser} of parser's sub-commands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def out_problem(out: str) -> str | None:
    """None when folder ``out`` exists or can be made and a file can be written in it, else a
    one-line reason (made from the OSError: no traceback)."""
    import tempfile

    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return f"--out {out!r} is not a writable folder: {reason}"
    return None


# ------------------------------------------------------------------------------------------------
def _accuracy(model, dataset) -> tuple[float, float]:
    """Train and test accuracy of ``model(x) > 0.5``; evaluates train then test, so the model's
    cache_data ends as the test input, as after the reference's fit (its last metric is test_acc)."""
    import torch

    with torch.no_grad():
        accs = []
        for split in ("train", "test"):
            pred = model(dataset[f"{split}_input"]) > 0.5
            accs.append(float(torch.mean((pred == dataset[f"{split}_label"]).float())))
    return accs[0], accs[1]


def _kan_cost(model) -> float:
    model.attribute()  # fresh scores on the cached data (a forward does not refresh them)
    return float(model.connection_cost)


def _save(fig, path: str) -> None:
    """Write fig (format from the extension; 150 dpi for PNG) and close it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)


def run_demo(out: str = "kanswap-demo", device: str = "cpu", kan_steps: int = DEFAULT_KAN_STEPS,
             mlp_steps: int = DEFAULT_MLP_STEPS, seed: int = 5, fmt: str = "png") -> dict:
    """Run the demo, write the figures (``fmt``: png, pdf or svg) and results.json into ``out``;
    returns the results dict.

    Draws with the current matplotlib backend (``main`` selects Agg) and closes its own figures."""
    import numpy as np
    import torch

    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    from .data import create_dataset_from_data, majority_dataset
    from .kan import KAN
    from .mlp import MLP
    from .plot import plot_summary

    os.makedirs(out, exist_ok=True)
    rows: list[dict] = []
    notes: list[str] = []

    def row(stage, model, seconds, dataset, cost, **extra):
        train, test = _accuracy(model, dataset)
        width = list(model.width_in) if hasattr(model, "width_in") else list(model.width)
        rows.append({"stage": stage, "train_acc": train, "test_acc": test, "connection_cost": cost,
                     "width": width, "seconds": round(seconds, 3), **extra})

    t_start = time.perf_counter()
    np.random.seed(seed)
    torch.manual_seed(seed)
    inputs, labels = majority_dataset()
    dataset = create_dataset_from_data(inputs, labels, device=device)

    # -- KAN ----------------------------------------------------------------------------------
    print(f"KAN {KAN_WIDTH}: fit {kan_steps} steps", flush=True)
    model = KAN(width=list(KAN_WIDTH), seed=seed, noise_scale=1.0, device=device)

    def train_acc():
        return torch.mean(((model(dataset["train_input"]) > 0.5) == dataset["train_label"]).float())

    def test_acc():
        return torch.mean(((model(dataset["test_input"]) > 0.5) == dataset["test_label"]).float())

    t = time.perf_counter()
    model.fit(dataset, lamb=0.001, lamb_entropy=5., steps=kan_steps, stop_grid_update_step=1000,
              metrics=[train_acc, test_acc], display_metrics=["train_loss", "train_acc", "test_acc", "reg"])
    fit_s = time.perf_counter() - t
    row("KAN fit", model, fit_s, dataset, _kan_cost(model))

    greedy = model.copy()
    t = time.perf_counter()
    greedy.auto_swap(method="greedy")
    swap_s = time.perf_counter() - t
    row("KAN swap greedy", greedy, swap_s, dataset, _kan_cost(greedy))

    swapped = model.copy()
    t = time.perf_counter()
    swapped.auto_swap(method="optimal")
    swap_s = time.perf_counter() - t
    row("KAN swap optimal", swapped, swap_s, dataset, _kan_cost(swapped))
    modules = str(swapped.find_modules())
    print(f"modules of the fitted KAN (find_modules, after the swap):\n{modules}", flush=True)

    pruned = None
    for stage, compensate in (("KAN prune", True), ("KAN prune uncompensated", False)):
        t = time.perf_counter()
        try:
            result = swapped.prune(node_th=NODE_TH, compensate=compensate)
        except ValueError as exc:  # a layer with no node above the threshold (very short fits)
            notes.append(f"{stage}: {exc}")
            print(f"{stage}: skipped: {exc}", flush=True)
            continue
        prune_s = time.perf_counter() - t
        row(stage, result, prune_s, dataset, _kan_cost(result), node_th=NODE_TH, compensate=compensate)
        if compensate:
            pruned = result

    # -- MLP ----------------------------------------------------------------------------------
    print(f"MLP {MLP_WIDTH}: fit {mlp_steps} steps", flush=True)
    mlp = MLP(width=list(MLP_WIDTH), seed=seed, device=device)

    def mlp_train_acc():
        return torch.mean(((mlp(dataset["train_input"]) > 0.5) == dataset["train_label"]).float())

    def mlp_test_acc():
        return torch.mean(((mlp(dataset["test_input"]) > 0.5) == dataset["test_label"]).float())

    mlp_train_acc.__name__, mlp_test_acc.__name__ = "train_acc", "test_acc"
    t = time.perf_counter()
    mlp.fit(dataset, lamb=0.0001, lamb_entropy=2., steps=mlp_steps, reg_metric="w",
            metrics=[mlp_train_acc, mlp_test_acc], display_metrics=["train_loss", "train_acc", "test_acc", "reg"])
    fit_s = time.perf_counter() - t
    row("MLP fit", mlp, fit_s, dataset, float(mlp.connection_cost))

    mlp_costs = {}
    for method in ("greedy", "optimal"):
        m = MLP(width=list(MLP_WIDTH), seed=seed, device=device)  # a copy: same weights, no records
        m.load_state_dict(mlp.state_dict())
        t = time.perf_counter()
        m.auto_swap(method=method)
        swap_s = time.perf_counter() - t
        mlp_costs[method] = m
        row(f"MLP swap {method}", m, swap_s, dataset, float(m.connection_cost))
    mlp_swapped = mlp_costs["optimal"]

    print()
    print(format_table(rows), flush=True)  # before the figures: a failure there keeps the table on screen

    # -- figures --------------------------------------------------------------------------------
    t_plots = time.perf_counter()
    cost = {r["stage"]: r["connection_cost"] for r in rows}
    no_prune = f"prune(node_th={NODE_TH}) would remove every node of a layer"
    panels = {
        "kan_before_swap": (model, f"KAN {KAN_WIDTH} fitted (connection cost {cost['KAN fit']:.3f})", {}),
        "kan_after_swap": (swapped, "KAN after auto_swap(method='optimal') "
                                    f"(cost {cost['KAN swap optimal']:.3f}), modules coloured", {"modules": True}),
        "kan_pruned": (pruned if pruned is not None else no_prune,
                       f"KAN pruned, node_th={NODE_TH} (cost {cost['KAN prune']:.3f})" if pruned is not None
                       else "KAN pruned (failed)", {}),
        "mlp_after_swap": (mlp_swapped, f"MLP {MLP_WIDTH} after auto_swap(method='optimal') "
                                        f"(cost {cost['MLP swap optimal']:.2f})", {"scale": 1.5}),
    }
    for name, (obj, title, kwargs) in panels.items():
        fig = plot_summary([obj], titles=[title]) if isinstance(obj, str) else obj.plot(title=title, **kwargs)
        _save(fig, os.path.join(out, f"{name}.{fmt}"))
    short = [f"KAN fitted (cost {cost['KAN fit']:.3f})",
             f"KAN, auto_swap(method='optimal') (cost {cost['KAN swap optimal']:.3f})",
             f"KAN pruned (cost {cost['KAN prune']:.3f})" if pruned is not None else "KAN pruned (failed)",
             f"MLP, auto_swap(method='optimal') (cost {cost['MLP swap optimal']:.2f})"]
    # saved at its size (7 in wide, not cropped), so its fonts print at their nominal size
    summary = plot_summary([obj for obj, _, _ in panels.values()], titles=short, kan_kwargs={"modules": True},
                           path=os.path.join(out, f"summary.{fmt}"))
    import matplotlib.pyplot as plt

    plt.close(summary)
    plot_s = time.perf_counter() - t_plots
    total_s = time.perf_counter() - t_start

    results = {
        "task": "9-bit nested majority: y = maj(maj(x1,x2,x3), maj(x4,x5,x6), maj(x7,x8,x9))",
        "config": {"device": device, "seed": seed, "kan_width": KAN_WIDTH, "kan_steps": kan_steps,
                   "mlp_width": MLP_WIDTH, "mlp_steps": mlp_steps, "node_th": NODE_TH,
                   "torch_threads": torch.get_num_threads()},
        "stages": rows,
        "modules": modules,
        "figures": [f"{name}.{fmt}" for name in FIGURES],
        "plot_seconds": round(plot_s, 3),
        "total_seconds": round(total_s, 3),
        "notes": notes,
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"plots {plot_s:.1f} s, total {total_s:.1f} s; figures and results.json in {os.path.abspath(out)}")
    for note in notes:
        print(f"note: {note}")
    return results


def format_table(rows: list[dict]) -> str:
    """The demo's results table: one line per stage (accuracies, connection cost, width, seconds)."""
    head = f"{'stage':<24} {'train':>6} {'test':>6} {'conn.cost':>10}  {'width':<16} {'seconds':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['stage']:<24} {r['train_acc']:>6.3f} {r['test_acc']:>6.3f} {r['connection_cost']:>10.4f}  "
                     f"{str(r['width']):<16} {r['seconds']:>8.2f}")
    return "\n".join(lines)
