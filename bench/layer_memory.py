"""Peak memory of one KAN layer's forward+backward on CPU: kanswap KANLinear (uniform and updated
grids) against flashkan 0.2.0, G = 5, k = 3, float32, one thread.

Run:  python bench/layer_memory.py

Each case runs in a fresh process with glibc's mmap threshold fixed at 64 KiB and trimming on, so
large tensors are mapped and unmapped and the resident set follows live memory. After two warm-up
calls (flashkan compiles its basis), the process's high-water mark is reset (/proc/self/clear_refs)
and the peak resident growth of one more forward+backward is reported in MiB. Linux only.
"""

from __future__ import annotations

import os
import subprocess
import sys

SHAPES = [(4096, 64, 64), (1024, 256, 256)]
CASES = [("kanswap", False), ("kanswap", True), ("flashkan", False)]

_CHILD = r'''
import re, sys, torch
torch.set_num_threads(1)
impl, updated = sys.argv[1], sys.argv[5] == "1"
B, n_in, n_out = map(int, sys.argv[2:5])
torch.manual_seed(0)
if impl == "kanswap":
    from kanswap import KANLinear
    mod = KANLinear(n_in, n_out, grid=5, k=3)
    if updated:
        mod.update_grid_from_samples(torch.rand(1024, n_in) * 2 - 1)
else:
    import flashkan
    mod = flashkan.KANLayer(n_in, n_out, grid_size=5, spline_order=3)
x = (torch.rand(B, n_in) * 2 - 1).requires_grad_(True)
def step():
    x.grad = None
    mod.zero_grad(set_to_none=True)
    mod(x).sum().backward()
def status(key):
    return int(re.search(key + r":\s+(\d+)", open("/proc/self/status").read()).group(1))
step(); step()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS")
step()
print((status("VmHWM") - base) / 1024)
'''


def peak_mib(impl: str, shape: tuple[int, int, int], updated: bool) -> float:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = subprocess.run([sys.executable, "-c", _CHILD, impl, *map(str, shape), "1" if updated else "0"],
                         env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    print("| (batch, in, out) | kanswap | kanswap, updated grid | flashkan 0.2.0 |")
    print("|---|---|---|---|")
    for shape in SHAPES:
        cells = [f"{peak_mib(impl, shape, updated):.1f} MiB" for impl, updated in CASES]
        print(f"| {shape} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
