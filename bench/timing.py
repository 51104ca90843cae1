"""The one best-of-N wall-clock timer of the benchmarks that need no torch (speed_common.timed
also synchronises an accelerator and keeps the result)."""
from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["best_time"]


def best_time(call: Callable[[], object], repeats: int = 3) -> float:
    """Fastest of `repeats` runs of `call`, in seconds: the machine is shared, and the minimum is
    the least noisy estimate of what the code itself costs."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)
