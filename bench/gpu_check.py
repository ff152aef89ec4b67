"""GPU check of the fused KAN kernels (kanswap.kernels.bspline): correctness, speed, roofline.

Run on a CUDA machine (an H200 is the target; about 2-3 minutes):

    python bench/gpu_check.py [--out gpu_check.json]

1. correctness: every kernel (forward, dx, dW, basis moments) on fresh random inputs against the
   float64 reference, with every launcher buffer NaN-filled first so unwritten elements show;
   fp32 with input_precision "ieee" (bound 1e-5) and "tf32" (bound 5e-3), bf16 (bound 3e-2);
2. speed: ``triton.testing.do_bench`` medians of reference vs kernel, forward and forward+backward
   (and dx, dW alone), fp32 (tf32) and bf16, at (batch, in, out) = (4096, 64, 64), (65536, 256, 256),
   (16384, 1024, 1024) with G = 5, k = 3; peak memory above the inputs, TFLOP/s (2*B*in*(K+1)*out
   per GEMM, 3 GEMMs for forward+backward) and the ratio to the matmul floor (plain torch matmuls of
   the same shapes, tf32 for fp32);
3. roofline: per shape and kernel the GEMM FLOPs, minimum bytes and the H200 floor (tensor-core
   peak, HBM bandwidth) beside the measured time. Tables are printed last; everything is written as
   JSON to --out.

Without a GPU: ``--smoke`` runs the correctness section on tiny shapes in the Triton interpreter
(TRITON_INTERPRET=1, CPU tensors) and prints the roofline with the floors only; ``--compile-only``
compiles every launch configuration (fp32/tf32 and bf16, k = 1..5, the benchmark shapes) for sm_90
(no GPU needed), prints registers, stack (spill), shared memory and resident blocks per SM read
from each cubin with triton's cuobjdump, and exits non-zero if any variant spills or fits fewer
than 2 blocks per SM.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="gpu_check.json", help="JSON output path")
    p.add_argument("--smoke", action="store_true", help="tiny correctness run (interpreter on CPU)")
    p.add_argument("--compile-only", action="store_true", help="compile the kernels for sm_90 and exit")
    p.add_argument("--quick", action="store_true", help="with --compile-only: fp32 and k = 3 only")
    p.add_argument("--jobs", type=int, default=2, help="with --compile-only: compile processes")
    p.add_argument("--rep", type=int, default=100, help="do_bench rep (ms)")
    return p.parse_args(argv)


ARGS = parse_args()
if ARGS.smoke and not ARGS.compile_only:
    import torch

    if not torch.cuda.is_available():
        # Must precede the kernel module's import: triton fixes interpreter vs compiler per kernel then.
        os.environ.setdefault("TRITON_INTERPRET", "1")
if ARGS.compile_only:
    os.environ.pop("TRITON_INTERPRET", None)

import torch  # noqa: E402
import triton  # noqa: E402
from kanswap.kernels import bspline, swap_cost  # noqa: E402

from kanswap import functional as F  # noqa: E402
from kanswap.spline import grid_from_samples, uniform_grid  # noqa: E402

DEVICE = "cpu" if bspline._INTERPRET else "cuda"
G, K_ORD = 5, 3
# The benchmark shapes: (in, out); the batch is BATCH[(in, out)].
SHAPES = [(64, 64), (256, 256), (1024, 1024)]
BATCH = {(64, 64): 4096, (256, 256): 65536, (1024, 1024): 16384}


# ----------------------------------------------------------------------------------------------
# sm_90 compile check
# ----------------------------------------------------------------------------------------------


# sm_90 (H100/H200) limits per SM: 64 K 32-bit registers allocated per warp in units of 256, 228 KiB
# of shared memory of which each block reserves 1 KiB and may use at most 227 KiB, 64 warps, 32 blocks.
SM90 = dict(regs=65536, reg_unit=256, smem=228 * 1024, smem_block=227 * 1024, smem_reserved=1024, warps=64,
            blocks=32)


def blocks_per_sm(regs: int, smem: int, num_warps: int) -> int:
    """Resident blocks per sm_90 SM for a kernel using ``regs`` registers/thread and ``smem`` B."""
    per_warp = -(-regs * 32 // SM90["reg_unit"]) * SM90["reg_unit"]
    by_regs = (SM90["regs"] // per_warp) // num_warps
    by_smem = SM90["smem"] // (smem + SM90["smem_reserved"]) if smem <= SM90["smem_block"] else 0
    return min(by_regs, by_smem, SM90["warps"] // num_warps, SM90["blocks"])


def compile_variants() -> list[tuple[str, str, int, dict, dict]]:
    """(kernel, dtype, k, constexprs, options) for every distinct launch the launchers make at the
    benchmark shapes (in = out = 64, 256, 1024; G = 5; k = 1..5; fp32 as tf32, and bf16; float64 at
    k = 3), plus the swap-cost kernels; --quick: fp32 at k = 3 only."""
    out = {}
    # float64 (broadcast-and-sum products; backend="triton" only, e.g. gradcheck): k = 3.
    dtypes = [(torch.float32, "fp32", [1, 2, 3, 4, 5]), (torch.bfloat16, "bf16", [1, 2, 3, 4, 5]),
              (torch.float64, "fp64", [3])]
    for dtype, ty, ks in [(torch.float32, "fp32", [3])] if ARGS.quick else dtypes:
        x = torch.empty(1, 1, dtype=dtype)
        for k in ks:
            nb1 = G + k + 1
            for _, n_out in SHAPES:
                tiles = bspline._tiles(dtype, n_out, nb1)
                base = dict(K_ORD=k, COMPUTE=bspline._compute_dtype(dtype), MM=bspline._mm_mode(dtype))
                for kind, cfg in tiles.items():
                    consts = {n: v for n, v in cfg.items() if n.isupper()}
                    consts.update(base)
                    if kind == "mom":
                        consts["WITH_COV"] = True
                    else:
                        consts["PRECISION"] = bspline._precision(x, None)
                    opts = {n: v for n, v in cfg.items() if not n.isupper()}
                    key = (kind, ty, tuple(sorted((n, str(v)) for n, v in consts.items())),
                           tuple(sorted(opts.items())))
                    out.setdefault(key, (kind, ty, k, consts, opts))
    variants = list(out.values())
    # The swap-cost kernels (kanswap.kernels.swap_cost) as swap_cost_fwd launches them by default.
    sc = swap_cost
    variants.append(("swap_m", "fp32", 0, dict(BI=sc.BLOCK_I, BP=sc.BLOCK_P, BK=sc.BLOCK_K),
                     dict(num_warps=sc.M_WARPS)))
    variants.append(("swap_partner", "fp32", 0, dict(BI=sc.BLOCK_I, BJ=sc.BLOCK_P), dict(num_warps=sc.PARTNER_WARPS)))
    return variants


# kind -> (kernel name in bspline or swap_cost, {pointer argument: dtype}); None is the variant's
# dtype, "acc" its accumulation dtype (fp64 for fp64, else fp32).
KERNELS = {"fwd": ("kan_linear_fwd_kernel", dict(x=None, grid=None, w=None, y=None)),
           "dx": ("kan_linear_bwd_dx_kernel", dict(dy=None, x=None, grid=None, w=None, dx=None)),
           "dw": ("kan_linear_bwd_dw_kernel", dict(dy=None, x=None, grid=None, dwp="acc")),
           "mom": ("basis_moments_kernel", dict(x=None, grid=None, shift="acc", s1="acc", s2="acc")),
           "swap_m": ("_swap_cost_m_kernel", dict(a=None, b=None, m="fp32")),
           "swap_partner": ("_swap_cost_partner_kernel", dict(m="fp32", dmin="fp32", amin="i64"))}


def compile_one(variant) -> dict:
    """Compile one variant for sm_90 and read its resource usage from the cubin."""
    import subprocess
    import tempfile

    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kind, ty, k, consts, opts = variant
    name, ptrs = KERNELS[kind]
    fn = getattr(swap_cost if kind.startswith("swap") else bspline, name)
    names = {None: ty, "acc": "fp64" if ty == "fp64" else "fp32"}
    sig = {n: "constexpr" if n in consts else ("*" + names.get(ptrs[n], ptrs[n]) if n in ptrs else "i32")
           for n in fn.arg_names}
    # CPU seconds of this process and its children (ptxas): on a shared machine wall time says little.
    t0 = time.process_time() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    ck = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts), target=GPUTarget("cuda", 90, 32),
                        options=opts)
    seconds = time.process_time() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - t0
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(ck.asm["cubin"])
        f.flush()
        dump = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True,
                              check=True).stdout
    # e.g. "Function kan_linear_fwd_kernel: REG:188 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:... TEXTURE:0"
    line = next(ln for ln in dump.splitlines() if "REG:" in ln)
    use = {f.split(":")[0]: int(f.split(":")[1]) for f in line.split() if f.count(":") == 1 and
           f.split(":")[1].isdigit()}
    smem = int(ck.metadata.shared) + use.get("SHARED", 0)
    warps = opts["num_warps"]
    tiles = " ".join(f"{n.removeprefix('BLOCK_')}={v}" for n, v in consts.items() if n.startswith("B"))
    return dict(kernel=kind, dtype=ty, k=k, tiles=tiles, num_warps=warps, num_stages=opts.get("num_stages", 3),
                regs=use["REG"], stack=use["STACK"], shared=smem,
                blocks_per_sm=blocks_per_sm(use["REG"], smem, warps), seconds=seconds)


def compile_only() -> int:
    """Compile every launch configuration for sm_90; print resources; non-zero on spill or < 2 blocks/SM."""
    from concurrent.futures import ProcessPoolExecutor

    variants = compile_variants()
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=ARGS.jobs) as pool:
        rows = list(pool.map(compile_one, variants))
    hdr = (f"{'kernel':>12} {'dtype':>5} {'k':>2} {'tiles':<30} {'warps':>5} {'stages':>6} | {'regs':>4} "
           f"{'stack':>5} {'shared B':>8} {'blocks/SM':>9} | {'CPU s':>6}")
    print(hdr)
    print("-" * len(hdr))
    bad = 0
    for r in rows:
        ok = r["stack"] == 0 and r["blocks_per_sm"] >= 2
        bad += not ok
        print(f"{r['kernel']:>12} {r['dtype']:>5} {r['k']:>2} {r['tiles']:<30} {r['num_warps']:>5} "
              f"{r['num_stages']:>6} | {r['regs']:>4} {r['stack']:>5} {r['shared']:>8} {r['blocks_per_sm']:>9} | "
              f"{r['seconds']:6.1f}{'' if ok else '  <- spills or < 2 blocks/SM'}")
    first = {}
    for r in rows:  # a first forward+backward call compiles fwd, dx and dW of one dtype and k
        if r["kernel"] in ("fwd", "dx", "dw"):
            first[(r["dtype"], r["k"])] = first.get((r["dtype"], r["k"]), 0.0) + r["seconds"]
    cpu = sum(r["seconds"] for r in rows)
    print(f"{len(rows)} variants compiled for sm_90: {time.time() - t0:.0f}s wall ({ARGS.jobs} processes), "
          f"{cpu:.0f} CPU s (0 for a variant already in triton's cache); a first forward+backward of one dtype "
          f"and k compiles fwd, dx and dW: {min(first.values()):.0f}-{max(first.values()):.0f} CPU s here; "
          f"{bad} spill or fit < 2 blocks/SM")
    return 1 if bad else 0


# ----------------------------------------------------------------------------------------------
# Correctness
# ----------------------------------------------------------------------------------------------


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    a, ref = a.double(), ref.double()
    if not torch.isfinite(a).all():
        return float("inf")
    scale = ref.abs().max().item()
    return (a - ref).abs().max().item() / (scale if scale > 0 else 1.0)


def make_inputs(B, n_in, n_out, G_, k, non_uniform, seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    if non_uniform:
        s = torch.randn(256, n_in, generator=gen, dtype=torch.float64).exp() - 1.2
        grid = grid_from_samples(s, G_, k, grid_eps=0.02)
    else:
        grid = uniform_grid(n_in, G_, k, dtype=torch.float64)
    lo, hi = grid[:, 0], grid[:, -1]
    x = lo + (hi - lo) * (torch.rand(B, n_in, generator=gen, dtype=torch.float64) * 1.3 - 0.15)
    x[: min(B, 2)] = grid[:, k + 1]  # exactly on a knot
    coef = torch.randn(n_in, n_out, G_ + k, generator=gen, dtype=torch.float64)
    mask = (torch.rand(n_in, n_out, generator=gen) > 0.2).double()
    W = F.fold_weight(coef, torch.randn(n_in, n_out, generator=gen, dtype=torch.float64),
                      torch.ones(n_in, n_out, dtype=torch.float64), mask) / (n_in**0.5)
    dy = torch.randn(B, n_out, generator=gen, dtype=torch.float64)
    cast = dict(dtype=dtype, device=DEVICE)
    return x.to(**cast), grid.to(**cast), W.to(**cast).contiguous(), dy.to(**cast)


def nan_empty(shape, dtype, device):
    return torch.full(shape, float("nan"), dtype=dtype, device=device)


def correctness(smoke: bool) -> list[dict]:
    if smoke:
        shapes = [(7, 3, 5, 3, 3), (33, 5, 2, 5, 2), (130, 2, 17, 1, 1)]
    else:
        shapes = [(4096, 64, 64, 5, 3), (1000, 100, 37, 7, 2), (513, 1024, 130, 3, 1), (2048, 8, 8, 5, 5)]
    modes = [(torch.float32, "ieee", 1e-5)]
    if not smoke or not bspline._INTERPRET:
        modes += [(torch.float32, "tf32", 5e-3), (torch.bfloat16, None, 3e-2)]
    else:
        modes += [(torch.bfloat16, None, 3e-2)]
    rows = []
    saved = bspline._empty
    bspline._empty = nan_empty
    try:
        for i, (B, n_in, n_out, G_, k) in enumerate(shapes):
            for dtype, prec, tol in modes:
                if bspline._INTERPRET and prec == "tf32":
                    continue
                x, grid, W, dy = make_inputs(B, n_in, n_out, G_, k, i % 2 == 1, 100 + i, dtype)
                xr = x.double().requires_grad_()
                Wr = W.double().requires_grad_()
                y_ref = F.kan_linear_reference(xr, grid.double(), Wr, k)
                y_ref.backward(dy.double())
                out = nan_empty((B, n_out), dtype, x.device)
                y = bspline.kan_linear_fwd(x, grid, W, k, out=out, input_precision=prec)
                dx, dw = bspline.kan_linear_bwd(dy, x, grid, W, k, input_precision=prec)
                errs = {"y": rel_err(y, y_ref), "dx": rel_err(dx, xr.grad), "dW": rel_err(dw, Wr.grad)}
                if dtype == torch.float32 and prec == "ieee":
                    mean, cov = bspline.basis_moments_fwd(x, grid, k)
                    mean_ref, cov_ref = F.basis_moments(x, grid, k)
                    errs.update(mean=rel_err(mean, mean_ref), cov=rel_err(cov, cov_ref))
                    dx2, dw2 = bspline.kan_linear_bwd(dy, x, grid, W, k, input_precision=prec)
                    errs["deterministic"] = float(torch.equal(dx, dx2) and torch.equal(dw, dw2))
                ok = all(v <= tol for n, v in errs.items() if n != "deterministic")
                ok = ok and errs.get("deterministic", 1.0) == 1.0
                row = dict(shape=[B, n_in, n_out, G_, k], dtype=str(dtype).replace("torch.", ""),
                           precision=prec, tol=tol, ok=ok, **errs)
                rows.append(row)
                es = " ".join(f"{n}={v:.2e}" for n, v in errs.items())
                print(f"[{'ok' if ok else 'FAIL'}] B={B} in={n_in} out={n_out} G={G_} k={k} "
                      f"{row['dtype']}/{prec}: {es}", flush=True)
    finally:
        bspline._empty = saved
    return rows


# ----------------------------------------------------------------------------------------------
# Roofline
# ----------------------------------------------------------------------------------------------

# H200 SXM, dense (NVIDIA's datasheet gives 1979 / 989 TFLOP/s with 2:4 sparsity, half of that dense).
PEAK_TFLOPS = {"bfloat16": 989.0, "float32": 494.0}  # bf16 and tf32 tensor cores
HBM_TBPS = 4.8


def roofline(B: int, n_in: int, n_out: int, dtype: torch.dtype) -> list[dict]:
    """FLOPs, minimum bytes and the H200 floor of each kernel at one shape (G = G, k = K_ORD).

    FLOPs count the GEMM only (2 per multiply-add of A (B, in*(K+1)) with W (in*(K+1), out)); building
    the basis is extra CUDA-core work that the floor leaves out. Minimum bytes: every input read once
    and every output written once, in the tensors' dtype (s bytes each): fwd reads x, W and writes y;
    dx reads dy, x, W and writes dx; dW reads dy, x and writes dW; fwd+bwd is all three less the
    repeated reads. The floor is max(FLOPs / tensor-core peak, bytes / HBM bandwidth).
    """
    s = torch.finfo(dtype).bits // 8
    n_j = n_in * (G + K_ORD + 1)
    gemm = 2.0 * B * n_j * n_out
    x_b, w_b, y_b = s * B * n_in, s * n_j * n_out, s * B * n_out
    kernels = {"fwd": (gemm, x_b + w_b + y_b), "dx": (gemm, y_b + x_b + w_b + x_b),
               "dw": (gemm, y_b + x_b + w_b), "fb": (3 * gemm, 2 * (x_b + w_b + y_b))}
    peak = PEAK_TFLOPS[str(dtype).replace("torch.", "")] * 1e12
    rows = []
    for name, (flops, nbytes) in kernels.items():
        t_flop, t_mem = flops / peak, nbytes / (HBM_TBPS * 1e12)
        rows.append(dict(kernel=name, gflop=flops / 1e9, mbytes=nbytes / 1e6, floor_us=max(t_flop, t_mem) * 1e6,
                         bound="tensor" if t_flop >= t_mem else "HBM"))
    return rows


def print_roofline(bench_rows: list[dict]) -> None:
    """The floor of every kernel at every benchmark shape, beside the measured time where there is one."""
    measured = {(r["B"], r["n_in"], r["n_out"], r["dtype"]): r for r in bench_rows}
    hdr = (f"{'B':>6} {'in':>5} {'out':>5} {'dtype':>8} {'kernel':>6} | {'GFLOP':>7} {'min MB':>8} | "
           f"{'floor us':>9} {'bound':>6} | {'meas us':>9} {'x floor':>7}")
    print(f"\nroofline (H200: {PEAK_TFLOPS['bfloat16']:.0f} bf16 / {PEAK_TFLOPS['float32']:.0f} tf32 TFLOP/s, "
          f"{HBM_TBPS} TB/s; G = {G}, k = {K_ORD}; GEMM FLOPs only)")
    print(hdr)
    print("-" * len(hdr))
    for n_in, n_out in SHAPES:
        B = BATCH[(n_in, n_out)]
        for dtype in (torch.float32, torch.bfloat16):
            ty = str(dtype).replace("torch.", "")
            m = measured.get((B, n_in, n_out, ty), {})
            for r in roofline(B, n_in, n_out, dtype):
                ms = m.get(f"triton_{r['kernel']}_ms")
                meas = f"{ms * 1e3:9.1f} {ms * 1e3 / r['floor_us']:7.1f}" if ms is not None else f"{'-':>9} {'-':>7}"
                print(f"{B:>6} {n_in:>5} {n_out:>5} {ty:>8} {r['kernel']:>6} | {r['gflop']:7.1f} "
                      f"{r['mbytes']:8.1f} | {r['floor_us']:9.1f} {r['bound']:>6} | {meas}")


# ----------------------------------------------------------------------------------------------
# Speed
# ----------------------------------------------------------------------------------------------


def _time(fn, rep: int) -> tuple[float, float]:
    """(median ms, peak MiB allocated above what was live before the call); NaNs on OOM."""
    from triton.testing import do_bench

    try:
        fn()  # compile / warm up
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        return do_bench(fn, rep=rep, return_mode="median"), peak
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return float("nan"), float("nan")


def bench_case(B: int, n_in: int, n_out: int, dtype: torch.dtype, rep: int) -> dict:
    x, grid, W, dy = make_inputs(B, n_in, n_out, G, K_ORD, False, 7, dtype)
    nk = n_in * (G + K_ORD + 1)
    gemm_flops = 2.0 * B * nk * n_out
    A = torch.randn(B, nk, device=DEVICE, dtype=dtype)
    Wm = W.reshape(nk, n_out)
    res = dict(B=B, n_in=n_in, n_out=n_out, G=G, k=K_ORD, dtype=str(dtype).replace("torch.", ""))
    # The matmul floor: the same GEMMs on a materialised A (tf32 for fp32).
    res["floor_fwd_ms"], _ = _time(lambda a=A: a @ Wm, rep)
    res["floor_fb_ms"], _ = _time(lambda a=A: (a @ Wm, dy @ Wm.t(), a.t() @ dy), rep)
    A = None  # free it before the timed runs
    for impl in ("reference", "triton"):
        xg = x.detach().clone().requires_grad_()
        Wg = W.detach().clone().requires_grad_()

        def fwd(xg=xg, Wg=Wg, impl=impl):
            with torch.no_grad():
                return bspline.kan_linear(xg, grid, Wg, K_ORD, backend=impl)

        def fb(xg=xg, Wg=Wg, impl=impl):
            xg.grad = Wg.grad = None
            bspline.kan_linear(xg, grid, Wg, K_ORD, backend=impl).backward(dy)

        for name, fn, n_gemm in (("fwd", fwd, 1), ("fb", fb, 3)):
            ms, peak = _time(fn, rep)
            res[f"{impl}_{name}_ms"] = ms
            res[f"{impl}_{name}_peak_mib"] = peak
            res[f"{impl}_{name}_tflops"] = n_gemm * gemm_flops / (ms * 1e-3) / 1e12
            res[f"{impl}_{name}_over_floor"] = ms / res[f"floor_{name}_ms"]
    # Each backward kernel alone, for the roofline.
    res["triton_dx_ms"], _ = _time(lambda: bspline.kan_linear_bwd(dy, x, grid, W, K_ORD, need_dw=False), rep)
    res["triton_dw_ms"], _ = _time(lambda: bspline.kan_linear_bwd(dy, x, grid, W, K_ORD, need_dx=False), rep)
    return res


def bench(rep: int) -> list[dict]:
    torch.backends.cuda.matmul.allow_tf32 = True  # the floor for fp32 is a tf32 matmul
    rows = []
    for n_in, n_out in SHAPES:
        B = BATCH[(n_in, n_out)]
        for dtype in (torch.float32, torch.bfloat16):
            rows.append(bench_case(B, n_in, n_out, dtype, rep))
            print(f"benched B={B} in={n_in} out={n_out} {rows[-1]['dtype']}", flush=True)
            torch.cuda.empty_cache()
    return rows


def print_table(bench_rows: list[dict], corr_rows: list[dict]) -> None:
    n_bad = sum(not r["ok"] for r in corr_rows)
    print(f"\ncorrectness: {len(corr_rows) - n_bad}/{len(corr_rows)} cases within bounds")
    if not bench_rows:
        return
    hdr = (f"{'B':>6} {'in':>5} {'out':>5} {'dtype':>8} | {'pass':>3} | {'ref ms':>8} {'tri ms':>8} "
           f"{'speedup':>7} {'TFLOP/s':>7} {'/floor':>6} | {'ref MiB':>8} {'tri MiB':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in bench_rows:
        for name in ("fwd", "fb"):
            ref, tri = r[f"reference_{name}_ms"], r[f"triton_{name}_ms"]
            print(f"{r['B']:>6} {r['n_in']:>5} {r['n_out']:>5} {r['dtype']:>8} | {name:>3} | {ref:8.3f} "
                  f"{tri:8.3f} {ref / tri:7.2f} {r[f'triton_{name}_tflops']:7.1f} "
                  f"{r[f'triton_{name}_over_floor']:6.2f} | {r[f'reference_{name}_peak_mib']:8.1f} "
                  f"{r[f'triton_{name}_peak_mib']:8.1f}")


def main() -> int:
    if ARGS.compile_only:
        return compile_only()
    t0 = time.time()
    info = dict(device=torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (triton interpreter)",
                torch=torch.__version__, triton=triton.__version__, smoke=ARGS.smoke)
    corr = correctness(ARGS.smoke)
    rows = [] if (ARGS.smoke or DEVICE != "cuda") else bench(ARGS.rep)
    info["seconds"] = time.time() - t0
    with open(ARGS.out, "w") as f:
        json.dump(dict(info=info, correctness=corr, bench=rows), f, indent=1)
    print_table(rows, corr)
    print_roofline(rows)
    print(f"wrote {ARGS.out} ({info['seconds']:.0f}s)")
    return 0 if all(r["ok"] for r in corr) else 1


if __name__ == "__main__":
    sys.exit(main())
