"""Read models for pages and the API: a run's variants with latency, speed-up and cost.

Pure database reads; no torch. Latency is the steady-state median when measured, else the
median of the per-image latencies (a variant still running has only those).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app import costs
from app.models import Generation, Job, JobStatus, Prompt, Run, Variant


@dataclass(frozen=True)
class VariantSummary:
    id: int
    name: str
    status: str
    error: str | None
    reference: str | None
    steps: int
    latency_median_s: float | None
    latency_p90_s: float | None
    latency_kind: str | None
    speedup: float | None
    usd_per_1k_images: float | None
    compile_s: float | None
    load_s: float | None
    peak_mem_gb: float | None
    jobs_done: int
    jobs_total: int


def latest_run_id(session: Session) -> int | None:
    return session.scalar(select(Run.id).order_by(Run.id.desc()).limit(1))


def variant_summaries(session: Session, run: Run) -> list[VariantSummary]:
    variants = list(
        session.scalars(
            select(Variant)
            .where(Variant.run_id == run.id)
            .options(selectinload(Variant.timings))
            .order_by(Variant.position)
        )
    )
    counts: dict[tuple[int, str], int] = {
        (variant_id, status): n
        for variant_id, status, n in session.execute(
            select(Job.variant_id, Job.status, func.count())
            .where(Job.run_id == run.id)
            .group_by(Job.variant_id, Job.status)
        )
    }
    median: dict[int, tuple[float, float, str]] = {}
    for variant in variants:
        timing = variant.timing("steady_state") or variant.timing("per_image")
        if timing is not None:
            median[variant.id] = (timing.latency_median_s, timing.latency_p90_s, timing.kind)
    names = {v.id: v.name for v in variants}
    out = []
    for variant in variants:
        latency = median.get(variant.id)
        reference = median.get(variant.reference_id) if variant.reference_id else None
        out.append(
            VariantSummary(
                id=variant.id,
                name=variant.name,
                status=variant.status.value,
                error=variant.error,
                reference=names.get(variant.reference_id) if variant.reference_id else None,
                steps=int(variant.config["steps"]),
                latency_median_s=latency[0] if latency else None,
                latency_p90_s=latency[1] if latency else None,
                latency_kind=latency[2] if latency else None,
                speedup=costs.speedup(reference[0], latency[0]) if latency and reference else None,
                usd_per_1k_images=costs.usd_per_1k_images(latency[0], run.usd_per_hour)
                if latency
                else None,
                compile_s=variant.compile_s,
                load_s=variant.load_s,
                peak_mem_gb=variant.peak_mem_gb,
                jobs_done=counts.get((variant.id, JobStatus.done), 0),
                jobs_total=sum(n for (vid, _), n in counts.items() if vid == variant.id),
            )
        )
    return out


@dataclass(frozen=True)
class PromptRowView:
    prompt: Prompt
    # variant id -> generation of the run's first seed (None while not generated)
    images: dict[int, Generation]


def prompt_rows(session: Session, run: Run, *, limit: int, offset: int = 0) -> list[PromptRowView]:
    prompts = list(
        session.scalars(
            select(Prompt)
            .where(Prompt.run_id == run.id)
            .order_by(Prompt.position)
            .limit(limit)
            .offset(offset)
        )
    )
    seed = run.config["seeds"][0]
    by_prompt: dict[int, dict[int, Generation]] = defaultdict(dict)
    if prompts:
        for generation in session.scalars(
            select(Generation).where(
                Generation.prompt_id.in_([p.id for p in prompts]), Generation.seed == seed
            )
        ):
            by_prompt[generation.prompt_id][generation.variant_id] = generation
    return [PromptRowView(prompt=p, images=by_prompt[p.id]) for p in prompts]
