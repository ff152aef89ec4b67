"""The compiled parts of a fit beside the PyTorch code they replace, interleaved in one process on one
thread; medians in microseconds (read the ratios: the machine may be shared).

    python bench/fit_parts.py [--repeats 300]

1. The MLP's weight penalty on the reference MLP [9, 20, 20, 1]: ``kernels.kan_objective_cpu.WeightReg``
   (one float64 call) against ``mlp_objective.BlockReg`` (torch ops), and one whole closure call of
   ``mlp_objective`` with lamb 1e-4.
2. L-BFGS's two-loop recursion over 10 pairs of 641 float32 entries (the reference MLP's parameter
   count): compiled (``kernels/lbfgs_cpu.c``) against the torch loop (``LBFGS._direction`` with the
   compiled path off).
3. The KAN objective's per-layer loops at (1024, 16, m), float32, m = 1..17: forward and backward
   (``kernels.kan_objective_cpu.forward`` / ``backward``). Widths up to 15 run a body compiled for
   their literal width, 16 and wider the run-time loops.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from kanswap.kernels import kan_objective_cpu as cpu

from kanswap import MLP, create_dataset_from_data
from kanswap.data import majority_dataset
from kanswap.flat import FlatParams
from kanswap.lbfgs import LBFGS
from kanswap.mlp_objective import BlockReg, mlp_objective


def _medians(fns: dict, repeats: int) -> dict[str, float]:
    """Median microseconds of each function, calls interleaved."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) * 1e6 for name, v in times.items()}


def mlp_penalty(repeats: int) -> None:
    np.random.seed(5)
    torch.manual_seed(5)
    x, y = majority_dataset()
    data = create_dataset_from_data(x, y)
    model = MLP(width=[9, 20, 20, 1], seed=5)
    FlatParams(list(model.parameters()))  # gradients as fit has them: views into one flat buffer
    weights = [lin.weight for lin in model.linears]
    grads = [w.grad for w in weights]
    compiled, torch_ops = cpu.WeightReg(len(weights)), BlockReg([tuple(w.shape) for w in weights], 1.0, 2.0, x)
    closure = mlp_objective(model, lamb=1e-4, reg_metric="w", lamb_l1=1.0, lamb_entropy=2.0)
    X, Y = data["train_input"], data["train_label"]
    t = _medians({"compiled": lambda: compiled(weights, grads, 1e-4, 1.0, 2.0), "BlockReg": lambda: torch_ops(weights),
                  "closure": lambda: closure(X, Y)}, repeats)
    print(f"MLP weight penalty: compiled {t['compiled']:.1f} us, BlockReg {t['BlockReg']:.1f} us "
          f"({t['BlockReg'] / t['compiled']:.1f}x); whole closure call {t['closure']:.1f} us")


def lbfgs_direction(repeats: int) -> None:
    gen = torch.Generator().manual_seed(0)
    n = 641
    x = torch.zeros(n)
    opt = LBFGS(x, torch.zeros_like(x))
    opt.steps = [torch.randn(n, generator=gen) for _ in range(10)]
    opt.dirs = [s + 0.3 * torch.randn(n, generator=gen) for s in opt.steps]
    opt.rho = [1.0 / y.double().dot(s.double()).item() for y, s in zip(opt.dirs, opt.steps, strict=True)]
    g = torch.randn(n, generator=gen)
    compiled = opt._compiled

    def run(flag: bool):
        opt._compiled = flag and compiled
        return opt._direction(g)

    t = _medians({"compiled": lambda: run(True), "torch": lambda: run(False)}, repeats)
    print(f"L-BFGS two-loop recursion, 10 pairs x {n}: compiled {t['compiled']:.1f} us, torch {t['torch']:.1f} us "
          f"({t['torch'] / t['compiled']:.1f}x)")


def objective_widths(repeats: int) -> None:
    B, n = 1024, 16
    grid = torch.linspace(-1.6, 1.6, 12).repeat(n, 1)
    x = torch.rand(B, n, generator=torch.Generator().manual_seed(1)) * 2 - 1
    bas = cpu.basis(x, grid, cpu.inverse_spans(grid, 3), 3, "silu", derivative=True)
    print(f"KAN objective loops at ({B}, {n}, m), float32 (literal width up to 15):")
    print("| m | forward us | backward us |")
    print("|---|---|---|")
    for m in range(1, 18):
        W, gz = torch.randn(n, 9, m), torch.randn(B, m)
        t = _medians({"fwd": lambda W=W: cpu.forward(bas, W, stats=False),
                      "bwd": lambda W=W, gz=gz: cpu.backward(bas, W, gz, None, None, True)}, max(20, repeats // 3))
        print(f"| {m} | {t['fwd']:.0f} | {t['bwd']:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not cpu.available(torch.float32):
        raise SystemExit("the compiled CPU kernels are not built: nothing to compare")
    mlp_penalty(args.repeats)
    lbfgs_direction(args.repeats)
    objective_widths(args.repeats)


if __name__ == "__main__":
    main()
