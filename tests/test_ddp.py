"""A KAN trained under DistributedDataParallel (gloo, 2 CPU processes) equals single-process
training on the global batch.

Each rank takes half of a global batch of N rows. The local loss is ``sum_local(err) * W / N``
(W = world size): DDP averages gradients over the W ranks, so the synchronised gradient is
``(1/W) sum_r W/N sum_local_r = (1/N) sum_all``, the gradient of the full-batch mean loss. (A local
``sum / N`` would come out W times too small after DDP's averaging.)

Checked: after one backward the gradients on both ranks equal the single-process full-batch
gradients within 1e-6, and after two Adam steps the parameters still agree within 1e-6.

The model is KAN's default (save_act=True: forward records statistics and keeps cache_data).
Every parameter that requires grad (coef, scale_base, scale_sp per layer) reaches the loss; the
node/subnode affine and symbolic_fun parameters have requires_grad=False, which DDP ignores, so
``find_unused_parameters`` is not needed.
"""

from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WIDTH = [4, 5, 2]
N_GLOBAL = 16
WORLD = 2
STEPS = 2
TOL = 1e-6
TIMEOUT_S = 120


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    x = torch.rand(N_GLOBAL, WIDTH[0], generator=g) * 2 - 1
    y = torch.randn(N_GLOBAL, WIDTH[-1], generator=g)
    return x, y


def _model():
    from kanswap.kan import KAN

    return KAN(width=WIDTH, grid=3, k=3, seed=0)


def _loss(out: torch.Tensor, y: torch.Tensor, world: int) -> torch.Tensor:
    """Sum over the rows given, scaled so DDP's gradient average is the global mean's gradient."""
    return (out - y).pow(2).sum() * world / N_GLOBAL


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _train(model, forward, x, y, world: int):
    """STEPS Adam steps; returns the first step's gradients and the final parameters."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    first = None
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        _loss(forward(x), y, world).backward()
        if first is None:
            first = _grads(model)
        opt.step()
    return first, _params(model)


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """One DDP rank (module level so that spawn can pickle it)."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = _model()
        ddp = DDP(model)
        x, y = _data()
        rows = slice(rank * N_GLOBAL // world, (rank + 1) * N_GLOBAL // world)
        grads, params = _train(model, ddp, x[rows], y[rows], world)
        # The forward's records are the local batch's.
        assert model.cache_data.shape == (N_GLOBAL // world, WIDTH[0])
        torch.save({"grads": grads, "params": params}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_matches_single_process(tmp_path):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    ctx = mp.spawn(_worker, args=(WORLD, _free_port(), str(tmp_path)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=max(1.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                pytest.fail(f"DDP workers did not finish within {TIMEOUT_S} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()
                p.join(5)

    model = _model()
    x, y = _data()
    ref_grads, ref_params = _train(model, model, x, y, 1)
    assert set(ref_grads) == {f"act_fun.{l}.{n}" for l in range(len(WIDTH) - 1)
                              for n in ("coef", "scale_base", "scale_sp")}
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for what, ref in (("grads", ref_grads), ("params", ref_params)):
            assert got[what].keys() == ref.keys()
            for name in ref:
                err = (got[what][name] - ref[name]).abs().max().item()
                assert err <= TOL, f"rank {rank} {what} {name}: differs from single-process by {err:.3g}"
