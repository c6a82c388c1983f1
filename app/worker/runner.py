"""The worker loop (the parent process): take each pending variant in turn, with its device,
and have it worked in a fresh child; then close the runs it touched.

Rules it keeps (DESIGN.md, "Nothing lost, nothing half-written" and "One process per
variant"):
- a variant is claimed whole by one worker, and a job the same way (app/worker/claims.py),
  so two workers never measure the same variant;
- one worker measures on a device at a time (app/worker/device_lock.py);
- each variant loads, compiles, generates and is timed in a fresh child process
  (app/worker/child_driver.py, app/worker/child.py); a child that dies fails only its
  variant;
- the child writes each image to a temp file and renames it; the parent then commits the
  Generation row and the job's `done` status in one transaction (app/worker/results.py);
- claims of dead workers go back to `pending`, and so do their temp files.

Enqueueing a run is app/worker/enqueue.py. The parent never imports torch: its children do.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import Engine, select, update

from app.db import session_scope
from app.models import Job, JobStatus, Run, RunStatus, Variant, VariantStatus
from app.worker.child_driver import ChildDriver, WorkerReport
from app.worker.claims import Claims, pid_alive, reclaim_stale_jobs
from app.worker.device_lock import DeviceLock
from app.worker.images import remove_orphan_temp_files
from app.worker.results import Results


class Worker:
    """Executes pending jobs, one variant at a time, each in its own child process.

    Construct, then call `work()`. The worker (the parent) claims variants and jobs and
    writes every result to the database; the child (app/worker/child.py) loads and measures.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        media_dir: Path,
        models_dir: Path,
        lease_s: float = 1800.0,
        show_progress: bool = True,
        lock_dir: Path,
        wait_for_device: bool = True,
        cpu_threads: int | None = None,
    ) -> None:
        self.engine = engine
        self.media_dir = media_dir
        self.models_dir = models_dir
        self.lease_s = lease_s
        self.lock_dir = lock_dir
        self.wait_for_device = wait_for_device
        self.cpu_threads = cpu_threads
        self.host = socket.gethostname()
        self.worker_id = f"{self.host}:{os.getpid()}"
        self.progress = Progress(
            TextColumn("[bold]{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            disable=not show_progress,
        )
        self.claims = Claims(engine, self.worker_id, lease_s)
        self.results = Results(engine, self.claims)
        self.driver = ChildDriver(
            engine,
            self.claims,
            self.results,
            self.progress,
            host=self.host,
            media_dir=media_dir,
            models_dir=models_dir,
            cpu_threads=cpu_threads,
        )

    def work(self, run_id: int | None = None, *, retry_failed: bool = False) -> WorkerReport:
        """Run every pending variant (of one run, or of all runs). Returns what was done.

        Raises DeviceBusy if another worker holds the device and wait_for_device is False.
        """
        reclaim_stale_jobs(self.engine, self.lease_s)
        remove_orphan_temp_files(self.media_dir, pid_alive)
        if retry_failed:
            self._reset_failed(run_id)
        report = WorkerReport()
        with self.progress:
            while (candidate := self.claims.next_variant(run_id)) is not None:
                variant_id, device = candidate
                # The device first, then the claim: a worker waiting for the device holds no
                # variant that a worker on another device could run meanwhile.
                with DeviceLock(
                    self.lock_dir, device, wait=self.wait_for_device, on_wait=self._say
                ) as lock:
                    if self.claims.claim_variant(variant_id):
                        self.driver.work_variant(variant_id, lock.key, report)
        for rid in self._touched_runs(run_id):
            self.results.finish_run(rid)
        return report

    def _say(self, message: str) -> None:
        self.progress.console.print(f"[yellow]{message}", highlight=False)

    def _touched_runs(self, run_id: int | None) -> list[int]:
        with session_scope(self.engine) as session:
            if run_id is not None:
                return [run_id]
            return list(session.scalars(select(Run.id).where(Run.status != RunStatus.done)))

    def _reset_failed(self, run_id: int | None) -> None:
        with session_scope(self.engine) as session:
            variants = update(Variant).where(Variant.status == VariantStatus.failed)
            jobs = update(Job).where(Job.status == JobStatus.failed)
            if run_id is not None:
                variants = variants.where(Variant.run_id == run_id)
                jobs = jobs.where(Job.run_id == run_id)
            session.execute(variants.values(status=VariantStatus.pending, error=None))
            session.execute(jobs.values(status=JobStatus.pending, error=None))
