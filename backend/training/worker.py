"""The training worker: `python -m backend.training.worker --store SPEC --job ID ...`.

Runs one job in its own process (the server never trains in its serving process):
export the project's corrections from the store as the official finetune JSON with the
cached images, fine-tune (`ram_model.finetune`), register the result in the project's
registry and promote it only if it beats the active version on its held-out split (the
registry's rule). State and progress go to the store as they change; anything that
goes wrong ends the job `failed` with the reason.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["main"]

_MIN_ENTRIES = 4


def _progress_writer(store, job_id: str, every_s: float = 1.0):
    last = [0.0]

    def progress(event: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or event.get("phase") == "eval":
            last[0] = now
            store.update_job(job_id, progress={k: v for k, v in event.items() if isinstance(v, (int, float, str))})

    return progress


def _heartbeat(store, job_id: str, every_s: float):
    """Write `heartbeat_at` now and every `every_s` until the returned function is called:
    the server tells a live worker from a dead one by it (backend.training.capacity)."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                store.update_job(job_id, heartbeat_at=time.time())
            except Exception:  # noqa: BLE001 - a missed beat is retried; the job's own errors are reported
                traceback.print_exc()
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=10)

    return halt


def run_job(store, job_id: str, model_dir: Path, registry_root: Path) -> str:
    # Only what checking the corrections needs comes first: a job refused for too few
    # corrections ends before torch is imported.
    from .export import finetune_entries
    from ..store import ModelRecord

    job = store.get_job(job_id)
    if job is None:
        raise SystemExit(f"no job {job_id} in the store")
    store.update_job(job_id, state="running", pid=os.getpid(), progress={"phase": "export"})
    work = model_dir / "jobs" / job_id
    work.mkdir(parents=True, exist_ok=True)
    image_root = model_dir / "images"
    entries, summary = finetune_entries(store, job.project, image_root=image_root)
    if len(entries) < _MIN_ENTRIES:
        raise RuntimeError(
            f"only {len(entries)} correction(s) with a cached image and a RAM-mapped label "
            f"(at least {_MIN_ENTRIES} needed; skipped: {summary.skipped[:5]})"
        )
    from ram_model import EngineConfig
    from ram_model.finetune import FinetuneConfig, finetune
    from ram_model.option import option_values
    from ram_model.weights.registry import ModelRegistry
    from ram_model.review import atomic_write_json

    from .params import registry_name

    data = atomic_write_json(work / "finetune.json", entries, indent=None)
    params = dict(job.params)
    base = EngineConfig(**params.pop("base"))
    min_val_images = int(params.pop("min_val_images", 1))
    threads = params.pop("threads", None)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    training = option_values(FinetuneConfig, params, given_only=True, by_name=True)  # the TrainParams a job was given
    config = FinetuneConfig(
        data=(str(data),), image_root=str(image_root), base=base, output=str(work / "run"),
        device=base.device, precision=base.precision if base.precision in ("auto", "fp32", "bf16") else "auto",
        **{**training, "num_workers": 0},
    )
    result = finetune(config, progress=_progress_writer(store, job_id))
    store.update_job(job_id, state="succeeded", metrics=result.metrics, model_version=result.model_version,
                     progress={"phase": "register"})
    registry = ModelRegistry(registry_root)
    name = registry_name(job.project)
    version = registry.register(name, result.output_dir)
    outcome = registry.promote(name, version.version, min_val_images=min_val_images)
    store.record_model(ModelRecord(
        job.project, version.version, result.model_version, str(version.path), result.metrics, job_id,
        outcome.promoted, outcome.reason, time.time(),
    ))
    # The server makes the decision visible (state promoted/rejected) once it serves accordingly.
    decision = "promoted" if outcome.promoted else "rejected"
    store.update_job(job_id, message=outcome.reason, progress={"phase": "done", "decision": decision})
    return decision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.training.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--registry", required=True, type=Path)
    parser.add_argument("--heartbeat-s", type=float, default=10.0, help="seconds between signs of life")
    args = parser.parse_args(argv)

    from ..store import open_store

    store = open_store(args.store)
    beating = _heartbeat(store, args.job, args.heartbeat_s)
    try:
        state = run_job(store, args.job, args.model_dir, args.registry)
        print(f"job {args.job}: {state}", flush=True)
        return 0
    except BaseException as exc:  # noqa: BLE001 - the job must end failed with the reason
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        try:
            store.update_job(args.job, state="failed", message=message)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
        return 1
    finally:
        beating()
        store.close()


if __name__ == "__main__":
    sys.exit(main())
