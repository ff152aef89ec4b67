"""How much a fit's outcome is the seed's: the reference MLP fit (bench_fit.py's "ref MLP": [9, 20, 20, 1],
100 L-BFGS steps, lamb 1e-4, reg_metric 'w', numpy seed 0 before the fit) over model seeds, on
kanswap's compiled paths (weight penalty, L-BFGS recursion), on its PyTorch paths
(``KANSWAP_CPU_KERNELS=0``) and in pykan, one thread.

    python bench/fit_seeds.py [--seeds 5 6 ... 24] [--no-pykan]

Prints per seed the final train RMSE and test accuracy of each, then the median RMSE and how many fits
stalled (RMSE > 0.1). Rounding decides which local minimum a 100-step fit of this MLP ends in: the
paths differ only in last bits, and their losses part within 20 steps.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os

import numpy as np
import torch

from kanswap import MLP, create_dataset_from_data
from kanswap.data import majority_dataset


def run(seed: int, data: dict, impl: str) -> tuple[float, float]:
    """impl: 'compiled', 'torch' (kanswap's PyTorch paths) or 'pykan'."""
    if impl == "pykan":
        from kan.MLP import MLP as PykanMLP

        model = PykanMLP(width=[9, 20, 20, 1], seed=seed)
    else:
        os.environ["KANSWAP_CPU_KERNELS"] = "1" if impl == "compiled" else "0"  # read when fit starts
        model = MLP(width=[9, 20, 20, 1], seed=seed)
    np.random.seed(0)

    def test_acc():
        return torch.mean(((model(data["test_input"]) > 0.5) == data["test_label"]).float())

    kw = {} if impl == "pykan" else {"progress": False}
    with contextlib.redirect_stderr(io.StringIO()):  # pykan's progress bar
        res = model.fit(data, lamb=1e-4, lamb_entropy=2.0, steps=100, reg_metric="w", metrics=[test_acc], **kw)
    return float(res["train_loss"][-1]), float(res["test_acc"][-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(5, 25)))
    ap.add_argument("--no-pykan", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    np.random.seed(5)
    torch.manual_seed(5)
    x, y = majority_dataset()
    data = create_dataset_from_data(x, y)
    impls = ["compiled", "torch"] + ([] if args.no_pykan else ["pykan"])
    print("| seed | " + " | ".join(f"{i}: train RMSE | test acc" for i in impls) + " |")
    print("|---|" + "---|---|" * len(impls))
    losses = {i: [] for i in impls}
    for seed in args.seeds:
        row = []
        for impl in impls:
            loss, acc = run(seed, data, impl)
            losses[impl].append(loss)
            row += [f"{loss:.4f}", f"{acc:.3f}"]
        print(f"| {seed} | " + " | ".join(row) + " |", flush=True)
    for impl, v in losses.items():
        print(f"{impl}: median train RMSE {np.median(v):.4f}, stalled (> 0.1) {sum(x > 0.1 for x in v)} of {len(v)}")


if __name__ == "__main__":
    main()
