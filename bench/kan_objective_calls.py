"""One L-BFGS closure call of KAN.fit: ``kan_objective`` on the compiled CPU loops (``compiled``), its
PyTorch path (``hand``, hand-written backward) and the autograd closure (forward with records, KAN.reg,
.backward()), interleaved in one process; medians.

    python bench/kan_objective_calls.py [--threads 1 2] [--repeats 200] [--workloads ref 2-5-1 ...]

Prints, per workload and thread count: median wall microseconds per call of each, the ratios
autograd / hand and hand / compiled, the same ratios of the calling thread's CPU time (less sensitive
to other processes on a shared machine; with 2 threads it misses the second thread's work), and the
number of ops per call (torch profiler: top-level ops, and all events including autograd's backward
nodes). Without the compiled library the compiled column repeats the PyTorch path. Each workload's
grid is updated once on its batch first (as fit's step 0 does) and the closures see the same x object
every call (as in one L-BFGS step). Times on a shared machine are noisy; the ratio, from interleaved
calls, is the figure.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kanswap import KAN
from kanswap.data import majority_dataset
from kanswap.kan_objective_fused import kan_objective

WORKLOADS = {
    # name: (width, grid, samples, lamb, lamb_entropy)
    "ref": ([9, 10, 10, 1], 3, 409, 1e-3, 5.0),
    "2-5-1": ([2, 5, 1], 5, 1000, 1e-2, 2.0),
    "100-10-10-1": ([100, 10, 10, 1], 3, 1000, 1e-3, 2.0),
    "16-64-64-4": ([16, 64, 64, 4], 3, 2048, 0.0, 2.0),
}


def _setup(name: str):
    width, grid, samples, lamb, entropy = WORKLOADS[name]
    model = KAN(width=width, grid=grid, seed=5, noise_scale=1.0)
    if name == "ref":
        x, y = majority_dataset()
        x, y = x[:samples].float(), y[:samples].float()
    else:
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(samples, width[0], generator=gen) * 2 - 1
        y = torch.randn(samples, width[-1], generator=gen)
    model.update_grid(x)
    model.save_act = lamb != 0.0
    kw = dict(lamb=lamb, reg_metric="edge_forward_spline_n", lamb_l1=1.0, lamb_entropy=entropy, lamb_coef=0.0,
              lamb_coefdiff=0.0)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.zeros_like(p)
    hand = kan_objective(model, **kw, backend="reference")
    compiled = kan_objective(model, **kw)

    def autograd():
        for p in params:
            p.grad.zero_()
        loss = torch.mean((model.forward(x) - y) ** 2)
        obj = loss + lamb * model.reg(kw["reg_metric"], 1.0, entropy, 0.0, 0.0) if lamb else loss
        obj.backward()
        return obj

    return (lambda: compiled(x, y)), (lambda: hand(x, y)), autograd


def _ops(fn) -> tuple[int, int]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.events()
    top = [e for e in events if e.cpu_parent is None]
    return len(top), len(events)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    args = ap.parse_args()
    print("| workload | threads | compiled | hand | autograd | hand / compiled (wall) | autograd / hand (wall) "
          "| hand / compiled (CPU) | ops (top/all) compiled | hand | autograd |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.workloads:
        fns = dict(zip(("compiled", "hand", "autograd"), _setup(name), strict=True))
        for fn in fns.values():  # warm-up: caches, first-layer basis, grid info
            fn()
            fn()
        ops = {key: _ops(fn) for key, fn in fns.items()}
        for threads in args.threads:
            torch.set_num_threads(threads)
            wall = {key: [] for key in fns}
            cpu = {key: [] for key in fns}
            repeats = max(5, args.repeats // (10 if name == "16-64-64-4" else 1))
            for _ in range(repeats):
                for key, fn in fns.items():
                    t0, c0 = time.perf_counter(), time.thread_time()
                    fn()
                    wall[key].append(time.perf_counter() - t0)
                    cpu[key].append(time.thread_time() - c0)
            t = {key: statistics.median(v) for key, v in wall.items()}
            c = {key: statistics.median(v) for key, v in cpu.items()}
            print(f"| {name} | {threads} | {t['compiled'] * 1e6:.0f} us | {t['hand'] * 1e6:.0f} us "
                  f"| {t['autograd'] * 1e6:.0f} us | {t['hand'] / t['compiled']:.1f}x "
                  f"| {t['autograd'] / t['hand']:.1f}x "
                  f"| {c['hand'] / c['compiled']:.1f}x | {ops['compiled'][0]}/{ops['compiled'][1]} "
                  f"| {ops['hand'][0]}/{ops['hand'][1]} | {ops['autograd'][0]}/{ops['autograd'][1]} |", flush=True)

if __name__ == "__main__":
    main()
