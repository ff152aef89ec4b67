"""How much a fit's outcome is the seed's: the reference MLP fit (bench_fit.py's "ref MLP": [9, 20, 20, 1],
100 L-BFGS steps, lamb 1e-4, reg_metric 'w', numpy seed 0 before the fit) over model seeds, on the
compiled float64 penalty and on the PyTorch path (``KANSWAP_CPU_KERNELS=0``), one thread.

    python bench/fit_seeds.py [--seeds 5 6 7 8 9 10 11 12]

Prints per seed the final train loss and test accuracy of both paths. Rounding decides which local
minimum a 100-step fit of this MLP ends in: the two paths differ only in the penalty's last bits, and
their losses part within 20 steps.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from kanswap import MLP, create_dataset_from_data
from kanswap.data import majority_dataset


def run(seed: int, data: dict, compiled: bool) -> tuple[float, float]:
    os.environ["KANSWAP_CPU_KERNELS"] = "1" if compiled else "0"  # read when fit builds its objective
    model = MLP(width=[9, 20, 20, 1], seed=seed)
    np.random.seed(0)

    def test_acc():
        return torch.mean(((model(data["test_input"]) > 0.5) == data["test_label"]).float())

    res = model.fit(data, lamb=1e-4, lamb_entropy=2.0, steps=100, reg_metric="w", progress=False,
                    metrics=[test_acc])
    return float(res["train_loss"][-1]), float(res["test_acc"][-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(5, 13)))
    args = ap.parse_args()
    torch.set_num_threads(1)
    np.random.seed(5)
    torch.manual_seed(5)
    x, y = majority_dataset()
    data = create_dataset_from_data(x, y)
    print("| seed | compiled: train loss | test acc | PyTorch path: train loss | test acc |")
    print("|---|---|---|---|---|")
    for seed in args.seeds:
        (lc, ac), (lp, ap_) = run(seed, data, True), run(seed, data, False)
        print(f"| {seed} | {lc:.4f} | {ac:.3f} | {lp:.4f} | {ap_:.3f} |", flush=True)


if __name__ == "__main__":
    main()
