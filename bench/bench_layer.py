"""One KAN layer, forward and forward+backward, side by side: kanswap, pykan 0.2.8, flashkan,
inkan and the GEMM lower bound, on CPU in float32 with G = 5, k = 3 (uniform grids on [-1, 1]).

Run (about 2-3 minutes on 2 cores; the first run on a machine also fills torch.compile's cache
for flashkan and inkan, up to a minute more):

    python -m pytest bench/bench_layer.py -p no:cacheprovider --benchmark-only \
        --benchmark-json=bench-layer.json
    python bench/report.py bench-layer.json

``--benchmark-min-rounds N`` sets the timed rounds (default 5); pykan's seconds-long cases run at
most 2. Shapes (batch, in, out): (512, 9, 10), (4096, 64, 64), (1024, 256, 256). One
benchmark group per shape and mode, so pytest-benchmark's table lists the implementations together.

What runs:

* ``kanswap KANLayer.output``: ``KANLayer(in, out, num=5, k=3).output(x, backend="reference")``
  (the plain-PyTorch path; ``KANLayer.forward`` returns pykan's 4-tuple with per-edge tensors);
* ``kanswap KANLinear``: ``KANLinear(in, out, grid=5, k=3)(x)`` (the nn.Linear drop-in; on CPU the
  compiled basis kernels of ``kernels/bspline_cpu.c`` when they are built, ``extra_info["cpu_kernels"]``
  says which ran), the entry the report's ratios divide by;
* ``kanswap KANLinear PyTorch path``: the same with ``backend="reference"`` (what runs where the
  kernels are not built, or with ``KANSWAP_CPU_KERNELS=0``);
* ``kanswap KANLinear updated grid``: the same layer as ``KANLinear`` after
  ``update_grid_from_samples`` on a batch of the inputs (per-input non-uniform grids, pykan's grid
  update);
* ``kanswap KANLinear compiled``: ``torch.compile(KANLinear(...))`` (Inductor), at (1024, 256, 256)
  only; compiled during the untimed warm-up call (minutes on a loaded 2-core machine);
* ``pykan``: ``kan.KANLayer.KANLayer(in, out, num=5, k=3)(x)[0]`` (its forward builds the
  (batch, out, in) tensors it returns);
* ``flashkan`` / ``inkan``: their ``KANLayer(in, out, grid_size=5, spline_order=3)`` with defaults
  (torch.compile'd basis; compiled during the untimed warm-up call);
* ``nn.Linear``: ``nn.Linear(in*(G+k+1), out)`` on a precomputed (batch, in*(G+k+1)) input: the
  one GEMM every implementation has to do, as a lower bound.

``test_layer_interleaved``: kanswap (compiled, PyTorch path, updated grid), flashkan, inkan and
nn.Linear called in turn, round after round, in one test (``--benchmark-min-rounds`` x 4 rounds, the
order rotating each round), so that a machine whose load changes over seconds slows them alike;
``extra_info["interleaved"]`` holds each one's median and the report prints them with their ratios.
pykan (seconds a call at the larger shapes) is left to ``test_layer``.

``test_cold_first_call``: a fresh Python process (empty torch.compile cache in a temporary folder)
imports the library, builds a (4096, 64, 64) layer and times its first and second forward+backward;
the benchmark's time is that whole process, ``extra_info`` holds ``first_call_s`` and ``warm_call_s``
(kanswap compiles nothing at first use: its kernels are built by pip install; flashkan and inkan
compile their basis with torch.compile on the first call).

Modes: ``fwd`` runs under ``torch.no_grad()`` and alternates between two input batches (kanswap
caches a layer's basis for an unchanged input without grad, which would otherwise time only the
GEMM). ``fwd+bwd``: x.requires_grad=True, loss = y.sum(), loss.backward() (grads of the input and
of every parameter; grads are reset to None before each call).
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import pytest
import torch
from torch import nn

G, K = 5, 3
SHAPES = [(512, 9, 10), (4096, 64, 64), (1024, 256, 256)]
MODES = ["fwd", "fwd+bwd"]
IMPLS = [
    ("kanswap", "KANLayer.output"),
    ("kanswap", "KANLinear"),
    ("kanswap", "KANLinear PyTorch path"),
    ("kanswap", "KANLinear updated grid"),
    ("kanswap", "KANLinear compiled"),
    ("pykan", "KANLayer"),
    ("flashkan", "KANLayer"),
    ("inkan", "KANLayer"),
    ("nn.Linear", "GEMM lower bound"),
]


def _build(impl: str, variant: str, n_in: int, n_out: int):
    """(module, call) where call(x) -> y (batch, n_out); x is (batch, n_in), or for nn.Linear
    the precomputed (batch, n_in*(G+K+1)) features."""
    torch.manual_seed(0)
    if impl == "kanswap":
        from kanswap import KANLayer, KANLinear

        if variant.startswith("KANLinear"):
            backend = "reference" if variant.endswith("PyTorch path") else "auto"
            mod = KANLinear(n_in, n_out, grid=G, k=K, backend=backend)
            if variant == "KANLinear updated grid":
                gen = torch.Generator().manual_seed(2)
                mod.update_grid_from_samples(torch.rand(1024, n_in, generator=gen) * 2 - 1)
            if variant == "KANLinear compiled":
                return mod, torch.compile(mod)
            return mod, mod
        mod = KANLayer(n_in, n_out, num=G, k=K)
        return mod, lambda x: mod.output(x, backend="reference")
    if impl == "pykan":
        from kan.KANLayer import KANLayer

        mod = KANLayer(n_in, n_out, num=G, k=K)
        return mod, lambda x: mod(x)[0]
    if impl == "flashkan":
        import flashkan

        mod = flashkan.KANLayer(n_in, n_out, grid_size=G, spline_order=K)
        return mod, mod
    if impl == "inkan":
        import inkan

        mod = inkan.KANLayer(n_in, n_out, grid_size=G, spline_order=K)
        return mod, mod
    if impl == "nn.Linear":
        mod = nn.Linear(n_in * (G + K + 1), n_out)
        return mod, mod
    raise ValueError(impl)


def _inputs(impl: str, batch: int, n_in: int, mode: str) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    width = n_in * (G + K + 1) if impl == "nn.Linear" else n_in
    xs = [torch.rand(batch, width, generator=gen) * 2 - 1 for _ in range(2)]
    if mode == "fwd+bwd":
        xs = xs[:1]
        xs[0].requires_grad_(True)
    return xs


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("impl,variant", IMPLS, ids=[f"{i}-{v}".replace(" ", "_") for i, v in IMPLS])
def test_layer(benchmark, measure, bench_rounds, impl, variant, shape, mode):
    batch, n_in, n_out = shape
    if variant == "KANLinear compiled" and shape != SHAPES[-1]:
        pytest.skip("compiled only at the largest shape (each compile takes minutes here)")
    benchmark.group = f"layer {mode} {batch}x{n_in}x{n_out}"
    benchmark.extra_info.update(impl=impl, variant=variant, ref=(variant == "KANLinear"),
                                shape=list(shape), mode=mode, grid=G, k=K)
    mod, call = _build(impl, variant, n_in, n_out)
    xs = _inputs(impl, batch, n_in, mode)
    if impl == "kanswap":
        from kanswap.kernels.cpu_library import cpu_library

        pytorch_only = variant in ("KANLinear PyTorch path", "KANLayer.output")
        benchmark.extra_info["cpu_kernels"] = cpu_library("bspline_cpu") is not None and not pytorch_only

    if mode == "fwd":
        cycle = itertools.cycle(xs)

        def fn():
            with torch.no_grad():
                return call(next(cycle))
    else:
        x = xs[0]

        def fn():
            x.grad = None
            mod.zero_grad(set_to_none=True)
            call(x).sum().backward()

    y = measure(benchmark, fn, bench_rounds)
    if mode == "fwd":
        assert y.shape == (batch, n_out) and torch.isfinite(y).all()
    else:
        assert x.grad is not None and x.grad.shape == x.shape


INTERLEAVED = [
    ("kanswap", "KANLinear"),
    ("kanswap", "KANLinear PyTorch path"),
    ("kanswap", "KANLinear updated grid"),
    ("flashkan", "KANLayer"),
    ("inkan", "KANLayer"),
    ("nn.Linear", "GEMM lower bound"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_layer_interleaved(benchmark, bench_rounds, shape, mode):
    batch, n_in, n_out = shape
    benchmark.group = f"layer interleaved {mode} {batch}x{n_in}x{n_out}"
    benchmark.extra_info.update(impl="kanswap", variant="interleaved", ref=True, shape=list(shape), mode=mode)
    fns = {}
    for impl, variant in INTERLEAVED:
        mod, call = _build(impl, variant, n_in, n_out)
        xs = _inputs(impl, batch, n_in, mode)
        if mode == "fwd":
            cycle = itertools.cycle(xs)

            def fn(call=call, cycle=cycle):
                with torch.no_grad():
                    call(next(cycle))
        else:
            def fn(call=call, mod=mod, x=xs[0]):
                x.grad = None
                mod.zero_grad(set_to_none=True)
                call(x).sum().backward()
        fn()  # warm-up: torch.compile (flashkan, inkan), first-touch allocations
        fns[f"{impl} {variant}"] = fn
    times = {name: [] for name in fns}
    names = list(fns)

    def run():
        for r in range(4 * bench_rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                t = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - t)

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["interleaved"] = {name: statistics.median(v) for name, v in times.items()}


# A fresh process: import, build a layer, time its first and second forward+backward (1 thread).
_COLD = """
import json, sys, time
import torch
torch.set_num_threads(1)
t0 = time.perf_counter()
impl = sys.argv[1]
if impl == "kanswap":
    from kanswap import KANLinear
    mod = KANLinear(64, 64, grid=5, k=3)
else:
    mod = __import__(impl).KANLayer(64, 64, grid_size=5, spline_order=3)
x = (torch.rand(4096, 64) * 2 - 1).requires_grad_(True)
built = time.perf_counter() - t0
times = []
for _ in range(2):
    t = time.perf_counter()
    mod(x).sum().backward()
    times.append(time.perf_counter() - t)
print(json.dumps({"import_build_s": built, "first_call_s": times[0], "warm_call_s": times[1]}))
"""


@pytest.mark.parametrize("impl", ["kanswap", "flashkan", "inkan"])
def test_cold_first_call(benchmark, impl):
    benchmark.group = "layer cold first call 4096x64x64 fwd+bwd"
    benchmark.extra_info.update(impl=impl, variant="fresh process", ref=(impl == "kanswap"))
    result = {}

    def run():
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache, TRITON_CACHE_DIR=cache)
            out = subprocess.run([sys.executable, "-c", _COLD, impl], env=env, capture_output=True, text=True,
                                 check=True)
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({key: round(val, 4) for key, val in result.items()})
    assert result["first_call_s"] > 0
