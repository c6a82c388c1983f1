"""The worker: claim jobs, generate, store images and results, resume after a kill.

Rules it keeps (DESIGN.md, "Nothing lost, nothing half-written"):
- a job is claimed by a conditional UPDATE, so two workers never run the same job;
- its image is written to a temp file and renamed, then the Generation row and the job's
  `done` status are committed in one transaction;
- jobs left `running` by a dead worker (same host: its pid is gone; other host: its claim is
  older than the lease) go back to `pending` when a worker starts, and so do its temp files.

One variant is loaded at a time (loading is the expensive part), its pending jobs run, then a
steady-state series times it on one prompt (warm-up calls, then `repeats` timed calls).
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from pathlib import Path
from typing import NamedTuple

from PIL import Image
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import benchmark as bm
from app.db import session_scope
from app.models import (
    Generation,
    Job,
    JobStatus,
    Prompt,
    Run,
    RunStatus,
    TimingSummary,
    Variant,
    VariantStatus,
    utcnow,
)
from app.prompts import PromptRow
from app.worker import pipelines
from app.worker.images import remove_orphan_temp_files, store_image
from app.worker.timing import (
    LatencyStats,
    capture_environment,
    peak_memory_gb,
    reset_peak_memory,
    timed,
)


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
            # The price is not part of the fingerprint: a new price applies to old timings.
            session.execute(
                update(Run).where(Run.id == existing).values(usd_per_hour=bench.usd_per_hour)
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
    session.add_all(
        Job(
            run_id=run.id,
            variant_id=variant.id,
            prompt_id=prompt.id,
            seed=seed,
            status=JobStatus.pending,
            attempts=0,
        )
        for variant in run.variants
        for prompt in run.prompts
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


def reclaim_stale_jobs(engine: Engine, lease_s: float) -> int:
    """Put jobs of dead workers back to pending. Returns how many."""
    host = socket.gethostname()
    cutoff = utcnow() - timedelta(seconds=lease_s)
    stale: list[int] = []
    with session_scope(engine) as session:
        for job_id, worker, claimed_at in session.execute(
            select(Job.id, Job.worker, Job.claimed_at).where(Job.status == JobStatus.running)
        ):
            worker_host, _, pid = (worker or "").rpartition(":")
            if worker_host == host and pid.isdigit():
                dead = not _pid_alive(int(pid))
            elif claimed_at is None:
                dead = True
            else:
                claimed = claimed_at if claimed_at.tzinfo else claimed_at.replace(tzinfo=UTC)
                dead = claimed < cutoff
            if dead:
                stale.append(job_id)
        if stale:
            session.execute(
                update(Job)
                .where(Job.id.in_(stale), Job.status == JobStatus.running)
                .values(status=JobStatus.pending, worker=None, claimed_at=None)
            )
    return len(stale)


@dataclass
class WorkerReport:
    generated: int = 0
    variants_done: list[str] = field(default_factory=list)
    variants_failed: dict[str, str] = field(default_factory=dict)


class Claim(NamedTuple):
    job_id: int
    run_id: int
    prompt_id: int
    seed: int


class Worker:
    """Executes pending jobs, one variant at a time. Construct, then call `work()`."""

    def __init__(
        self,
        engine: Engine,
        *,
        media_dir: Path,
        models_dir: Path,
        lease_s: float = 1800.0,
        show_progress: bool = True,
    ) -> None:
        self.engine = engine
        self.media_dir = media_dir
        self.models_dir = models_dir
        self.lease_s = lease_s
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
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
        """Run every pending job (of one run, or of all runs). Returns what was done."""
        reclaim_stale_jobs(self.engine, self.lease_s)
        remove_orphan_temp_files(self.media_dir, _pid_alive)
        if retry_failed:
            self._reset_failed(run_id)
        report = WorkerReport()
        with self.progress:
            for variant_id in self._variants_with_work(run_id):
                self._work_variant(variant_id, report)
        for rid in self._touched_runs(run_id):
            self._finish_run(rid)
        return report

    # -- selection --------------------------------------------------------------------------

    def _variants_with_work(self, run_id: int | None) -> list[int]:
        with session_scope(self.engine) as session:
            query = (
                select(Variant.id)
                .join(Run)
                .where(Variant.status.not_in([VariantStatus.done, VariantStatus.failed]))
                .order_by(Run.id, Variant.position)
            )
            if run_id is not None:
                query = query.where(Variant.run_id == run_id)
            return list(session.scalars(query))

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

    def _work_variant(self, variant_id: int, report: WorkerReport) -> None:
        with session_scope(self.engine) as session:
            row = session.get_one(Variant, variant_id)
            run = row.run
            spec = bm.Variant.model_validate(row.config)
            device, width, height = run.device, run.width, run.height
            config_dir = Path(run.config_path).parent
            warmup, repeats = run.warmup, run.repeats
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
            first_prompt = next(iter(prompt_texts.values()), "")
            first_seed = session.scalars(
                select(Job.seed).where(Job.variant_id == variant_id).order_by(Job.id)
            ).first()
            row.status = VariantStatus.running
            run.status = RunStatus.running
        task = self.progress.add_task(spec.name, total=total, completed=done or 0, status="loading")
        try:
            self._run_variant(
                variant_id,
                spec,
                device=device,
                size=(width, height),
                config_dir=config_dir,
                series=(first_prompt, first_seed or 0, warmup, repeats),
                prompt_texts=prompt_texts,
                task=task,
                report=report,
            )
        except Exception as err:
            reason = _reason(err)
            self._fail_variant(variant_id, reason)
            report.variants_failed[spec.name] = reason
            self.progress.update(task, status=f"[red]failed: {reason[:60]}")
            return
        report.variants_done.append(spec.name)
        self.progress.update(task, status="[green]done")

    def _run_variant(
        self,
        variant_id: int,
        spec: bm.Variant,
        *,
        device: str,
        size: tuple[int, int],
        config_dir: Path,
        series: tuple[str, int, int, int],
        prompt_texts: dict[int, str],
        task: TaskID,
        report: WorkerReport,
    ) -> None:
        width, height = size
        series_prompt, series_seed, warmup, repeats = series
        reset_peak_memory(device)

        # 1. Load (and optimize) the pipeline.
        pipe, load_s = timed(
            lambda: pipelines.load_pipeline(
                spec, device=device, models_dir=self.models_dir, config_dir=config_dir
            ),
            device,
        )

        def call(prompt: str, seed: int) -> Image.Image:
            return pipelines.generate(
                pipe, spec, prompt=prompt, seed=seed, width=width, height=height
            )

        # 2. The first call pays for compilation, autotuning and lazy init: time it apart.
        self.progress.update(task, status="first call")
        _, compile_s = timed(lambda: call(series_prompt, series_seed), device)
        with session_scope(self.engine) as session:
            row = session.get_one(Variant, variant_id)
            row.load_s, row.compile_s = load_s, compile_s
            row.environment = capture_environment(device) | {"dtype": spec.dtype}
            session.get_one(Run, row.run_id).environment = row.environment

        # 3. One image per pending job, stored before the next one starts. (A writer thread
        # that encodes while the next image generates was tried: on the CPU it made the
        # recorded latencies 40% slower than a bare loop's by competing for the cores, and
        # the latency is this tool's product. docs/benchmarks.md has the figures.)
        self.progress.update(task, status="generating")
        while (claim := self._claim(variant_id)) is not None:
            prompt = prompt_texts[claim.prompt_id]
            try:
                image, latency_s = timed(lambda: call(prompt, claim.seed), device)  # noqa: B023
                self._store(claim, variant_id, spec, image, latency_s)
            except BaseException:
                self._release(claim.job_id)
                raise
            report.generated += 1
            self.progress.advance(task)

        # 4. Steady state: warm-up calls, then timed repeats of one prompt.
        self.progress.update(task, status="steady-state timing")
        for _ in range(warmup):
            call(series_prompt, series_seed)
        samples = [
            timed(lambda: call(series_prompt, series_seed), device)[1] for _ in range(repeats)
        ]
        peak_gb, peak_kind = peak_memory_gb(device)
        self._finish_variant(variant_id, LatencyStats.of(samples), warmup, peak_gb, peak_kind)

    # -- database steps, each one short transaction -----------------------------------------

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
                    .returning(Job.run_id, Job.prompt_id, Job.seed)
                ).first()
                if claimed is not None:
                    return Claim(job_id, claimed.run_id, claimed.prompt_id, claimed.seed)

    def _release(self, job_id: int) -> None:
        with session_scope(self.engine) as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.running)
                .values(status=JobStatus.pending, worker=None, claimed_at=None)
            )

    def _store(
        self, claim: Claim, variant_id: int, spec: bm.Variant, image: Image.Image, latency_s: float
    ) -> None:
        """Write the image files, then record the result and mark the job done in one
        transaction (Core statements: this runs once per image, beside the generation)."""
        stem = f"runs/{claim.run_id}/{spec.name}/{claim.job_id}"
        stored = store_image(image, self.media_dir, stem)
        with self.engine.begin() as conn:
            conn.execute(
                insert(Generation).values(
                    job_id=claim.job_id,
                    run_id=claim.run_id,
                    variant_id=variant_id,
                    prompt_id=claim.prompt_id,
                    seed=claim.seed,
                    image_path=stored.image_path,
                    thumb_path=stored.thumb_path,
                    image_sha256=stored.sha256,
                    width=image.width,
                    height=image.height,
                    model=spec.model,
                    steps=spec.steps,
                    guidance=spec.guidance,
                    max_sequence_length=spec.max_sequence_length,
                    dtype=spec.dtype,
                    lora=spec.lora.model_dump() if spec.lora else None,
                    optimizations=spec.optimizations,
                    latency_s=latency_s,
                    created_at=utcnow(),
                )
            )
            conn.execute(
                update(Job)
                .where(Job.id == claim.job_id)
                .values(status=JobStatus.done, error=None, finished_at=utcnow())
            )

    def _finish_variant(
        self,
        variant_id: int,
        steady: LatencyStats,
        warmup: int,
        peak_gb: float,
        peak_kind: str,
    ) -> None:
        with session_scope(self.engine) as session:
            row = session.get_one(Variant, variant_id)
            latencies = list(
                session.scalars(
                    select(Generation.latency_s).where(Generation.variant_id == variant_id)
                )
            )
            for old in list(row.timings):
                session.delete(old)
            session.flush()
            row.timings.append(_summary("steady_state", steady, warmup))
            if latencies:
                row.timings.append(_summary("per_image", LatencyStats.of(latencies), 0))
            row.peak_mem_gb, row.peak_mem_kind = peak_gb, peak_kind
            pending = session.scalar(
                select(func.count()).where(
                    Job.variant_id == variant_id, Job.status != JobStatus.done
                )
            )
            # Another worker may still hold some of this variant's jobs.
            row.status = VariantStatus.done if pending == 0 else VariantStatus.pending
            row.error = None

    def _fail_variant(self, variant_id: int, reason: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get_one(Variant, variant_id)
            row.status = VariantStatus.failed
            row.error = reason
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


def _summary(kind: str, stats: LatencyStats, warmup: int) -> TimingSummary:
    return TimingSummary(
        kind=kind,
        n=stats.n,
        warmup=warmup,
        latency_median_s=stats.median_s,
        latency_p10_s=stats.p10_s,
        latency_p90_s=stats.p90_s,
        latency_mean_s=stats.mean_s,
        latency_min_s=stats.min_s,
        latency_max_s=stats.max_s,
    )


def _reason(err: BaseException) -> str:
    """One line for users: the exception's own message, with its type when it has none."""
    if isinstance(err, pipelines.VariantUnavailable):
        return str(err)
    text = " ".join(str(err).split())
    name = type(err).__name__
    return f"{name}: {text}"[:500] if text else name
