"""What bench_train.py and bench_lm.py share: the machine's GEMM peak, useful FLOPs, the family line,
and where a batched step's time goes (torch.profiler).

The family line (one per student family, `make bench`):

    K=10 seeds in one batch, <family>: <ratio>x the one-seed loop, <pct>% of the GEMM peak; per-seed metrics equal: True

ratio: wall time of one `train` per seed over the K seeds trained as one computation, both in this
run. pct: the batched run's useful FLOPs per second (the students' forward and backward matmuls,
convolutions and attention, counted from the shapes with torch.utils.flop_counter on one one-seed
step, times K and the number of steps) over the GEMM peak: a 1024 x 1024 @ 1024 x 1024 fp32
matmul timed in the same run at the same thread count.
"""

from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def gemm_peak(n: int = 1024, reps: int = 10) -> float:
    """FLOP/s of an n x n @ n x n fp32 matmul at the current thread count (best of `reps`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def count_flops(fn) -> int:
    """FLOPs of the matmuls, convolutions and attention that fn() runs (forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def family_line(k: int, family: str, ratio: float, pct: float, equal: bool) -> str:
    return (f"K={k} seeds in one batch, {family}: {ratio:.1f}x the one-seed loop, {pct:.0f}% of the GEMM peak; "
            f"per-seed metrics equal: {equal}")


def where_time_goes(fn, top: int = 6, what: str = "") -> str:
    """One line: the shares of fn()'s CPU time by op (self time), and the optimiser's share (inclusive)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    optim = sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.step"))
    ops = sorted((e for e in events if not e.key.startswith(("Optimizer", "ProfilerStep"))),
                 key=lambda e: -e.self_cpu_time_total)[:top]
    shares = ", ".join(f"{e.key.removeprefix('aten::')} {100 * e.self_cpu_time_total / total:.0f} %" for e in ops)
    return f"  where the batched time goes (torch.profiler, self CPU time{what}): optimizer step {100 * optim / total:.0f} % in all; {shares}"
