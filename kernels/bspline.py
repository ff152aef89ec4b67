"""Fused KAN layer: y = A(x) @ W with the B-spline features A built in registers.

A KAN layer (``kanswap.functional``) is one contraction ``y = A @ W`` with
A: (B, in*(K+1)) the features ``[silu(x_i), B_1(x_i) .. B_K(x_i)]`` of every input (K = G + k) and
W: (in*(K+1), out) the folded weight. The reference materialises A; these kernels never do:

- ``kan_linear_fwd_kernel``: one program per (batch block, out block) walks the in*(K+1) columns in
  blocks of BLOCK_J; each column j = i*(K+1) + c evaluates its own feature (silu for c = 0, else the
  basis function m = c - 1 on knots g_{i,m} .. g_{i,m+k+1} of input i's grid row) by de Boor's
  triangle on a (BLOCK_B, BLOCK_J) tile, then ``tl.dot``s it with the matching W tile;
- ``kan_linear_bwd_dx_kernel``: dA = dy @ W^T for a group of whole inputs, times the feature
  derivative, summed over each input's K+1 columns;
- ``kan_linear_bwd_dw_kernel``: dW = A^T @ dy, the batch split into fixed chunks whose partial sums
  land in their own buffer and are summed afterwards (deterministic, no atomics);
- ``basis_moments_kernel``: per-input feature sums and centred cross products for mean/covariance.

Conventions follow ``kanswap.spline``: half-open order-0 intervals, every function 0 at or beyond the
outer knots, 0/0 := 0 for zero knot spans. fp32 inputs use tf32 ``tl.dot`` on GPU by default
(``input_precision`` overrides; the interpreter uses "ieee"), fp16/bf16 are fed to ``tl.dot``
natively, float64 uses float64 throughout; accumulation is fp32 (float64 for float64).

Triton is imported lazily: without it this module imports, and the dispatchers at the bottom
(``kan_linear``, ``basis_moments``) fall back to the reference. ``TRITON_INTERPRET=1`` must be set
before this module is imported to run the kernels on CPU tensors (triton decides at decoration).
"""

from __future__ import annotations

import os

import torch

from kanswap import functional as _ref

try:
    import triton
    import triton.language as tl
except ImportError:  # the dispatchers fall back to the reference
    triton = None
    tl = None

__all__ = [
    "FusedKANLinear",
    "kan_linear_fwd",
    "kan_linear_bwd",
    "basis_moments_fwd",
    "kan_linear",
    "basis_moments",
    "BACKENDS",
]

BACKENDS = ("auto", "triton", "reference")
MAX_K = 5
# Whether the kernels below were built for the interpreter (fixed when triton.jit runs, i.e. now).
_INTERPRET = triton is not None and os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


if triton is not None:
    # The kernels use only triton.language builtins plus this combine function: library helpers such
    # as tl.sum / tl.zeros are themselves @triton.jit functions whose interpreter-or-compiler mode was
    # fixed when triton was imported, and the interpreter cannot call compiled-mode ones (a test
    # process may import triton before it sets TRITON_INTERPRET). The interpreter recognises this
    # combine function and reduces with numpy.
    _SUM = tl.standard._sum_combine

    @triton.jit
    def _sum(x, axis: tl.constexpr):
        """tl.sum(x, axis) for fp32/fp64 (no dtype promotion needed)."""
        return tl.reduce(x, axis, _SUM)

    @triton.jit
    def _mm(a, b, PRECISION: tl.constexpr, MM: tl.constexpr):
        """a (M, J) @ b (J, N) accumulated in fp32 (float64 for float64 operands).

        MM (see ``_mm_mode``): 0 tl.dot on the operands as given; 1 tl.dot after an exact upcast to
        fp32 (the interpreter's bf16 dot is broken; bf16 products are exact in fp32, so the result
        matches an fp32-accumulating MMA); 2 broadcast-and-sum, for float64 on any target.
        """
        if MM == 0:
            return tl.dot(a, b, input_precision=PRECISION)
        elif MM == 1:
            return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
        else:
            return _sum(a[:, :, None] * b[None, :, :], 1)

    @triton.jit
    def _safe_inv(d):
        """1/d with 0 where d == 0: the 0/0 := 0 rule for repeated knots (the numerator is 0 there)."""
        return tl.where(d == 0, 0.0, 1.0 / tl.where(d == 0, 1.0, d))

    @triton.jit
    def _kan_features(x, grid, o_b, m_b, o_j, m_j, stride_xb, stride_xi, N_KNOT, NB1,
                      K_ORD: tl.constexpr, COMPUTE: tl.constexpr):
        """Features and their x-derivatives at rows o_b (BLOCK_B,) and flat columns o_j (BLOCK_J,).

        Column j = i*NB1 + c (NB1 = K+1) is silu(x_i) for c = 0, else B_{m,k}(x_i) with m = c - 1
        on grid row i. Returns (a, da), both (BLOCK_B, BLOCK_J) in COMPUTE, 0 where masked.
        """
        i_j = o_j // NB1
        c_j = o_j % NB1
        m_bj = m_b[:, None] & m_j[None, :]
        p_x = x + o_b[:, None] * stride_xb + i_j[None, :].to(tl.int64) * stride_xi
        b_x = tl.load(p_x, mask=m_bj, other=0.0).to(COMPUTE)
        # The k+2 knots g_m .. g_{m+k+1} of each column's function, per column (cheap: (BLOCK_J,)).
        # The base column has no knots: all-zero knots make every indicator below false.
        m_g = m_j & (c_j > 0)
        p_g = grid + i_j.to(tl.int64) * N_KNOT + (c_j - 1)
        knots = ()
        for r in tl.static_range(K_ORD + 2):
            knots = knots + (tl.load(p_g + r, mask=m_g, other=0.0).to(COMPUTE)[None, :],)
        # Order 0: the half-open indicators of the k+1 intervals under B_{m,k}.
        b_n = ()
        for r in tl.static_range(K_ORD + 1):
            b_in = (b_x >= knots[r]) & (b_x < knots[r + 1])
            b_n = b_n + (tl.where(b_in, 1.0, 0.0).to(COMPUTE),)
        # Orders 1 .. k-1 of de Boor's triangle; b_n[r] holds B_{m+r,p}.
        for p in tl.static_range(1, K_ORD):
            new = ()
            for r in tl.static_range(K_ORD + 1 - p):
                b_l = (b_x - knots[r]) * _safe_inv(knots[r + p] - knots[r]) * b_n[r]
                b_r = (knots[r + p + 1] - b_x) * _safe_inv(knots[r + p + 1] - knots[r + 1]) * b_n[r + 1]
                new = new + (b_l + b_r,)
            b_n = new
        # Order k, written out: its two order k-1 inputs also give the derivative
        # dB_{m,k}/dx = k (B_{m,k-1}/(g_{m+k}-g_m) - B_{m+1,k-1}/(g_{m+k+1}-g_{m+1})).
        b_i0 = _safe_inv(knots[K_ORD] - knots[0]) * b_n[0]
        b_i1 = _safe_inv(knots[K_ORD + 1] - knots[1]) * b_n[1]
        b_val = (b_x - knots[0]) * b_i0 + (knots[K_ORD + 1] - b_x) * b_i1
        b_dval = K_ORD * (b_i0 - b_i1)
        # silu(x) = x s and silu'(x) = s (1 + x (1 - s)), s = sigmoid(x).
        b_s = 1.0 / (1.0 + tl.exp(-b_x))
        is_base = (c_j == 0)[None, :]
        b_a = tl.where(m_bj, tl.where(is_base, b_x * b_s, b_val), 0.0).to(COMPUTE)
        b_da = tl.where(m_bj, tl.where(is_base, b_s * (1.0 + b_x * (1.0 - b_s)), b_dval), 0.0).to(COMPUTE)
        return b_a, b_da

    @triton.jit
    def kan_linear_fwd_kernel(x, grid, w, y, B, N_IN, N_OUT, N_KNOT, NB1, stride_xb, stride_xi,
                              K_ORD: tl.constexpr, COMPUTE: tl.constexpr, BLOCK_B: tl.constexpr,
                              BLOCK_J: tl.constexpr, BLOCK_O: tl.constexpr, PRECISION: tl.constexpr,
                              MM: tl.constexpr):
        """y[b, o] = sum_j A[b, j] W[j, o]; one program per (BLOCK_B, BLOCK_O) tile of y (B, out)."""
        i_b = tl.program_id(0).to(tl.int64)
        i_o = tl.program_id(1).to(tl.int64)
        o_b = i_b * BLOCK_B + tl.arange(0, BLOCK_B)
        o_o = i_o * BLOCK_O + tl.arange(0, BLOCK_O)
        m_b = o_b < B
        m_o = o_o < N_OUT
        N_J = N_IN * NB1
        b_y = tl.full([BLOCK_B, BLOCK_O], 0.0, dtype=COMPUTE)
        for j0 in range(0, N_J, BLOCK_J):
            o_j = j0 + tl.arange(0, BLOCK_J)
            m_j = o_j < N_J
            b_a, _ = _kan_features(x, grid, o_b, m_b, o_j, m_j, stride_xb, stride_xi, N_KNOT, NB1,
                                   K_ORD, COMPUTE)
            p_w = w + o_j[:, None].to(tl.int64) * N_OUT + o_o[None, :]
            b_w = tl.load(p_w, mask=m_j[:, None] & m_o[None, :], other=0.0)
            b_y += _mm(b_a.to(b_w.dtype), b_w, PRECISION, MM)
        p_y = y + o_b[:, None] * N_OUT + o_o[None, :]
        tl.store(p_y, b_y.to(y.dtype.element_ty), mask=m_b[:, None] & m_o[None, :])

    @triton.jit
    def kan_linear_bwd_dx_kernel(dy, x, grid, w, dx, B, N_IN, N_OUT, N_KNOT, NB1, stride_xb, stride_xi,
                                 K_ORD: tl.constexpr, COMPUTE: tl.constexpr, BLOCK_B: tl.constexpr,
                                 BLOCK_J: tl.constexpr, BLOCK_IN: tl.constexpr, BLOCK_O: tl.constexpr,
                                 PRECISION: tl.constexpr, MM: tl.constexpr):
        """dx[b, i] = sum_c (dy @ W^T)[b, (i, c)] dA[b, (i, c)]/dx_i for BLOCK_IN whole inputs.

        The column tile holds the BLOCK_IN*(K+1) <= BLOCK_J columns of inputs
        i_g*BLOCK_IN .. i_g*BLOCK_IN + BLOCK_IN - 1, so each dx needs no cross-program reduction.
        """
        i_b = tl.program_id(0).to(tl.int64)
        i_g = tl.program_id(1).to(tl.int64)
        o_b = i_b * BLOCK_B + tl.arange(0, BLOCK_B)
        m_b = o_b < B
        o_c = tl.arange(0, BLOCK_J)
        o_j = i_g * BLOCK_IN * NB1 + o_c
        m_j = (o_c < BLOCK_IN * NB1) & (o_j < N_IN * NB1)
        b_ga = tl.full([BLOCK_B, BLOCK_J], 0.0, dtype=COMPUTE)
        for o0 in range(0, N_OUT, BLOCK_O):
            o_o = o0 + tl.arange(0, BLOCK_O)
            m_o = o_o < N_OUT
            b_dy = tl.load(dy + o_b[:, None] * N_OUT + o_o[None, :], mask=m_b[:, None] & m_o[None, :],
                           other=0.0)
            p_wt = w + o_j[None, :] * N_OUT + o_o[:, None]
            b_wt = tl.load(p_wt, mask=m_o[:, None] & m_j[None, :], other=0.0)
            b_ga += _mm(b_dy, b_wt, PRECISION, MM)
        _, b_da = _kan_features(x, grid, o_b, m_b, o_j, m_j, stride_xb, stride_xi, N_KNOT, NB1,
                                K_ORD, COMPUTE)
        b_p = b_ga * b_da
        seg = o_c // NB1
        for q in tl.static_range(BLOCK_IN):
            b_dx = _sum(tl.where((seg == q)[None, :], b_p, 0.0), 1)
            o_in = o_b * 0 + (i_g * BLOCK_IN + q)
            tl.store(dx + o_b * N_IN + o_in, b_dx.to(dx.dtype.element_ty), mask=m_b & (o_in < N_IN))

    @triton.jit
    def kan_linear_bwd_dw_kernel(dy, x, grid, dwp, B, N_IN, N_OUT, N_KNOT, NB1, stride_xb, stride_xi,
                                 ROWS_PER_SPLIT, K_ORD: tl.constexpr, COMPUTE: tl.constexpr,
                                 BLOCK_B: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_O: tl.constexpr,
                                 PRECISION: tl.constexpr, MM: tl.constexpr):
        """dwp[s, j, o] = sum over rows of split s of A[b, j] dy[b, o]; the caller sums over s."""
        i_j = tl.program_id(0).to(tl.int64)
        i_o = tl.program_id(1).to(tl.int64)
        i_s = tl.program_id(2).to(tl.int64)
        N_J = N_IN * NB1
        o_j = i_j * BLOCK_J + tl.arange(0, BLOCK_J)
        o_o = i_o * BLOCK_O + tl.arange(0, BLOCK_O)
        m_j = o_j < N_J
        m_o = o_o < N_OUT
        b_dw = tl.full([BLOCK_J, BLOCK_O], 0.0, dtype=COMPUTE)
        b0 = i_s * ROWS_PER_SPLIT
        for r0 in range(0, ROWS_PER_SPLIT, BLOCK_B):
            o_b = b0 + r0 + tl.arange(0, BLOCK_B)
            m_b = o_b < B
            b_a, _ = _kan_features(x, grid, o_b, m_b, o_j, m_j, stride_xb, stride_xi, N_KNOT, NB1,
                                   K_ORD, COMPUTE)
            b_dy = tl.load(dy + o_b[:, None] * N_OUT + o_o[None, :], mask=m_b[:, None] & m_o[None, :],
                           other=0.0)
            b_dw += _mm(tl.trans(b_a).to(b_dy.dtype), b_dy, PRECISION, MM)
        p_dw = dwp + i_s * N_J * N_OUT + o_j[:, None] * N_OUT + o_o[None, :]
        tl.store(p_dw, b_dw.to(dwp.dtype.element_ty), mask=m_j[:, None] & m_o[None, :])

    @triton.jit
    def basis_moments_kernel(x, grid, shift, s1, s2, B, N_IN, N_KNOT, NB1, stride_xb, stride_xi,
                             ROWS_PER_SPLIT, K_ORD: tl.constexpr, COMPUTE: tl.constexpr,
                             BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr, WITH_COV: tl.constexpr,
                             MM: tl.constexpr):
        """Shifted sums of input i's features over the rows of split s.

        s1[s, i, c] = sum_b (A[b, (i, c)] - shift[i, c]); with WITH_COV also
        s2[s, i, c, d] = sum_b (A[b, (i, c)] - shift[i, c]) (A[b, (i, d)] - shift[i, d]).
        Padded to BLOCK_C >= K+1 columns. A shift near the mean keeps the fp32 sums free of the
        cancellation that raw second moments would suffer.
        """
        i_in = tl.program_id(0).to(tl.int64)
        i_s = tl.program_id(1).to(tl.int64)
        o_c = tl.arange(0, BLOCK_C)
        m_c = o_c < NB1
        o_j = i_in * NB1 + o_c
        b_shift = tl.load(shift + o_j, mask=m_c, other=0.0).to(COMPUTE)
        b_s1 = tl.full([BLOCK_C], 0.0, dtype=COMPUTE)
        b_s2 = tl.full([BLOCK_C, BLOCK_C], 0.0, dtype=COMPUTE)
        b0 = i_s * ROWS_PER_SPLIT
        for r0 in range(0, ROWS_PER_SPLIT, BLOCK_B):
            o_b = b0 + r0 + tl.arange(0, BLOCK_B)
            m_b = o_b < B
            b_a, _ = _kan_features(x, grid, o_b, m_b, o_j, m_c, stride_xb, stride_xi, N_KNOT, NB1,
                                   K_ORD, COMPUTE)
            b_a = tl.where(m_b[:, None] & m_c[None, :], b_a - b_shift[None, :], 0.0)
            b_s1 += _sum(b_a, 0)
            if WITH_COV:
                b_s2 += _mm(tl.trans(b_a), b_a, "ieee", MM)
        base = i_s * N_IN + i_in
        tl.store(s1 + base * BLOCK_C + o_c, b_s1)
        if WITH_COV:
            p_s2 = s2 + base * BLOCK_C * BLOCK_C + o_c[:, None] * BLOCK_C + o_c[None, :]
            tl.store(p_s2, b_s2)


# ----------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------


def _empty(shape, dtype, device) -> torch.Tensor:
    """Every buffer a launcher allocates goes through here (tests swap in a NaN fill)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _compute_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _precision(x: torch.Tensor, input_precision: str | None) -> str:
    """tf32 for fp32 on GPU unless overridden; exact 'ieee' in the interpreter (tight CPU tests)."""
    if input_precision is not None:
        return input_precision
    return "ieee" if (_INTERPRET or x.dtype != torch.float32) else "tf32"


def _mm_mode(dtype: torch.dtype) -> int:
    """How ``_mm`` multiplies: 2 for float64 (no tl.dot: MMA support for it varies by target and
    this path serves gradcheck), 1 for bf16 in the interpreter, else 0 (native tl.dot)."""
    if dtype == torch.float64:
        return 2
    return 1 if (_INTERPRET and dtype == torch.bfloat16) else 0


# Test-only hook: entries that replace the chosen tiles, per kernel ("fwd", "dx", "dw", "mom"; e.g.
# {"fwd": {"BLOCK_O": 16}}), and "split_blocks": the BLOCK_B blocks per batch split of the dW and
# moment reductions. Small forced tiles and splits make the interpreter run every tile, output-loop
# and split offset at shapes it can afford (tests/test_kernel_bspline.py); the kernels are the same.
_FORCE: dict = {}


def _gpu_tiles(nb1: int) -> dict[str, dict]:
    """fp32 (tf32) and fp16/bf16 tiles on a GPU: one table for every shape and k <= 5 (nb1 = G+k+1).

    Building the basis in registers inside the K loop is what fills the registers: a (BLOCK_B,
    BLOCK_J) tile holds k+2 knots, k+1 indicator/de Boor values and the silu terms per element. With
    4 warps (128 threads) any count up to the 255-register cap still fits 2 blocks per SM (64 K
    registers); the tiles below compile for sm_90 without spilling, where every larger one tried
    spilled or left one block per SM (``bench/gpu_check.py --compile-only`` checks them all):
    registers / stack bytes per thread over k = 1..5, fp32 (tf32) | bf16, G = 5:

    - fwd (64 x 16 basis tile, 128 outputs): 168-251/0 | 168-255/0; the 64 x 32 x 128 tile used
      before spilled (255/8 fp32, 255/104 bf16 at k = 5). 8 warps do not spill either but take
      188-255 registers: one block per SM.
    - dx (32 x 64 basis tile, 64-wide output loop, 2 stages): 168-179/0 | 234-255/0; 64 x 64
      spilled (1336 / 1504 B of stack at k = 5).
    - dW (32 x 32 basis tile, 128 outputs): 180-241/0 | 138-220/0; 64 x 32 x 64 spilled (16 / 144 B).
    - moments (64 rows, 16 columns): 91-176/0 | 64-137/0, as before.

    BLOCK_O does not depend on the shape: at out <= 64 half the output tile is masked, which costs
    MMA issue slots but no bandwidth; per basis element the de Boor triangle takes ~(k+1)(k+2)/2
    CUDA-core steps against BLOCK_O tensor-core MACs, so the build, not the MMA, should bound
    these kernels (unmeasured: no GPU yet). One configuration per (kernel, dtype, k) also keeps the
    first call's compile and CI's check short.
    """
    nb1_pow2 = _next_pow2(nb1)
    return {
        "fwd": dict(BLOCK_B=64, BLOCK_J=16, BLOCK_O=128, num_warps=4, num_stages=3),
        "dx": dict(BLOCK_B=32, BLOCK_J=max(64, nb1_pow2), BLOCK_O=64, num_warps=4, num_stages=2),
        "dw": dict(BLOCK_B=32, BLOCK_J=32, BLOCK_O=128, num_warps=4, num_stages=3),
        "mom": dict(BLOCK_B=64, BLOCK_C=max(16, nb1_pow2), num_warps=4, num_stages=3),
    }


def _tiles(dtype: torch.dtype, n_out: int, nb1: int) -> dict[str, dict]:
    """Launch configuration of each kernel: constexpr block sizes plus num_warps / num_stages.

    Returns {"fwd", "dx", "dw", "mom"} -> kwargs for the launch. tl.dot needs every dim >= 16. The
    interpreter prefers few, large programs; on a GPU see ``_gpu_tiles``. ``_FORCE`` overrides.
    """
    f64 = dtype == torch.float64
    nb1_pow2 = _next_pow2(nb1)
    if _INTERPRET:
        block_o = min(64, max(16, _next_pow2(n_out)))
        cfg = {
            "fwd": dict(BLOCK_B=128, BLOCK_J=64, BLOCK_O=block_o, num_warps=4),
            "dx": dict(BLOCK_B=128, BLOCK_J=max(64, nb1_pow2), BLOCK_O=block_o, num_warps=4),
            "dw": dict(BLOCK_B=128, BLOCK_J=64, BLOCK_O=block_o, num_warps=4),
            "mom": dict(BLOCK_B=128, BLOCK_C=max(16, nb1_pow2), num_warps=4),
        }
    elif f64:
        # Broadcast-and-sum products (no MMA): a (16, 16, 16) product per step keeps registers low.
        cfg = {
            "fwd": dict(BLOCK_B=16, BLOCK_J=16, BLOCK_O=16, num_warps=4),
            "dx": dict(BLOCK_B=16, BLOCK_J=max(16, nb1_pow2), BLOCK_O=16, num_warps=4),
            "dw": dict(BLOCK_B=16, BLOCK_J=16, BLOCK_O=16, num_warps=4),
            "mom": dict(BLOCK_B=16, BLOCK_C=max(16, nb1_pow2), num_warps=4),
        }
    else:
        cfg = _gpu_tiles(nb1)
    for kind, over in _FORCE.items():
        if kind in cfg:
            cfg[kind] = {**cfg[kind], **over}
    dx = cfg["dx"]
    # dx: a column tile of whole inputs, BLOCK_IN * (K+1) <= BLOCK_J.
    dx["BLOCK_IN"] = dx["BLOCK_J"] // nb1
    if dx["BLOCK_IN"] < 1:
        raise ValueError(f"dx tile BLOCK_J = {dx['BLOCK_J']} holds no whole input of K+1 = {nb1} columns")
    return cfg


def _n_splits(rows: int, block_b: int, tiles: int, device: torch.device) -> tuple[int, int]:
    """Batch chunks for the reductions: enough programs to fill a GPU, chunks of whole blocks.

    Returns (n_split, rows_per_split). Fixed by the shapes alone, so results are deterministic.
    """
    n_blocks = triton.cdiv(max(rows, 1), block_b)
    if "split_blocks" in _FORCE:
        blocks_per_split = _FORCE["split_blocks"]
        return triton.cdiv(n_blocks, blocks_per_split), blocks_per_split * block_b
    if _INTERPRET or device.type != "cuda":
        target = 1
    else:
        n_sm = torch.cuda.get_device_properties(device).multi_processor_count
        target = triton.cdiv(4 * n_sm, max(tiles, 1))
    n_split = max(1, min(n_blocks, target))
    blocks_per_split = triton.cdiv(n_blocks, n_split)
    n_split = triton.cdiv(n_blocks, blocks_per_split)
    return n_split, blocks_per_split * block_b


def _check_launch(x: torch.Tensor) -> None:
    if triton is None:
        raise RuntimeError("kanswap.kernels.bspline: triton is not installed; use backend='reference'")
    if _INTERPRET and x.device.type != "cpu":
        raise RuntimeError("the kernels were built for the Triton interpreter (TRITON_INTERPRET=1), "
                           f"which needs CPU tensors; got a tensor on {x.device}")
    if not _INTERPRET and x.device.type != "cuda":
        raise RuntimeError(f"the Triton kernels need CUDA tensors (got {x.device}); to run them on CPU set "
                           "TRITON_INTERPRET=1 before importing kanswap.kernels.bspline")


def _kernel(fn, wrap: bool):
    """The launchable kernel: through ``torch.library.wrap_triton`` inside the registered ops (so
    make_fx / torch.compile can record the launch), the raw kernel for plain eager calls (the
    wrapper's dispatch costs time there). wrap_triton returns interpreted kernels unchanged."""
    return torch.library.wrap_triton(fn) if wrap else fn


def kan_linear_fwd(x: torch.Tensor, grid: torch.Tensor, weight: torch.Tensor, k: int, *,
                   out: torch.Tensor | None = None, input_precision: str | None = None,
                   wrap: bool = False) -> torch.Tensor:
    """y = A(x) @ W: x (B, in), grid (in, G+2k+1), weight (in, K+1, out) -> y (B, out) in x's dtype.

    ``out``: an optional contiguous (B, out) buffer of x's dtype to write into. ``wrap``: launch
    through ``torch.library.wrap_triton`` (set by the registered op ``kanswap::kan_linear_fwd``).
    """
    _check_launch(x)
    B, n_in = x.shape
    n_knot = grid.shape[1]
    nb1, n_out = weight.shape[1], weight.shape[2]
    if out is None:
        out = _empty((B, n_out), x.dtype, x.device)
    elif out.shape != (B, n_out) or out.dtype != x.dtype or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous ({B}, {n_out}) {x.dtype} tensor, got "
                         f"{tuple(out.shape)} {out.dtype}")
    if B == 0 or n_out == 0:
        return out
    if n_in == 0:
        return out.zero_()
    grid, weight = grid.contiguous(), weight.contiguous()
    cfg = _tiles(x.dtype, n_out, nb1)["fwd"]
    launch = (triton.cdiv(B, cfg["BLOCK_B"]), triton.cdiv(n_out, cfg["BLOCK_O"]))
    _kernel(kan_linear_fwd_kernel, wrap)[launch](
        x, grid, weight, out, B, n_in, n_out, n_knot, nb1, x.stride(0), x.stride(1),
        K_ORD=k, COMPUTE=_compute_dtype(x.dtype), PRECISION=_precision(x, input_precision), MM=_mm_mode(x.dtype),
        **cfg)
    return out


def kan_linear_bwd(dy: torch.Tensor, x: torch.Tensor, grid: torch.Tensor, weight: torch.Tensor, k: int, *,
                   need_dx: bool = True, need_dw: bool = True, input_precision: str | None = None,
                   wrap: bool = False) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of y = A(x) @ W: dy (B, out) -> (dx (B, in), dW (in, K+1, out)), None where not needed.

    dW is summed over fixed batch chunks in fp32 (float64 for float64), then cast to W's dtype.
    """
    _check_launch(x)
    B, n_in = x.shape
    n_knot = grid.shape[1]
    nb1, n_out = weight.shape[1], weight.shape[2]
    dy = dy.contiguous()
    grid, weight = grid.contiguous(), weight.contiguous()
    cfgs = _tiles(x.dtype, n_out, nb1)
    common = dict(K_ORD=k, COMPUTE=_compute_dtype(x.dtype), PRECISION=_precision(x, input_precision),
                  MM=_mm_mode(x.dtype))
    dx = dw = None
    if need_dx:
        dx = _empty((B, n_in), x.dtype, x.device)
        if B > 0 and n_in > 0:
            if n_out == 0:
                dx.zero_()
            else:
                cfg = cfgs["dx"]
                launch = (triton.cdiv(B, cfg["BLOCK_B"]), triton.cdiv(n_in, cfg["BLOCK_IN"]))
                _kernel(kan_linear_bwd_dx_kernel, wrap)[launch](
                    dy, x, grid, weight, dx, B, n_in, n_out, n_knot, nb1, x.stride(0), x.stride(1),
                    **common, **cfg)
    if need_dw:
        n_j = n_in * nb1
        if B == 0 or n_j == 0 or n_out == 0:
            dw = torch.zeros_like(weight)
        else:
            cfg = cfgs["dw"]
            tiles = triton.cdiv(n_j, cfg["BLOCK_J"]) * triton.cdiv(n_out, cfg["BLOCK_O"])
            n_split, rows = _n_splits(B, cfg["BLOCK_B"], tiles, x.device)
            acc = torch.float64 if x.dtype == torch.float64 else torch.float32
            dwp = _empty((n_split, n_in, nb1, n_out), acc, x.device)
            launch = (triton.cdiv(n_j, cfg["BLOCK_J"]), triton.cdiv(n_out, cfg["BLOCK_O"]), n_split)
            _kernel(kan_linear_bwd_dw_kernel, wrap)[launch](
                dy, x, grid, dwp, B, n_in, n_out, n_knot, nb1, x.stride(0), x.stride(1), rows,
                **common, **cfg)
            dw = (dwp[0] if n_split == 1 else dwp.sum(0)).to(weight.dtype)
    return dx, dw


def basis_moments_fwd(x: torch.Tensor, grid: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature mean (in, K+1) and sample covariance (in, K+1, K+1) over the batch, as float64.

    Two passes over x, each summing in fp32 per batch chunk (float64 for float64 x); the chunk
    partials are reduced in float64. Pass 1 gives the mean; pass 2 sums products of features
    centred on it, so the covariance has no raw-moment cancellation. Like the reference, the
    covariance divides by max(B - 1, 1) and an empty batch gives a NaN mean and a zero covariance.
    """
    _check_launch(x)
    B, n_in = x.shape
    n_knot = grid.shape[1]
    nb1 = n_knot - k
    if B == 0 or n_in == 0:
        mean = torch.full((n_in, nb1), float("nan"), dtype=torch.float64, device=x.device)
        return mean, torch.zeros((n_in, nb1, nb1), dtype=torch.float64, device=x.device)
    grid = grid.contiguous()
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    cfg = _tiles(x.dtype, 1, nb1)["mom"]
    block_c = cfg["BLOCK_C"]
    n_split, rows = _n_splits(B, cfg["BLOCK_B"], n_in, x.device)
    s1 = _empty((n_split, n_in, block_c), acc, x.device)
    s2 = _empty((n_split, n_in, block_c, block_c), acc, x.device)

    def run(shift: torch.Tensor, with_cov: bool) -> None:
        basis_moments_kernel[(n_in, n_split)](
            x, grid, shift, s1, s2, B, n_in, n_knot, nb1, x.stride(0), x.stride(1), rows,
            K_ORD=k, COMPUTE=_compute_dtype(x.dtype), WITH_COV=with_cov, MM=_mm_mode(x.dtype), **cfg)

    run(torch.zeros((n_in, nb1), dtype=acc, device=x.device), False)
    mean0 = s1.double().sum(0)[:, :nb1] / B
    shift = mean0.to(acc).contiguous()
    run(shift, True)
    d1 = s1.double().sum(0)[:, :nb1]  # sum of (A - shift): small, corrects the rounded shift
    d2 = s2.double().sum(0)[:, :nb1, :nb1]
    mean = shift.double() + d1 / B
    cov = (d2 - d1.unsqueeze(2) * d1.unsqueeze(1) / B) / max(B - 1, 1)
    return mean, cov


# ----------------------------------------------------------------------------------------------
# Autograd
# ----------------------------------------------------------------------------------------------


class FusedKANLinear(torch.autograd.Function):
    """y = A(x) @ W with Triton forward and backward: (x, grid, W, k) -> y (B, out).

    Gradients for x and W; the grid gets None. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, x, grid, weight, k: int, input_precision: str | None = None):
        y = kan_linear_fwd(x, grid, weight, k, input_precision=input_precision)
        ctx.save_for_backward(x, grid, weight)
        ctx.k, ctx.input_precision = k, input_precision
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        x, grid, weight = ctx.saved_tensors
        dx, dw = kan_linear_bwd(dy, x, grid, weight, ctx.k, need_dx=ctx.needs_input_grad[0],
                                need_dw=ctx.needs_input_grad[2], input_precision=ctx.input_precision)
        return dx, None, dw, None, None


# ----------------------------------------------------------------------------------------------
# torch.library operators (torch.compile / export)
# ----------------------------------------------------------------------------------------------
#
# ``kanswap::kan_linear_fwd(x, grid, weight, k, input_precision) -> y`` and
# ``kanswap::kan_linear_bwd(dy, x, grid, weight, k, need_dx, need_dw, input_precision) -> (dx, dw)``
# (an output not asked for is an empty (0,) tensor), with the forward's autograd registered to the
# backward op. Registered by ``_ops()``, called at the end of this module only when triton imported
# (and guarded: a registration failure warns), so importing this module needs neither triton nor a
# GPU. The op kind follows ``_INTERPRET`` at first registration; a later ``importlib.reload`` into
# the other mode keeps the ops already registered (their bodies call the reloaded launchers).
#
# - Compiled kernels (CUDA): ``torch.library.triton_op``. Its body launches the kernels through
#   ``torch.library.wrap_triton`` (the launchers' ``wrap=True``), so torch.compile traces into the
#   launches (Inductor sees the user kernels); the body itself is the fake impl. Checked on fake
#   CUDA tensors only so far (AOTAutograd emits triton_kernel_wrapper_functional nodes); the
#   CUDA tests in tests/test_compile.py run the rest.
# - Interpreter (TRITON_INTERPRET=1, CPU tensors): ``wrap_triton`` returns interpreted kernels
#   unchanged and they cannot run on fake tensors, so triton_op's decomposition cannot trace them.
#   The same body is registered as an opaque ``torch.library.custom_op`` with an explicit fake
#   impl instead: torch.compile keeps it as one node, and ``opcheck`` runs on CPU.
#
# ``kan_linear`` calls the ops only while torch.compile traces (``torch.compiler.is_compiling()``);
# eager calls keep ``FusedKANLinear`` (no custom-op dispatch overhead). Registration cannot run
# inside a trace (Dynamo refuses torch.library internals), hence at import rather than on first
# use. The ops are ``torch.ops.kanswap.kan_linear_fwd`` / ``kan_linear_bwd`` (e.g. for export).

_OPS: tuple | None = None


def _fwd_impl(x: torch.Tensor, grid: torch.Tensor, weight: torch.Tensor, k: int,
              input_precision: str | None = None) -> torch.Tensor:
    return kan_linear_fwd(x, grid, weight, k, input_precision=input_precision, wrap=True)


def _bwd_impl(dy: torch.Tensor, x: torch.Tensor, grid: torch.Tensor, weight: torch.Tensor, k: int,
              need_dx: bool, need_dw: bool, input_precision: str | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    dx, dw = kan_linear_bwd(dy, x, grid, weight, k, need_dx=need_dx, need_dw=need_dw,
                            input_precision=input_precision, wrap=True)
    # A custom op returns tensors, never None: a (0,) placeholder for a gradient not asked for.
    dx = dx if dx is not None else x.new_empty(0)
    dw = dw if dw is not None else weight.new_empty(0)
    return dx, dw


def _fwd_fake(x, grid, weight, k, input_precision=None):
    return x.new_empty((x.shape[0], weight.shape[2]))


def _bwd_fake(dy, x, grid, weight, k, need_dx, need_dw, input_precision=None):
    dx = x.new_empty(x.shape) if need_dx else x.new_empty(0)
    dw = weight.new_empty(weight.shape) if need_dw else weight.new_empty(0)
    return dx, dw


def _setup_context(ctx, inputs, output):
    x, grid, weight, k, input_precision = inputs
    ctx.save_for_backward(x, grid, weight)
    ctx.k, ctx.input_precision = k, input_precision


def _backward(ctx, dy):
    x, grid, weight = ctx.saved_tensors
    need_dx, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
    dx, dw = torch.ops.kanswap.kan_linear_bwd(dy, x, grid, weight, ctx.k, need_dx, need_dw,
                                              ctx.input_precision)
    return (dx if need_dx else None), None, (dw if need_dw else None), None, None


def _ops():
    """Register (once per process) and return (fwd, bwd) as ``torch.ops.kanswap`` overloads.

    Raises RuntimeError without triton. A second registration attempt (e.g. after
    ``importlib.reload`` of this module) reuses the ops already in the dispatcher: their bodies
    look the launchers up in this module's globals at call time, so they run the reloaded ones.
    """
    global _OPS
    if _OPS is not None:
        return _OPS
    if triton is None:
        raise RuntimeError("kanswap.kernels.bspline: triton is not installed; the kanswap ops need it")
    ns = torch.ops.kanswap
    if not (hasattr(ns, "kan_linear_fwd") and hasattr(ns, "kan_linear_bwd")):
        if _INTERPRET:
            fwd = torch.library.custom_op("kanswap::kan_linear_fwd", _fwd_impl, mutates_args=())
            bwd = torch.library.custom_op("kanswap::kan_linear_bwd", _bwd_impl, mutates_args=())
            fwd.register_fake(_fwd_fake)
            bwd.register_fake(_bwd_fake)
        else:
            fwd = torch.library.triton_op("kanswap::kan_linear_fwd", _fwd_impl, mutates_args=())
            bwd = torch.library.triton_op("kanswap::kan_linear_bwd", _bwd_impl, mutates_args=())
        # Not twice differentiable: the backward op has no autograd of its own (an attempt to
        # differentiate it raises).
        fwd.register_autograd(_backward, setup_context=_setup_context)
    _OPS = (ns.kan_linear_fwd.default, ns.kan_linear_bwd.default)
    return _OPS


# ----------------------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------------------


def _validate(name: str, x: torch.Tensor, grid: torch.Tensor, k: int, weight: torch.Tensor | None = None
              ) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
        desc = f"{x.dim()}-D {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: x must be a 2-D floating tensor (batch, in), got {desc}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"{name}: k must be a non-negative int, got {k!r}")
    if grid.dim() != 2 or grid.shape[0] != x.shape[1] or grid.shape[1] < 2 * k + 2:
        raise ValueError(f"{name}: grid must be (in, G+2k+1) with in = {x.shape[1]}, G >= 1, k = {k}; "
                         f"got {tuple(grid.shape)}")
    tensors = {"x": x, "grid": grid}
    names = "x, grid and weight" if weight is not None else "x and grid"
    if weight is not None:
        tensors["weight"] = weight
        nb1 = grid.shape[1] - k
        if weight.dim() != 3 or weight.shape[0] != x.shape[1] or weight.shape[1] != nb1:
            raise ValueError(f"{name}: weight must be (in, G+k+1, out) = ({x.shape[1]}, {nb1}, out) for grid "
                             f"{tuple(grid.shape)} and k = {k}; got {tuple(weight.shape)}")
    dtypes = {n: t.dtype for n, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        got = ", ".join(f"{n} {str(d).replace('torch.', '')}" for n, d in dtypes.items())
        raise TypeError(f"{name}: {names} must share a dtype; got {got}")
    devices = {n: t.device for n, t in tensors.items()}
    if len(set(devices.values())) > 1:
        got = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise ValueError(f"{name}: {names} must be on one device; got {got}")


def _use_triton(name: str, x: torch.Tensor, k: int, base_fun, backend: str) -> bool:
    if backend not in BACKENDS:
        raise ValueError(f"{name}: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "reference":
        return False
    ok_fun = isinstance(base_fun, str) and base_fun == "silu"
    if backend == "auto":
        return (triton is not None and x.is_cuda and not _INTERPRET and ok_fun and 1 <= k <= MAX_K
                and x.dtype in (torch.float16, torch.bfloat16, torch.float32))
    if triton is None:
        raise RuntimeError(f"{name}: backend='triton' needs triton, which is not installed")
    if not ok_fun:
        raise ValueError(f"{name}: backend='triton' supports base_fun='silu' only, got {base_fun!r}")
    if not 1 <= k <= MAX_K:
        raise ValueError(f"{name}: backend='triton' supports k in 1..{MAX_K}, got {k}")
    if x.dtype not in _DTYPES:
        raise TypeError(f"{name}: backend='triton' supports {[str(d) for d in _DTYPES]}, got {x.dtype}")
    _check_launch(x)
    return True


def kan_linear(x: torch.Tensor, grid: torch.Tensor, weight: torch.Tensor, k: int, base_fun="silu",
               backend: str = "auto") -> torch.Tensor:
    """KAN layer y = A(x) @ W: x (B, in), grid (in, G+2k+1), weight (in, G+k+1, out) -> y (B, out).

    backend: "auto" (Triton for CUDA fp16/bf16/fp32 tensors with base_fun "silu" and k in 1..5,
    else the reference), "triton" (force; CPU tensors need TRITON_INTERPRET=1) or "reference"
    (``kanswap.functional.kan_linear_reference``). Differentiable in x and weight.
    """
    _validate("kan_linear", x, grid, k, weight)
    if not _use_triton("kan_linear", x, k, base_fun, backend):
        return _ref.kan_linear_reference(x, grid, weight, k, base_fun)
    if torch.compiler.is_compiling() and _OPS is not None:
        # torch.compile traces the registered op (see the section above); eager keeps the Function.
        return _OPS[0](x, grid, weight, k, None)
    return FusedKANLinear.apply(x, grid, weight, k)


def basis_moments(x: torch.Tensor, grid: torch.Tensor, k: int, base_fun="silu", backend: str = "auto"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-input feature mean (in, K+1) and sample covariance (in, K+1, K+1), float64.

    Same backend rules as ``kan_linear``; the reference is ``kanswap.functional.basis_moments``.
    """
    _validate("basis_moments", x, grid, k)
    if not _use_triton("basis_moments", x, k, base_fun, backend):
        return _ref.basis_moments(x, grid, k, base_fun)
    return basis_moments_fwd(x.detach(), grid.detach(), k)


if triton is not None:
    # Register the ops now (see "torch.library operators"); a failure must not break the import or
    # the eager paths: kan_linear then traces FusedKANLinear under torch.compile instead.
    try:
        _ops()
    except Exception as exc:  # noqa: BLE001
        import warnings

        warnings.warn(f"kanswap.kernels.bspline: could not register the kanswap ops ({exc!r}); "
                      "torch.compile will not see the Triton layer as an op", RuntimeWarning, stacklevel=1)
