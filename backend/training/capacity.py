"""How many training workers may run at once, and when a job's worker is gone.

Every project may ask for a job (one unfinished job per project is the store's rule), so
without a global cap eight projects meant eight fine-tunes fighting over one GPU. The
server runs at most `max_train_workers` workers (default one per GPU, one on CPU); the
other jobs stay `queued`, in the order they were asked for, until a slot frees up.

A worker proves it is alive by its heartbeat (`TrainJob.heartbeat_at`, written by
`backend.training.worker` every `train_heartbeat_s`). A job this server did not start (it
survived a `kill -9` of an earlier server) whose worker process is gone, or whose
heartbeat is older than `train_stale_after_s`, is orphaned: it is marked failed with the
reason, so a new train request starts a new job instead of returning the stuck one.
"""
from __future__ import annotations

import os
import time

from ..store import TrainJob

__all__ = ["default_train_workers", "orphan_reason", "pid_alive"]


def default_train_workers(device: str) -> int:
    """One worker per GPU the server sees (CUDA), one on CPU or another accelerator."""
    if device.startswith("cuda"):
        try:
            import torch

            return max(1, torch.cuda.device_count())
        except Exception:  # noqa: BLE001 - no usable CUDA runtime: one worker
            return 1
    return 1


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphan_reason(job: TrainJob, *, stale_after_s: float, now: float | None = None) -> str | None:
    """Why `job` (unfinished, not started by this server) has no worker any more, or None."""
    if not job.active:
        return None
    now = time.time() if now is None else now
    if job.pid and not pid_alive(job.pid):
        return f"its training worker (pid {job.pid}) is gone; the server that ran it stopped. Start it again"
    last = job.heartbeat_at or job.updated_at
    if now - last > stale_after_s:
        what = "no heartbeat from its training worker" if job.pid else "no training worker picked it up"
        return f"{what} for {now - last:.0f} s (the server that ran it stopped). Start it again"
    return None
