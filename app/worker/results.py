"""Storing what a variant's child reports: its load figures, each image's Generation row
(with its job marked done in the same transaction), the shape series, the timing summaries,
and the variant's and the run's final status.

Each step is one short transaction. A step that finishes a variant applies only while this
worker still holds its claim (app/worker/claims.py): a worker that lost it must not
overwrite the winner's results.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, delete, func, insert, select, update

from app.bench import benchmark as bm
from app.db import session_scope
from app.models import (
    Generation,
    Job,
    JobStatus,
    Run,
    RunStatus,
    SeriesStatus,
    ShapeSeries,
    TimingSummary,
    Variant,
    VariantStatus,
    utcnow,
)
from app.worker.claims import Claim, Claims
from app.worker.isolate import (
    FirstCall,
    ImageDone,
    Loaded,
    OutOfMemory,
    PhaseReport,
    SeriesDone,
    VariantTask,
)
from app.worker.stats import LatencyStats

# Jobs that keep a variant from being done ("does not fit" is a finished result).
UNFINISHED_JOBS = (JobStatus.pending, JobStatus.running, JobStatus.failed)


# Defined here, below the driver: a claim found lost while storing fails the variant too.
class VariantFailed(RuntimeError):
    """The variant's child reported a failure or died; `str(err)` is the reason."""


class Results:
    """One worker's writes of its children's results; `claims` says what it still holds."""

    def __init__(self, engine: Engine, claims: Claims) -> None:
        self.engine = engine
        self.claims = claims

    def record_loaded(self, variant_id: int, loaded: Loaded) -> None:
        with session_scope(self.engine) as session:
            row = session.get_one(Variant, variant_id)
            row.load_s, row.compile_s = loaded.load_s, loaded.compile_s
            row.load_peak_gb, row.peak_mem_kind = loaded.load_peak_gb, loaded.peak_kind
            row.compile_cache = loaded.compile_cache
            row.environment = loaded.environment
            session.get_one(Run, row.run_id).environment = loaded.environment
            row.heartbeat_at = utcnow()

    def jobs_do_not_fit(self, variant_id: int, width: int, height: int, oom: OutOfMemory) -> None:
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

    def job_does_not_fit(self, job_id: int, oom: OutOfMemory, claim: Claim) -> None:
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

    def store_shape(
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
            if owner != self.claims.worker_id:
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

    def store(
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
            conn.execute(self.claims.owned(variant_id).values(heartbeat_at=now))

    def finish_variant(
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
            if row.worker != self.claims.worker_id:
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

    def fail_variant(self, variant_id: int, reason: str) -> None:
        with session_scope(self.engine) as session:
            failed = session.execute(
                self.claims.owned(variant_id).values(status=VariantStatus.failed, error=reason)
            )
            if failed.rowcount:  # type: ignore[attr-defined]
                session.execute(
                    update(Job)
                    .where(Job.variant_id == variant_id, Job.status == JobStatus.pending)
                    .values(status=JobStatus.failed, error=f"variant failed: {reason}")
                )

    def finish_run(self, run_id: int) -> None:
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


def misfit_reason(width: int, height: int, batch: int, oom: OutOfMemory) -> str:
    """ "does not fit at 2048x2048, batch 4: 31.2 of 24.0 GB reached (...)" — for pages."""
    return (
        f"does not fit at {width}x{height}, batch {batch}: {oom.peak_gb:.1f} GB reached of "
        f"{oom.device_total_gb:.1f} GB ({oom.reason})"
    )[:500]


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
