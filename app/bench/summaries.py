"""Read models for pages and the API: a run's variants with latency, speed-up and cost.

Pure database reads; no torch. Latency is the steady-state median when measured, else the
median of the per-image latencies (a variant still running has only those).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.bench import costs
from app.models import JobStatus, Run, Variant
from app.progress import jobs_of


@dataclass(frozen=True)
class VariantSummary:
    """One variant of a run as the pages and the API show it. Costs at the run's price."""

    id: int
    name: str
    description: str
    status: str
    error: str | None
    reference: str | None
    steps: int
    config: dict[str, Any]
    latency_median_s: float | None
    latency_p10_s: float | None
    latency_p90_s: float | None
    latency_kind: str | None
    speedup: float | None
    usd_per_image: float | None
    usd_per_1k_images: float | None
    # compile/warm-up time spread over the run's images of this variant
    amortized_usd_per_image: float | None
    compile_s: float | None
    load_s: float | None
    peak_mem_gb: float | None
    load_peak_gb: float | None
    peak_mem_kind: str | None
    # "cold", "warm" or "partial" Inductor caches at the first call; None: nothing compiled.
    compile_cache: str | None
    # Why the timed series is not a clean steady state (recompiled, contended); [] if clean.
    timing_flags: list[str]
    jobs_done: int
    jobs_failed: int
    jobs_do_not_fit: int
    jobs_total: int


def variant_summaries(
    session: Session, run: Run, *, usd_per_hour: float | None = None
) -> list[VariantSummary]:
    """Every variant of the run, in config order. `usd_per_hour` overrides the run's price
    for a what-if (the dashboard's price control); the stored measurements never change."""
    price = run.usd_per_hour if usd_per_hour is None else usd_per_hour
    variants = list(
        session.scalars(
            select(Variant)
            .where(Variant.run_id == run.id)
            .options(selectinload(Variant.timings))
            .order_by(Variant.position)
        )
    )
    jobs = jobs_of(session, run)
    counts: dict[tuple[int, str], int] = {
        (variant_id, status): n
        for variant_id, by_status in jobs.by_variant.items()
        for status, n in by_status.items()
    }
    timings = {}
    for variant in variants:
        timing = variant.timing("steady_state") or variant.timing("per_image")
        if timing is not None:
            timings[variant.id] = timing
    names = {v.id: v.name for v in variants}
    out = []
    for variant in variants:
        timing = timings.get(variant.id)
        reference = timings.get(variant.reference_id) if variant.reference_id else None
        total = sum(n for (vid, _), n in counts.items() if vid == variant.id)
        median = timing.latency_median_s if timing else None
        amortized = (
            costs.usd_per_image(
                costs.amortized_latency_s(median, variant.compile_s or 0.0, max(total, 1)),
                price,
            )
            if median is not None
            else None
        )
        out.append(
            VariantSummary(
                id=variant.id,
                name=variant.name,
                description=str(variant.config.get("description", "")),
                status=variant.status.value,
                error=variant.error,
                reference=names.get(variant.reference_id) if variant.reference_id else None,
                steps=int(variant.config["steps"]),
                config=variant.config,
                latency_median_s=median,
                latency_p10_s=timing.latency_p10_s if timing else None,
                latency_p90_s=timing.latency_p90_s if timing else None,
                latency_kind=timing.kind if timing else None,
                speedup=costs.speedup(reference.latency_median_s, median)
                if median is not None and reference is not None
                else None,
                usd_per_image=costs.usd_per_image(median, price) if median is not None else None,
                usd_per_1k_images=costs.usd_per_1k_images(median, price)
                if median is not None
                else None,
                amortized_usd_per_image=amortized,
                compile_s=variant.compile_s,
                load_s=variant.load_s,
                peak_mem_gb=variant.peak_mem_gb,
                load_peak_gb=variant.load_peak_gb,
                peak_mem_kind=variant.peak_mem_kind,
                compile_cache=variant.compile_cache,
                timing_flags=timing.flags if timing else [],
                jobs_done=counts.get((variant.id, JobStatus.done), 0),
                jobs_failed=counts.get((variant.id, JobStatus.failed), 0),
                jobs_do_not_fit=counts.get((variant.id, JobStatus.does_not_fit), 0),
                jobs_total=total,
            )
        )
    return out


# Which machine and process measured a run: kept in the database (the worker uses it), not
# shown to the public (a host name tells an attacker where the GPUs are).
PRIVATE_ENVIRONMENT_KEYS = ("host", "process")


def public_environment(environment: dict[str, Any] | None) -> dict[str, Any]:
    """A run's or variant's environment as the pages and the API show it."""
    return {
        key: value
        for key, value in (environment or {}).items()
        if key not in PRIVATE_ENVIRONMENT_KEYS
    }
