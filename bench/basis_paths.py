"""The measurements that keep kanswap's extra B-spline evaluation paths, interleaved in one
process on one thread; medians (read the ratios: the machine may be shared).

    python bench/basis_paths.py [--repeats 60]

1. The KAN objective's own dense basis (``kan_objective._Basis``: reciprocal knot spans cached per
   grid value, the order-0 indicator as a float difference) against the traced route's
   ``spline.bspline_dense`` plus the base function, features and derivative, on updated grids.
2. On uniform grids, the exact uniform coefficient table of ``spline._GridInfo`` against the
   table fitted to de Boor's values (what updated grids use): error at every knot against the
   float64 Cox-de Boor recursion, entries that should be exactly 0, and the time to build a table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kanswap.kan_objective import _Basis
from kanswap.layer import KANLayer
from kanswap.spline import _GridInfo, bspline_dense, scatter_local, uniform_grid, window_eval


def _medians(fns: dict, repeats: int) -> dict[str, float]:
    """Median milliseconds of each function, calls interleaved."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def _dense_features(x: torch.Tensor, grid: torch.Tensor, k: int):
    """What _Basis returns, from spline.bspline_dense: [silu(x), B(x)] and its derivative."""
    values, dvalues = bspline_dense(x, grid, k, derivative=True)
    sig = torch.sigmoid(x)
    base = x * sig
    dbase = torch.addcmul(sig, base, 1.0 - sig)
    return torch.cat([base.unsqueeze(-1), values], -1), torch.cat([dbase.unsqueeze(-1), dvalues], -1)


def objective_basis(repeats: int) -> None:
    for batch, n_in, G in ((409, 10, 3), (2048, 64, 3), (1024, 256, 5)):
        x = torch.rand(batch, n_in, generator=torch.Generator().manual_seed(0)) * 2 - 1
        layer = KANLayer(n_in, 4, num=G, k=3)
        layer.update_grid_from_samples(x)
        basis, grid = _Basis(layer), layer.grid.detach()
        ours, dense = basis(x, True), _dense_features(x, grid, 3)
        err = max((a - b).abs().max().item() for a, b in zip(ours, dense, strict=True))
        reps = max(5, repeats // 4) if batch * n_in > 100_000 else repeats
        t = _medians({"basis": lambda b=basis, x=x: b(x, True),
                      "dense": lambda x=x, g=grid: _dense_features(x, g, 3)}, reps)
        print(f"objective basis ({batch}, {n_in}) G={G}: _Basis {t['basis']:.2f} ms, bspline_dense + base "
              f"{t['dense']:.2f} ms ({t['dense'] / t['basis']:.2f}x), max difference {err:.1e}")


def _table_basis(x: torch.Tensor, info: _GridInfo, n_basis: int) -> torch.Tensor:
    """All n_basis functions (B, n, n_basis) from a coefficient table's window values."""
    values, jf, _ = window_eval(x, info)
    return scatter_local(values, info.first.take(jf - info.row_off), n_basis)


def uniform_table(repeats: int) -> None:
    for dtype in (torch.float32, torch.float64):
        for k in (1, 2, 3):
            grid = uniform_grid(8, 5, k, dtype=dtype)
            x = grid.t().contiguous()  # every knot of every row, exactly
            n_basis = grid.shape[1] - 1 - k
            ref = bspline_dense(x.double(), grid.double(), k)[0]  # the recursion: exact zeros at knots
            exact = _table_basis(x, _GridInfo(grid, k), n_basis).double()
            fitted = _table_basis(x, _GridInfo(grid, k, traced=True), n_basis).double()
            zero = ref == 0
            print(f"uniform grid {str(dtype)[6:]} k={k}: at knots, max error exact table "
                  f"{(exact - ref).abs().max().item():.1e}, fitted {(fitted - ref).abs().max().item():.1e}; "
                  f"non-zero where the basis is 0: exact {int((exact[zero] != 0).sum())}, "
                  f"fitted {int((fitted[zero] != 0).sum())} of {int(zero.sum())}")
    for k in (1, 2, 3):
        grid = uniform_grid(64, 5, k)
        t = _medians({"exact": lambda g=grid, k=k: _GridInfo(g, k),
                      "fitted": lambda g=grid, k=k: _GridInfo(g, k, traced=True)}, repeats)
        print(f"uniform grid (64 inputs, G=5) k={k}: table built in {t['exact']:.2f} ms exact, "
              f"{t['fitted']:.2f} ms fitted")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    objective_basis(args.repeats)
    uniform_table(args.repeats)
