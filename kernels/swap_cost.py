"""Triton kernels for the placement cost of one hidden node layer and every neuron's best swap partner.

Shapes (see :mod:`kanswap.swap`): incoming scores ``a_in`` ``(n_prev, n)``, outgoing scores ``b_out``
``(n, n_next)``; positions ``x_a = (a+1/2)/n_prev``, ``y_p = (p+1/2)/n``, ``z_b = (b+1/2)/n_next``.

* ``_swap_cost_m_kernel``: ``M[i, p] = sum_a |x_a - y_p| a_in[a, i] + sum_b |y_p - z_b| b_out[i, b]``.
  The distances are built in registers from index arithmetic (no distance matrix in memory) and
  contracted with ``tl.dot`` in IEEE fp32. Grid ``(cdiv(n, BI), cdiv(n, BP))``.
* ``_swap_cost_partner_kernel``: per row ``i``, ``min_j delta(i, j)`` with
  ``delta(i, j) = M[i, j] + M[j, i] - M[i, i] - M[j, j]``, and the lowest ``j`` attaining it.
  Needs the whole of ``M``, hence a second launch. Grid ``(cdiv(n, BI),)``.

Everything accumulates in fp32; no atomics, so results are deterministic.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only without triton
    triton = None
    tl = None

__all__ = ["swap_cost_fwd", "placement_cost_and_partners"]

# Launch configuration, compiled for sm_90 by ``bench/gpu_check.py --compile-only``: the M kernel's
# IEEE fp32 tl.dot is an FMA loop holding both operand tiles in registers, 255 registers and 8 B of
# spill at BK = 32, 128 registers and none at BK = 16. The partner kernel spilled 4 B at 80 registers
# with 4 warps (ptxas' choice, not pressure); 8 warps take 61 and spill nothing.
BLOCK_I = BLOCK_P = 32
BLOCK_K = 16
M_WARPS, PARTNER_WARPS = 4, 8


if triton is not None:

    @triton.jit
    def _swap_cost_m_kernel(
        a,
        b,
        m,
        n_prev,
        n,
        n_next,
        s_a0,
        s_a1,
        s_b0,
        s_b1,
        BI: tl.constexpr,
        BP: tl.constexpr,
        BK: tl.constexpr,
    ):
        i_i = tl.program_id(0).to(tl.int64)
        i_p = tl.program_id(1).to(tl.int64)
        o_i = i_i * BI + tl.arange(0, BI)
        o_p = i_p * BP + tl.arange(0, BP)
        m_i = o_i < n
        m_p = o_p < n
        # positions of this layer's slots, (BP,)
        b_y = (o_p.to(tl.float32) + 0.5) / n
        b_acc = tl.zeros([BI, BP], dtype=tl.float32)
        # incoming edges: sum_a a_in[a, i] * |x_a - y_p|
        for k0 in range(0, n_prev, BK):
            o_k = k0 + tl.arange(0, BK)
            m_k = o_k < n_prev
            p_a = a + o_i[:, None] * s_a1 + o_k[None, :] * s_a0
            b_a = tl.load(p_a, mask=m_i[:, None] & m_k[None, :], other=0.0).to(tl.float32)
            b_x = (o_k.to(tl.float32) + 0.5) / n_prev
            b_d = tl.abs(b_x[:, None] - b_y[None, :])
            b_acc += tl.dot(b_a, b_d, input_precision="ieee")
        # outgoing edges: sum_b b_out[i, b] * |y_p - z_b|
        for k0 in range(0, n_next, BK):
            o_k = k0 + tl.arange(0, BK)
            m_k = o_k < n_next
            p_b = b + o_i[:, None] * s_b0 + o_k[None, :] * s_b1
            b_b = tl.load(p_b, mask=m_i[:, None] & m_k[None, :], other=0.0).to(tl.float32)
            b_z = (o_k.to(tl.float32) + 0.5) / n_next
            b_d = tl.abs(b_z[:, None] - b_y[None, :])
            b_acc += tl.dot(b_b, b_d, input_precision="ieee")
        p_m = m + o_i[:, None] * n + o_p[None, :]
        tl.store(p_m, b_acc, mask=m_i[:, None] & m_p[None, :])

    @triton.jit
    def _swap_cost_partner_kernel(
        m,
        dmin,
        amin,
        n,
        BI: tl.constexpr,
        BJ: tl.constexpr,
    ):
        i_i = tl.program_id(0).to(tl.int64)
        o_i = i_i * BI + tl.arange(0, BI)
        m_i = o_i < n
        b_mii = tl.load(m + o_i * (n + 1), mask=m_i, other=0.0)
        b_best = tl.full([BI], float("inf"), dtype=tl.float32)
        b_arg = tl.zeros([BI], dtype=tl.int64)
        for j0 in range(0, n, BJ):
            o_j = j0 + tl.arange(0, BJ).to(tl.int64)
            m_j = o_j < n
            m_ij = m_i[:, None] & m_j[None, :]
            b_mij = tl.load(m + o_i[:, None] * n + o_j[None, :], mask=m_ij, other=0.0)
            b_mji = tl.load(m + o_j[None, :] * n + o_i[:, None], mask=m_ij, other=0.0)
            b_mjj = tl.load(m + o_j * (n + 1), mask=m_j, other=0.0)
            # same operation order as the reference: exactly 0 for j == i
            b_d = (b_mij + b_mji) - b_mii[:, None] - b_mjj[None, :]
            b_d = tl.where(m_j[None, :], b_d, float("inf"))
            b_dblk, b_ablk = tl.min(b_d, axis=1, return_indices=True, return_indices_tie_break_left=True)
            # strict '<': an earlier block keeps ties, so the lowest j wins overall
            m_upd = b_dblk < b_best
            b_best = tl.where(m_upd, b_dblk, b_best)
            b_arg = tl.where(m_upd, b_ablk.to(tl.int64) + j0, b_arg)
        tl.store(dmin + o_i, b_best, mask=m_i)
        tl.store(amin + o_i, b_arg, mask=m_i)


def swap_cost_fwd(
    a_in: Tensor,
    b_out: Tensor,
    out: tuple[Tensor, Tensor, Tensor] | None = None,
    block_i: int = BLOCK_I,
    block_p: int = BLOCK_P,
    block_k: int = BLOCK_K,
) -> tuple[Tensor, Tensor, Tensor]:
    """Launch the two kernels.

    Args:
        a_in: incoming scores, ``(n_prev, n)``, float16/bfloat16/float32/float64, any strides.
        b_out: outgoing scores, ``(n, n_next)``, same device.
        out: optional preallocated ``(m, delta_min, argmin)``: contiguous float32 ``(n, n)``, float32
            ``(n,)`` and int64 ``(n,)`` on the same device (tests pre-fill them to catch unwritten
            elements).
        block_i, block_p, block_k: tile sizes (powers of two, ``>= 16`` for ``tl.dot``).

    Returns:
        ``(m, delta_min, argmin)``: float32 ``(n, n)`` placement cost, float32 ``(n,)`` best swap delta
        per neuron (``<= 0``) and int64 ``(n,)`` lowest partner index attaining it.
    """
    if triton is None:
        raise RuntimeError("swap_cost_fwd needs triton; use kanswap.swap for the PyTorch reference")
    if a_in.dim() != 2 or b_out.dim() != 2 or a_in.shape[1] != b_out.shape[0]:
        raise ValueError(
            f"expected a_in (n_prev, n) and b_out (n, n_next), got {tuple(a_in.shape)} and {tuple(b_out.shape)}"
        )
    if a_in.device != b_out.device:
        raise ValueError(f"a_in is on {a_in.device} but b_out is on {b_out.device}")
    if not (a_in.is_floating_point() and b_out.is_floating_point()):
        raise ValueError(f"scores must be floating point, got {a_in.dtype} and {b_out.dtype}")
    n_prev, n = a_in.shape
    n_next = b_out.shape[1]
    if n == 0:
        raise ValueError("the hidden layer must have at least one neuron")
    dev = a_in.device
    if out is None:
        m = torch.empty((n, n), dtype=torch.float32, device=dev)
        dmin = torch.empty((n,), dtype=torch.float32, device=dev)
        amin = torch.empty((n,), dtype=torch.int64, device=dev)
    else:
        m, dmin, amin = out
        if (
            m.shape != (n, n)
            or not m.is_contiguous()
            or m.dtype != torch.float32
            or dmin.shape != (n,)
            or dmin.dtype != torch.float32
            or amin.shape != (n,)
            or amin.dtype != torch.int64
        ):
            raise ValueError("out must be (float32 (n, n) contiguous, float32 (n,), int64 (n,))")
    grid_m = (triton.cdiv(n, block_i), triton.cdiv(n, block_p))
    _swap_cost_m_kernel[grid_m](
        a_in,
        b_out,
        m,
        n_prev,
        n,
        n_next,
        a_in.stride(0),
        a_in.stride(1),
        b_out.stride(0),
        b_out.stride(1),
        BI=block_i,
        BP=block_p,
        BK=block_k,
        num_warps=M_WARPS,
    )
    _swap_cost_partner_kernel[(triton.cdiv(n, block_i),)](m, dmin, amin, n, BI=block_i, BJ=block_p,
                                                           num_warps=PARTNER_WARPS)
    return m, dmin, amin


def placement_cost_and_partners(a_in: Tensor, b_out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(M, delta_min, argmin)`` of one hidden layer: Triton on CUDA tensors, PyTorch reference otherwise.

    Args:
        a_in: incoming scores ``S_{l-1}^T``, shape ``(n_prev, n)``, non-negative.
        b_out: outgoing scores ``S_l^T``, shape ``(n, n_next)``, non-negative.

    Returns:
        ``M`` ``(n, n)``, ``delta_min`` ``(n,)`` and ``argmin`` ``(n,)`` as in
        :func:`kanswap.placement.placement_cost` and :func:`kanswap.placement.best_partners` (float32 from the
        kernel; the reference keeps the input dtype).
    """
    from kanswap import placement

    if triton is not None and a_in.is_cuda and b_out.is_cuda:
        placement.check_pair(a_in, b_out)
        return swap_cost_fwd(a_in, b_out)
    m = placement.placement_cost(a_in, b_out)
    delta_min, argmin = placement.best_partners(m)
    return m, delta_min, argmin
