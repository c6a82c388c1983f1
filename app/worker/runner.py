"""The worker's parent process: claim variants and jobs, drive one child per variant, store
every result, resume after a kill.

Rules it keeps (DESIGN.md, "Nothing lost, nothing half-written" and "One process per
variant"):
- a variant is claimed whole by one worker (conditional UPDATE, then a heartbeat while its
  child works), so two workers never measure the same variant; a job is claimed the same way;
- one worker measures on a device at a time (app/worker/device_lock.py);
- each variant loads, compiles, generates and is timed in a fresh child process
  (app/worker/isolate.py, app/worker/child.py); a child that dies fails only its variant;
- the child writes each image to a temp file and renames it; the parent then commits the
  Generation row and the job's `done` status in one transaction;
- claims of dead workers (same host: pid gone; other host: silent longer than the lease) go
  back to `pending`, and so do their temp files.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple, TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import Engine, Update, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.bench import benchmark as bm
from app.bench.prompts import PromptRow
from app.config import torch_threads
from app.db import session_scope
from app.models import (
    Generation,
    Job,
    JobStatus,
    Prompt,
    Run,
    RunStatus,
    SeriesStatus,
    ShapeSeries,
    TimingSummary,
    Variant,
    VariantStatus,
    utcnow,
)
from app.worker.device_lock import DeviceLock
from app.worker.images import remove_orphan_temp_files
from app.worker.isolate import (
    ChildDied,
    ChildFailed,
    FirstCall,
    ImageDone,
    JobDidNotFit,
    JobOrder,
    Loaded,
    OutOfMemory,
    PhaseReport,
    SeriesDone,
    SeriesOrder,
    VariantProcess,
    VariantTask,
)
from app.worker.stats import LatencyStats

T = TypeVar("T")


def enqueue_run(engine: Engine, bench: bm.Benchmark, prompts: list[PromptRow]) -> int:
    """Create the run, its variants, prompts and jobs; or find the run this config made before.

    The run is identified by the benchmark's name and the fingerprint of its resolved
    settings, so rerunning the same config resumes it and a changed config starts a new run.
    """
    fingerprint = bm_fingerprint(bench, prompts)
    with session_scope(engine) as session:
        existing = session.scalar(
            select(Run.id).where(Run.name == bench.name, Run.fingerprint == fingerprint)
        )
        if existing is not None:
            # Neither the price nor the arena's settings are part of the fingerprint: a new
            # price applies to old timings; `blind = true` added later hides an unpublished
            # run's images; `arena = "panels"` makes it a panel study from now on.
            session.execute(
                update(Run)
                .where(Run.id == existing)
                .values(usd_per_hour=bench.usd_per_hour, blind=bench.blind, arena=bench.arena)
            )
            return existing
    try:
        with session_scope(engine) as session:
            return _create_run(session, bench, prompts, fingerprint)
    except IntegrityError:
        # Another process created the same run between our look-up and our insert.
        with session_scope(engine) as session:
            return session.scalar(
                select(Run.id).where(Run.name == bench.name, Run.fingerprint == fingerprint)
            )  # type: ignore[return-value]


def bm_fingerprint(bench: bm.Benchmark, prompts: list[PromptRow]) -> str:
    """The config's fingerprint extended with the prompts themselves (the file may change)."""
    digest = hashlib.sha256(bench.fingerprint().encode())
    for row in prompts:
        digest.update(f"{row.text}\t{row.category}\t{row.challenge}\n".encode())
    return digest.hexdigest()[:16]


def _create_run(
    session: Session, bench: bm.Benchmark, prompts: list[PromptRow], fingerprint: str
) -> int:
    run = Run(
        name=bench.name,
        description=bench.description,
        fingerprint=fingerprint,
        config_path=str(bench.config_path),
        config=bench.model_dump(mode="json"),
        prompt_set=bench.prompts_path.name,
        width=bench.width,
        height=bench.height,
        device=bench.device,
        hardware=bench.hardware,
        usd_per_hour=bench.usd_per_hour,
        warmup=bench.warmup,
        repeats=bench.repeats,
        blind=bench.blind,
        arena=bench.arena,
        status=RunStatus.pending,
        environment={},
    )
    session.add(run)
    variants: dict[str, Variant] = {}
    for position, spec in enumerate(bench.variants):
        variant = Variant(
            name=spec.name,
            position=position,
            config=spec.model_dump(mode="json"),
            status=VariantStatus.pending,
            environment={},
        )
        run.variants.append(variant)
        variants[spec.name] = variant
    for spec in bench.variants:
        if spec.base is not None:
            variants[spec.name].reference = variants[spec.base]
    for position, row in enumerate(prompts):
        run.prompts.append(
            Prompt(
                position=position,
                text=row.text,
                category=row.category,
                challenge=row.challenge,
                note=row.note,
            )
        )
    session.flush()
    # Size by size: a variant's child makes one size's images one after another.
    session.add_all(
        Job(
            run_id=run.id,
            variant_id=variant.id,
            prompt_id=prompt.id,
            seed=seed,
            width=size.width,
            height=size.height,
            status=JobStatus.pending,
            attempts=0,
        )
        for spec, variant in zip(bench.variants, run.variants, strict=True)
        for size in bench.sizes_of(spec)
        for prompt in bench.prompts_at(size, run.prompts)
        for seed in bench.seeds
    )
    return run.id


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim_is_dead(worker: str | None, last_seen: datetime | None, cutoff: datetime) -> bool:
    """A claim's holder ("host:pid") is dead: on this host its pid is gone; elsewhere it has
    not been heard of since `cutoff`. A claim with no holder or no time is dead too (left by
    a version that did not record them)."""
    worker_host, _, pid = (worker or "").rpartition(":")
    if worker_host == socket.gethostname() and pid.isdigit():
        return not _pid_alive(int(pid))
    if worker is None or last_seen is None:
        return True
    seen = last_seen if last_seen.tzinfo else last_seen.replace(tzinfo=UTC)
    return seen < cutoff


def reclaim_stale_jobs(engine: Engine, lease_s: float) -> int:
    """Put jobs of dead workers back to pending. Returns how many."""
    cutoff = utcnow() - timedelta(seconds=lease_s)
    with session_scope(engine) as session:
        stale = [
            job_id
            for job_id, worker, claimed_at in session.execute(
                select(Job.id, Job.worker, Job.claimed_at).where(Job.status == JobStatus.running)
            )
            if _claim_is_dead(worker, claimed_at, cutoff)
        ]
        if stale:
            session.execute(
                update(Job)
                .where(Job.id.in_(stale), Job.status == JobStatus.running)
                .values(status=JobStatus.pending, worker=None, claimed_at=None)
            )
    return len(stale)


def reclaim_stale_variants(engine: Engine, lease_s: float) -> int:
    """Put variants claimed by dead workers back to pending. Returns how many.

    A worker renews its claim's heartbeat while its child works, so a long load or compile
    on another host is not mistaken for a dead worker.
    """
    cutoff = utcnow() - timedelta(seconds=lease_s)
    with session_scope(engine) as session:
        stale = [
            variant_id
            for variant_id, worker, heartbeat_at in session.execute(
                select(Variant.id, Variant.worker, Variant.heartbeat_at).where(
                    Variant.status == VariantStatus.running
                )
            )
            if _claim_is_dead(worker, heartbeat_at, cutoff)
        ]
        if stale:
            session.execute(
                update(Variant)
                .where(Variant.id.in_(stale), Variant.status == VariantStatus.running)
                .values(status=VariantStatus.pending, worker=None)
            )
    return len(stale)


@dataclass
class WorkerReport:
    generated: int = 0
    variants_done: list[str] = field(default_factory=list)
    variants_failed: dict[str, str] = field(default_factory=dict)
    # The child process each variant ran in ("host:pid").
    processes: dict[str, str] = field(default_factory=dict)


class Claim(NamedTuple):
    job_id: int
    run_id: int
    prompt_id: int
    seed: int
    width: int
    height: int


class VariantFailed(RuntimeError):
    """The variant's child reported a failure or died; `str(err)` is the reason."""


@dataclass(frozen=True)
class VariantPlan:
    """What the parent knows of a claimed variant before its child starts."""

    task: VariantTask
    spec: bm.Variant
    run_id: int
    prompt_texts: dict[int, str]
    total_jobs: int
    done_jobs: int
    batch_sizes: list[int]
    series_prompt_ids: list[int]  # the series' prompts, in order (batch b uses the first b)


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

    def work(self, run_id: int | None = None, *, retry_failed: bool = False) -> WorkerReport:
        """Run every pending variant (of one run, or of all runs). Returns what was done.

        Raises DeviceBusy if another worker holds the device and wait_for_device is False.
        """
        reclaim_stale_jobs(self.engine, self.lease_s)
        remove_orphan_temp_files(self.media_dir, _pid_alive)
        if retry_failed:
            self._reset_failed(run_id)
        report = WorkerReport()
        with self.progress:
            while (candidate := self._next_variant(run_id)) is not None:
                variant_id, device = candidate
                # The device first, then the claim: a worker waiting for the device holds no
                # variant that a worker on another device could run meanwhile.
                with DeviceLock(
                    self.lock_dir, device, wait=self.wait_for_device, on_wait=self._say
                ) as lock:
                    if self._claim_variant(variant_id):
                        self._work_variant(variant_id, lock.key, report)
        for rid in self._touched_runs(run_id):
            self._finish_run(rid)
        return report

    def _say(self, message: str) -> None:
        self.progress.console.print(f"[yellow]{message}", highlight=False)

    # -- selection and claims ---------------------------------------------------------------

    def _next_variant(self, run_id: int | None) -> tuple[int, str] | None:
        """The first pending variant and its run's device, after freeing dead workers' claims."""
        reclaim_stale_variants(self.engine, self.lease_s)
        with session_scope(self.engine) as session:
            query = (
                select(Variant.id, Run.device)
                .join(Run)
                .where(Variant.status == VariantStatus.pending)
                .order_by(Run.id, Variant.position)
                .limit(1)
            )
            if run_id is not None:
                query = query.where(Variant.run_id == run_id)
            row = session.execute(query).first()
            return (row.id, row.device) if row is not None else None

    def _claim_variant(self, variant_id: int) -> bool:
        """Take the whole variant: one conditional UPDATE, so two workers never both win."""
        now = utcnow()
        with self.engine.begin() as conn:
            run_id = conn.scalar(
                update(Variant)
                .where(Variant.id == variant_id, Variant.status == VariantStatus.pending)
                .values(
                    status=VariantStatus.running,
                    worker=self.worker_id,
                    claimed_at=now,
                    heartbeat_at=now,
                    process=None,
                )
                .returning(Variant.run_id)
            )
            if run_id is None:
                return False
            conn.execute(update(Run).where(Run.id == run_id).values(status=RunStatus.running))
        return True

    def _heartbeat(self, variant_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(self._owned(variant_id).values(heartbeat_at=utcnow()))

    def _owned(self, variant_id: int) -> Update:
        """An UPDATE of the variant that applies only while this worker still holds it."""
        return update(Variant).where(Variant.id == variant_id, Variant.worker == self.worker_id)

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

    # -- one variant ------------------------------------------------------------------------

    def _plan(self, variant_id: int) -> VariantPlan:
        with session_scope(self.engine) as session:
            row = session.get_one(Variant, variant_id)
            run = row.run
            spec = bm.Variant.model_validate(row.config)
            total = session.scalar(select(func.count()).where(Job.variant_id == variant_id))
            done = session.scalar(
                select(func.count()).where(
                    Job.variant_id == variant_id, Job.status == JobStatus.done
                )
            )
            # Result objects have .keys(), so dict(result) would treat them as a mapping.
            prompt_texts = {
                prompt_id: text
                for prompt_id, text in session.execute(
                    select(Prompt.id, Prompt.text)
                    .where(Prompt.run_id == run.id)
                    .order_by(Prompt.position)
                )
            }
            first_seed = session.scalars(
                select(Job.seed).where(Job.variant_id == variant_id).order_by(Job.id)
            ).first()
            sizes, batch_sizes = bm.shapes_of_run(run.config, run.width, run.height, spec)
            series_prompt_ids = list(prompt_texts)[: max(batch_sizes)]
            task = VariantTask(
                variant_id=variant_id,
                spec=row.config,
                device=run.device,
                sizes=[(size.width, size.height) for size in sizes],
                config_dir=Path(run.config_path).parent,
                models_dir=self.models_dir,
                media_dir=self.media_dir,
                threads=torch_threads(run.device, self.cpu_threads),
                series_prompts=[prompt_texts[i] for i in series_prompt_ids] or [""],
                series_seed=first_seed or 0,
                warmup=run.warmup,
                repeats=run.repeats,
            )
            return VariantPlan(
                task,
                spec,
                run.id,
                prompt_texts,
                total or 0,
                done or 0,
                batch_sizes,
                series_prompt_ids,
            )

    def _work_variant(self, variant_id: int, device_key: str, report: WorkerReport) -> None:
        plan = self._plan(variant_id)
        name = plan.spec.name
        task = self.progress.add_task(
            name, total=plan.total_jobs, completed=plan.done_jobs, status="starting"
        )
        try:
            with (
                _child_environment(plan.spec) as env,
                VariantProcess.start(plan.task, env=env) as child,
            ):
                process = f"{self.host}:{child.pid}"
                report.processes[name] = process
                with self.engine.begin() as conn:
                    conn.execute(self._owned(variant_id).values(process=process))
                self.progress.update(task, status=f"loading (pid {child.pid})")
                self._drive(child, plan, process, device_key, task, report)
        except (VariantFailed, ChildDied) as err:
            reason = str(err)
            self._fail_variant(variant_id, reason)
            report.variants_failed[name] = reason
            self.progress.update(task, status=f"[red]failed: {reason[:60]}")
            return
        report.variants_done.append(name)
        self.progress.update(task, status="[green]done")

    def _drive(
        self,
        child: VariantProcess,
        plan: VariantPlan,
        process: str,
        device_key: str,
        task: TaskID,
        report: WorkerReport,
    ) -> None:
        """Load, generate the pending images, time the series: the parent's side."""
        variant_id = plan.task.variant_id

        # 1. The child loads the pipeline and makes the first call at each size. A size
        # whose first call ran out of memory does not fit: its images are not tried.
        loaded = self._expect(child, Loaded, variant_id)
        self._record_loaded(variant_id, loaded)
        unfit = {(c.width, c.height): c.oom for c in loaded.first_calls if c.oom is not None}
        for (width, height), oom in unfit.items():
            self._jobs_do_not_fit(variant_id, width, height, oom)

        # 2. One image per pending job, each stored before the next one is ordered. (A
        # writer thread that encodes while the next image generates was tried: on the CPU it
        # made the recorded latencies 40% slower than a bare loop's by competing for the
        # cores, and the latency is this tool's product. docs/benchmarks.md has the figures.)
        self.progress.update(task, status="generating")
        while (claim := self._claim(variant_id)) is not None:
            stem = f"runs/{claim.run_id}/{plan.spec.name}/{claim.job_id}"
            prompt = plan.prompt_texts[claim.prompt_id]
            try:
                child.send(
                    JobOrder(claim.job_id, stem, prompt, claim.seed, claim.width, claim.height)
                )
                image = self._image_or_misfit(child, variant_id)
                if isinstance(image, JobDidNotFit):
                    self._job_does_not_fit(claim.job_id, image.oom, claim)
                else:
                    self._store(claim, variant_id, plan.spec, image, process)
            except BaseException:
                self._release(claim.job_id)
                raise
            report.generated += 1
            self.progress.advance(task)

        # 3. Steady state per size and batch size: warm-up calls, then timed repeats. A
        # batch that does not fit at a size skips the larger ones there.
        self.progress.update(task, status="steady-state timing")
        first_calls = {(c.width, c.height): c for c in loaded.first_calls}
        shapes: list[SeriesDone] = []
        images_phase: PhaseReport | None = None
        for width, height in plan.task.sizes:
            too_big: str | None = None
            for batch in plan.batch_sizes:
                if too_big is not None:
                    self._store_shape(variant_id, width, height, batch, None, skipped=too_big)
                    continue
                if batch == 1 and (width, height) in unfit:
                    oom = unfit[(width, height)]
                    self._store_shape(variant_id, width, height, batch, None, oom=oom)
                    too_big = "batch 1 does not fit at this size"
                    continue
                self.progress.update(
                    task, status=f"steady-state timing {width}x{height}, batch {batch}"
                )
                child.send(self._series_order(plan, variant_id, width, height, batch))
                done = self._expect(child, SeriesDone, variant_id)
                images_phase = images_phase or done.images
                first = first_calls.get((width, height)) if batch == 1 else None
                self._store_shape(
                    variant_id, width, height, batch, done, first=first, warmup=plan.task.warmup
                )
                shapes.append(done)
                if done.oom is not None:
                    too_big = f"batch {batch} does not fit at this size"
        self._finish_variant(
            variant_id, shapes, images_phase, plan.task.warmup, device_key, process, plan.task
        )

    def _series_order(
        self, plan: VariantPlan, variant_id: int, width: int, height: int, batch: int
    ) -> SeriesOrder:
        """The series' first `batch` prompts at one seed; for a batch > 1, the batch-1
        images of the same prompts, seed and size to compare with (None where missing)."""
        ids = [plan.series_prompt_ids[i % len(plan.series_prompt_ids)] for i in range(batch)]
        seed = plan.task.series_seed
        references: list[str | None] = []
        if batch > 1:
            with session_scope(self.engine) as session:
                paths = dict(
                    session.execute(
                        select(Generation.prompt_id, Generation.image_path).where(
                            Generation.variant_id == variant_id,
                            Generation.prompt_id.in_(ids),
                            Generation.seed == seed,
                            Generation.width == width,
                            Generation.height == height,
                        )
                    ).all()
                )
            references = [paths.get(i) for i in ids]
        return SeriesOrder(
            width, height, [plan.prompt_texts[i] for i in ids], [seed] * batch, references
        )

    def _receive(self, child: VariantProcess, variant_id: int) -> object:
        message = child.receive(on_idle=lambda: self._heartbeat(variant_id))
        if isinstance(message, ChildFailed):
            raise VariantFailed(message.reason)
        return message

    def _expect(self, child: VariantProcess, kind: type[T], variant_id: int) -> T:
        message = self._receive(child, variant_id)
        if not isinstance(message, kind):
            raise VariantFailed(f"child sent {type(message).__name__}, expected {kind.__name__}")
        return message

    def _image_or_misfit(self, child: VariantProcess, variant_id: int) -> ImageDone | JobDidNotFit:
        message = self._receive(child, variant_id)
        if not isinstance(message, ImageDone | JobDidNotFit):
            raise VariantFailed(f"child sent {type(message).__name__}, expected ImageDone")
        return message

    # -- database steps, each one short transaction -----------------------------------------

    def _record_loaded(self, variant_id: int, loaded: Loaded) -> None:
        with session_scope(self.engine) as session:
            row = session.get_one(Variant, variant_id)
            row.load_s, row.compile_s = loaded.load_s, loaded.compile_s
            row.load_peak_gb, row.peak_mem_kind = loaded.load_peak_gb, loaded.peak_kind
            row.compile_cache = loaded.compile_cache
            row.environment = loaded.environment
            session.get_one(Run, row.run_id).environment = loaded.environment
            row.heartbeat_at = utcnow()

    def _claim(self, variant_id: int) -> Claim | None:
        """Take the next pending job of the variant: one conditional UPDATE, so two workers
        never take the same job (the loser's UPDATE matches no row and it looks again)."""
        while True:
            with self.engine.begin() as conn:
                job_id = conn.scalar(
                    select(Job.id)
                    .where(Job.variant_id == variant_id, Job.status == JobStatus.pending)
                    .order_by(Job.id)
                    .limit(1)
                )
                if job_id is None:
                    return None
                claimed = conn.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == JobStatus.pending)
                    .values(
                        status=JobStatus.running,
                        worker=self.worker_id,
                        claimed_at=utcnow(),
                        attempts=Job.attempts + 1,
                    )
                    .returning(Job.run_id, Job.prompt_id, Job.seed, Job.width, Job.height)
                ).first()
                if claimed is not None:
                    return Claim(job_id, *claimed)

    def _release(self, job_id: int) -> None:
        with session_scope(self.engine) as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.running)
                .values(status=JobStatus.pending, worker=None, claimed_at=None)
            )

    def _jobs_do_not_fit(self, variant_id: int, width: int, height: int, oom: OutOfMemory) -> None:
        """Every pending job of the variant at a size whose first call ran out of memory."""
        with session_scope(self.engine) as session:
            session.execute(
                update(Job)
                .where(
                    Job.variant_id == variant_id,
                    Job.width == width,
                    Job.height == height,
                    Job.status == JobStatus.pending,
                )
                .values(
                    status=JobStatus.does_not_fit,
                    error=misfit_reason(width, height, 1, oom),
                    finished_at=utcnow(),
                )
            )

    def _job_does_not_fit(self, job_id: int, oom: OutOfMemory, claim: Claim) -> None:
        with session_scope(self.engine) as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    status=JobStatus.does_not_fit,
                    error=misfit_reason(claim.width, claim.height, 1, oom),
                    finished_at=utcnow(),
                )
            )

    def _store_shape(
        self,
        variant_id: int,
        width: int,
        height: int,
        batch: int,
        done: SeriesDone | None,
        *,
        first: FirstCall | None = None,
        skipped: str | None = None,
        oom: OutOfMemory | None = None,
        warmup: int = 0,
    ) -> None:
        """One shape's row, replacing an earlier attempt's: measured, does not fit (with the
        memory reached), or skipped (with why). Only while this worker holds the claim."""
        row = ShapeSeries(
            variant_id=variant_id, width=width, height=height, batch_size=batch, n=0, warmup=0
        )
        oom = oom or (done.oom if done is not None else None)
        if oom is not None:
            row.status = SeriesStatus.does_not_fit
            row.error = misfit_reason(width, height, batch, oom)
            row.peak_mem_gb, row.peak_mem_kind = oom.peak_gb, oom.peak_kind
            row.device_total_gb = oom.device_total_gb
        elif done is None:
            row.status, row.error = SeriesStatus.skipped, skipped
        else:
            stats = LatencyStats.of(done.samples_s)
            row.status, row.n, row.warmup = SeriesStatus.measured, stats.n, warmup
            row.latency_median_s, row.latency_p10_s = stats.median_s, stats.p10_s
            row.latency_p90_s, row.latency_mean_s = stats.p90_s, stats.mean_s
            row.latency_min_s, row.latency_max_s = stats.min_s, stats.max_s
            row.peak_mem_gb, row.peak_mem_kind = done.peak_gb, done.peak_kind
            row.device_total_gb = done.device_total_gb
        if done is not None:
            row.first_call_s, row.first_call_graphs = done.first_call_s, done.first_call_graphs
            if done.series is not None:
                row.recompiles, row.graph_breaks = done.series.recompiles, done.series.graph_breaks
                row.contention = done.series.contention
                row.contended = bool(done.series.contention and done.series.contention["contended"])
                row.started_at = datetime.fromtimestamp(done.series.started_at, UTC)
                row.finished_at = datetime.fromtimestamp(done.series.finished_at, UTC)
            if done.comparison is not None:
                c = done.comparison
                row.batch_compared, row.batch_identical = c.compared, c.identical
                row.batch_ssim_mean, row.batch_ssim_min = c.ssim_mean, c.ssim_min
                row.batch_psnr_min_db = c.psnr_min_db
        if first is not None:  # batch 1: its size's first call was made at load
            row.first_call_s, row.first_call_graphs = first.seconds, first.graphs
        with session_scope(self.engine) as session:
            owner = session.scalar(select(Variant.worker).where(Variant.id == variant_id))
            if owner != self.worker_id:
                raise VariantFailed("the claim was lost (lease expired) during the series")
            session.execute(
                delete(ShapeSeries).where(
                    ShapeSeries.variant_id == variant_id,
                    ShapeSeries.width == width,
                    ShapeSeries.height == height,
                    ShapeSeries.batch_size == batch,
                )
            )
            session.add(row)

    def _store(
        self, claim: Claim, variant_id: int, spec: bm.Variant, image: ImageDone, process: str
    ) -> None:
        """Record the result (the child wrote the files) and mark the job done in one
        transaction (Core statements: this runs once per image, beside the generation)."""
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                insert(Generation).values(
                    job_id=claim.job_id,
                    run_id=claim.run_id,
                    variant_id=variant_id,
                    prompt_id=claim.prompt_id,
                    seed=claim.seed,
                    image_path=image.stored.image_path,
                    thumb_path=image.stored.thumb_path,
                    image_sha256=image.stored.sha256,
                    width=image.width,
                    height=image.height,
                    model=spec.model,
                    steps=spec.steps,
                    guidance=spec.guidance,
                    max_sequence_length=spec.max_sequence_length,
                    dtype=spec.dtype,
                    lora=spec.lora.model_dump() if spec.lora else None,
                    optimizations=spec.optimizations,
                    latency_s=image.latency_s,
                    process=process,
                    created_at=now,
                )
            )
            conn.execute(
                update(Job)
                .where(Job.id == claim.job_id)
                .values(status=JobStatus.done, error=None, finished_at=now)
            )
            conn.execute(self._owned(variant_id).values(heartbeat_at=now))

    def _finish_variant(
        self,
        variant_id: int,
        shapes: list[SeriesDone],
        images: PhaseReport | None,
        warmup: int,
        device_key: str,
        process: str,
        task: VariantTask,
    ) -> None:
        """Store the timing summaries and mark the variant done: idempotent, and only while
        this worker holds the claim (a worker that lost it must not overwrite the winner).
        The summaries are the variant's main shape (its first size, batch 1): what speed-ups
        and costs compare; shape_series holds every shape."""
        (width, height), *_ = task.sizes
        main = next(
            (
                done
                for done in shapes
                if (done.width, done.height, done.batch_size) == (width, height, 1)
                and done.oom is None
            ),
            None,
        )
        with session_scope(self.engine) as session:
            row = session.get_one(Variant, variant_id)
            if row.worker != self.worker_id:
                raise VariantFailed("the claim was lost (lease expired) before the series ended")
            latencies = list(
                session.scalars(
                    select(Generation.latency_s).where(
                        Generation.variant_id == variant_id,
                        Generation.width == width,
                        Generation.height == height,
                    )
                )
            )
            for old in list(row.timings):
                session.delete(old)
            session.flush()
            if main is not None:
                row.timings.append(
                    _summary(
                        "steady_state",
                        LatencyStats.of(main.samples_s),
                        warmup,
                        main.series,
                        device_key,
                        process,
                    )
                )
                row.peak_mem_gb, row.peak_mem_kind = main.peak_gb, main.peak_kind
            if latencies:
                row.timings.append(
                    _summary(
                        "per_image", LatencyStats.of(latencies), 0, images, device_key, process
                    )
                )
            unfinished = session.scalar(
                select(func.count()).where(
                    Job.variant_id == variant_id, Job.status.in_(UNFINISHED_JOBS)
                )
            )
            row.status = VariantStatus.done if unfinished == 0 else VariantStatus.pending
            row.error = None

    def _fail_variant(self, variant_id: int, reason: str) -> None:
        with session_scope(self.engine) as session:
            failed = session.execute(
                self._owned(variant_id).values(status=VariantStatus.failed, error=reason)
            )
            if failed.rowcount:  # type: ignore[attr-defined]
                session.execute(
                    update(Job)
                    .where(Job.variant_id == variant_id, Job.status == JobStatus.pending)
                    .values(status=JobStatus.failed, error=f"variant failed: {reason}")
                )

    def _finish_run(self, run_id: int) -> None:
        with session_scope(self.engine) as session:
            open_jobs = session.scalar(
                select(func.count()).where(
                    Job.run_id == run_id, Job.status.in_([JobStatus.pending, JobStatus.running])
                )
            )
            open_variants = session.scalar(
                select(func.count()).where(
                    Variant.run_id == run_id,
                    Variant.status.in_([VariantStatus.pending, VariantStatus.running]),
                )
            )
            run = session.get_one(Run, run_id)
            if open_jobs == 0 and open_variants == 0:
                run.status = RunStatus.done
                run.finished_at = utcnow()


# Jobs that keep a variant from being done ("does not fit" is a finished result).
UNFINISHED_JOBS = (JobStatus.pending, JobStatus.running, JobStatus.failed)


def misfit_reason(width: int, height: int, batch: int, oom: OutOfMemory) -> str:
    """ "does not fit at 2048x2048, batch 4: 31.2 of 24.0 GB reached (...)" — for pages."""
    return (
        f"does not fit at {width}x{height}, batch {batch}: {oom.peak_gb:.1f} GB reached of "
        f"{oom.device_total_gb:.1f} GB ({oom.reason})"
    )[:500]


@contextmanager
def _child_environment(spec: bm.Variant) -> Iterator[dict[str, str]]:
    """The child's environment: ours, plus a fresh, empty Inductor/Triton cache folder when
    the variant asks for a cold compile (removed once the child is gone)."""
    env = dict(os.environ)
    if spec.compile is None or not spec.compile.fresh_cache:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="flux-playground-inductor-") as cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
        env["TRITON_CACHE_DIR"] = str(Path(cache) / "triton")
        yield env


def _summary(
    kind: str,
    stats: LatencyStats,
    warmup: int,
    phase: PhaseReport | None,
    device_key: str,
    process: str,
) -> TimingSummary:
    summary = TimingSummary(
        kind=kind,
        n=stats.n,
        warmup=warmup,
        latency_median_s=stats.median_s,
        latency_p10_s=stats.p10_s,
        latency_p90_s=stats.p90_s,
        latency_mean_s=stats.mean_s,
        latency_min_s=stats.min_s,
        latency_max_s=stats.max_s,
        device_key=device_key,
    )
    if phase is not None:  # None: every image came from an earlier child (a resumed run)
        summary.process = process
        summary.started_at = datetime.fromtimestamp(phase.started_at, UTC)
        summary.finished_at = datetime.fromtimestamp(phase.finished_at, UTC)
        summary.recompiles = phase.recompiles
        summary.graph_breaks = phase.graph_breaks
        summary.contention = phase.contention
        summary.contended = bool(phase.contention and phase.contention["contended"])
    return summary
