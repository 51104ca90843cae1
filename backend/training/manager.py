"""Fine-tune jobs for Label Studio projects, started from their stored corrections.

A job is asked for by Label Studio (`START_TRAINING` webhook, or `POST /train` from older
releases), by the native API, or every `--train-every` annotations. The request is
answered at once: the job is a row in the store (so a restarted server still knows it)
and a separate worker process (`python -m backend.training.worker`) does the work, so
serving never stalls. The server waits on the worker; a worker that dies (a crash, an
out-of-memory kill, `kill -9`) leaves its job `failed` with the reason. One unfinished
job per project is enforced by the store.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import BackendError
from ..serving.image_cache import cache_image
from ..serving.projects import Projects
from ..settings import Settings
from ..store import JobConflict, Store, TrainJob, new_job
from .params import TrainParams
from .capacity import default_train_workers, orphan_reason, pid_alive

__all__ = ["TrainParams", "TrainingManager", "TrainingRefused"]

_log = logging.getLogger("backend.training.manager")


class TrainingRefused(BackendError, status_code=409, code="training_refused"):
    """A training job cannot start here: a CPU server without --allow-cpu-training, or no corrections yet."""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the training worker was killed by {name}"
    return f"the training worker exited with code {code}"


class TrainingManager:
    def __init__(self, settings: Settings, store: Store, projects: Projects, *, device: str) -> None:
        self.settings = settings
        self.store = store
        self.projects = projects
        self.device = device
        self._tasks: dict[str, asyncio.Task] = {}
        self._workers: dict[str, asyncio.subprocess.Process] = {}
        self._last_auto: dict[str, float] = {}
        self.capacity = settings.max_train_workers or default_train_workers(device)
        self._slots: asyncio.Semaphore | None = None  # made in the event loop, on the first job
        self._fail_orphans()

    # -- starting jobs --------------------------------------------------------------

    def check_can_train(self) -> None:
        if self.device.startswith("cpu") and not self.settings.allow_cpu_training:
            raise TrainingRefused(
                "this server runs on CPU, where fine-tuning RAM takes hours: start it with --allow-cpu-training "
                "(RAM_ANNOTATE_ALLOW_CPU_TRAINING=true) to train anyway, or run it on a GPU"
            )

    def start(self, project: str, *, trigger: str, params: dict[str, Any] | None = None,
              ls_access=None, fetcher=None) -> tuple[TrainJob, bool]:
        """Queue a job (or return the project's unfinished one, created=False). Never waits for training."""
        self.check_can_train()
        merged = dict(self.settings.train_params) | {k: v for k, v in (params or {}).items() if v is not None}
        params = TrainParams.model_validate(merged).model_dump(exclude_none=True)
        if not self.store.corrections_since(project, 0.0):
            raise TrainingRefused(f"project {project} has no stored corrections yet: annotate some tasks first "
                                  "(the server receives them through Label Studio's webhook)")
        base = asdict(self.projects.base_engine.config)
        try:
            job = self.store.create_job(new_job(project, trigger, params | self._fixed(base)))
        except JobConflict as conflict:
            if not self.reap(conflict.job):
                return conflict.job, False
            try:  # the stuck job is failed now: this request starts a new one
                job = self.store.create_job(new_job(project, trigger, params | self._fixed(base)))
            except JobConflict as again:
                return again.job, False
        self._tasks[job.id] = asyncio.get_running_loop().create_task(
            self._run(job, ls_access, fetcher), name=f"train-{job.id}"
        )
        return job, True

    def _fixed(self, base: dict[str, Any]) -> dict[str, Any]:
        """Job parameters the server decides: the base model and the promotion evidence rule."""
        return {"base": base, "min_val_images": self.settings.train_min_val_images}

    def note_annotations(self, project: str, *, ls_access=None, fetcher=None) -> TrainJob | None:
        """`--train-every N`: start a job once N annotations arrived since the last one."""
        every = self.settings.train_every
        if not every or self.device.startswith("cpu") and not self.settings.allow_cpu_training:
            return None
        since = self._last_auto.get(project)
        if since is None:
            jobs = self.store.jobs(project=project, limit=1)
            since = jobs[0].created_at if jobs else 0.0
        if self.store.corrections_since(project, since) < every:
            return None
        if self.store.corrections_since(project, 0.0) < self.settings.train_min_corrections:
            return None
        self._last_auto[project] = time.time()
        job, created = self.start(project, trigger="train_every", ls_access=ls_access, fetcher=fetcher)
        return job if created else None

    # -- running them ---------------------------------------------------------------

    async def _cache_missing_images(self, job: TrainJob, ls_access, fetcher) -> None:
        """Corrections whose image the server never fetched (annotated without a prediction) get it now."""
        if fetcher is None or ls_access is None:
            return
        for c in await asyncio.to_thread(self.store.corrections, project=job.project):
            if c.image_path and Path(c.image_path).is_file() or not c.image_ref:
                continue
            try:
                data = await fetcher.fetch(c.image_ref, task_id=c.task_id, ls=ls_access)
            except BackendError as exc:
                _log.warning("job %s: image of annotation %s: %s", job.id, c.annotation_id, exc.message)
                continue
            path = await asyncio.to_thread(cache_image, self.settings.image_cache_dir, data)
            await asyncio.to_thread(self.store.set_image_path, c.annotation_id, str(path))

    async def _run(self, job: TrainJob, ls_access, fetcher) -> None:
        try:
            await self._cache_missing_images(job, ls_access, fetcher)
            work = self.settings.model_dir / "jobs" / job.id
            work.mkdir(parents=True, exist_ok=True)
            if self._slots is None:
                self._slots = asyncio.Semaphore(self.capacity)
            if self._slots.locked():
                _log.info("job %s (project %s) waits queued: %d training worker(s) run, the cap is %d "
                          "(--max-train-workers)", job.id, job.project, self.capacity, self.capacity)
                await asyncio.to_thread(self.store.update_job, job.id, message=(
                    f"queued: waiting for a training slot ({self.capacity} at once, --max-train-workers)"))
            async with self._slots:
                code = await self._run_worker(job, work)
            final = await asyncio.to_thread(self.store.get_job, job.id)
            if final is not None and (decision := _decision(final)) is not None:
                await asyncio.to_thread(self._finish, final, decision)
            elif final is not None and final.active:
                reason = describe_exit(code) if code else "the training worker stopped before finishing the job"
                tail = _log_tail(work / "worker.log")
                await asyncio.to_thread(self.store.update_job, job.id, state="failed",
                                        message=reason + (f": {tail}" if tail and code > 0 else ""))
                _log.warning("job %s (project %s) failed: %s", job.id, job.project, reason)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any fault must end as a failed job, never a stuck one
            _log.exception("job %s could not run", job.id)
            await asyncio.to_thread(self.store.update_job, job.id, state="failed", message=f"{type(exc).__name__}: {exc}")
        finally:
            self._tasks.pop(job.id, None)
            self._workers.pop(job.id, None)

    async def _run_worker(self, job: TrainJob, work: Path) -> int:
        """Start the worker in the slot the caller holds and wait for it to exit."""
        await asyncio.to_thread(self.store.update_job, job.id, started_at=time.time(), message=None)
        log = open(work / "worker.log", "wb")  # noqa: SIM115 - handed to the child
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "backend.training.worker", "--store", self.store.spec, "--job", job.id,
                "--model-dir", str(self.settings.model_dir), "--registry", str(self.settings.registry_root),
                "--heartbeat-s", str(self.settings.train_heartbeat_s),
                stdout=log, stderr=asyncio.subprocess.STDOUT, env=_worker_env(),
            )
        finally:
            log.close()
        self._workers[job.id] = process
        await asyncio.to_thread(self.store.update_job, job.id, pid=process.pid)
        try:
            return await process.wait()
        finally:
            await asyncio.to_thread(self.store.update_job, job.id, finished_at=time.time())

    def reap(self, job: TrainJob) -> bool:
        """Fail `job` if it is unfinished, not this server's, and its worker is gone (True if so).
        A foreign job whose worker finished meanwhile is settled as the worker decided."""
        if not job.active or job.id in self._tasks:
            return False
        if (decision := _decision(job)) is not None:
            self._finish(job, decision)
            return True
        reason = orphan_reason(job, stale_after_s=self.settings.train_stale_after_s)
        if reason is None:
            return False
        self.store.update_job(job.id, state="failed", message=reason)
        _log.warning("job %s (project %s) failed: %s", job.id, job.project, reason)
        return True

    def reap_all(self) -> None:
        """Settle every orphaned job (before answering what the jobs are)."""
        for job in self.store.jobs(limit=1000):
            if job.active:
                self.reap(job)

    def _finish(self, job: TrainJob, decision: str) -> None:
        """The worker registered the model and the registry decided; serve accordingly, then say so."""
        if decision == "promoted":
            settings = self.store.project_settings(job.project)
            if settings.get("serve_base"):  # a rollback to the base model ends with a new promotion
                self.store.set_project_settings(job.project, dict(settings, serve_base=False))
            self.projects.invalidate(job.project)
            _log.info("job %s: project %s now serves %s (%s)", job.id, job.project, job.model_version, job.message)
        else:
            _log.warning("job %s: project %s keeps what it serves; %s was registered, not promoted: %s",
                         job.id, job.project, job.model_version, job.message)
        self.store.update_job(job.id, state=decision)

    def _fail_orphans(self) -> None:
        """Jobs left unfinished by a previous server whose worker is gone."""
        for job in self.store.jobs(limit=1000):
            if job.active and not pid_alive(job.pid):
                if (decision := _decision(job)) is not None:
                    self._finish(job, decision)
                else:
                    self.store.update_job(job.id, state="failed",
                                          message="the server stopped while this job ran; start it again")

    async def aclose(self) -> None:
        """Server shutdown: stop the workers (nobody would collect their result) and say so."""
        for job_id, process in list(self._workers.items()):
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except asyncio.TimeoutError:
                    process.kill()
                    await process.wait()
            job = await asyncio.to_thread(self.store.get_job, job_id)
            if job is not None and job.active and _decision(job) is None:
                await asyncio.to_thread(self.store.update_job, job_id, state="failed",
                                        message="the server stopped during the job; start it again")
        for task in list(self._tasks.values()):
            task.cancel()


def _decision(job: TrainJob) -> str | None:
    decision = (job.progress or {}).get("decision")
    return decision if job.state == "succeeded" and decision in ("promoted", "rejected") else None


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _log_tail(path: Path, chars: int = 600) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-3:])[-chars:]

