"""Intra-op thread count for a fit, chosen from the work per closure call.

Small closures are hundreds of tiny ops; on OpenMP threads that must all wake up for each op they
collapse when another process keeps a core busy (a [2,5,1] KAN on 1000 samples went from 2.4 ms to
170 ms per closure with torch's 2 threads on a 2-core machine with one busy process, and the
reference fit from 1.5 s to 5.4 s). One thread loses little on them when idle; large closures
(GEMMs of millions of multiply-adds) still get the caller's threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["fit_threads", "threads"]

# Work per closure call (samples x trainable parameters) below which a fit runs on one thread. Set
# between the sizes the fit targets name: the reference KAN (409 x 1.7e3 = 7e5) and [100,10,10,1] on
# 1000 samples (1e3 x 1.3e4 = 1.3e7) are closures of small ops, one thread; [16,64,64,4] on 2048
# samples (2048 x 6e4 = 1.2e8) is GEMM-bound and keeps the caller's threads. Not tuned finer: the
# development machine was shared (load average ~10 on 2 cores) while this was written.
ONE_THREAD_BELOW = 5e7


def fit_threads(samples: int, n_params: int) -> int:
    """Threads for a closure over ``samples`` rows and ``n_params`` parameters: 1 below
    ``ONE_THREAD_BELOW`` multiply-adds, else torch's current setting."""
    return 1 if samples * n_params < ONE_THREAD_BELOW else torch.get_num_threads()


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``; the caller's setting comes back afterwards."""
    old = torch.get_num_threads()
    if n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)
