"""Enqueueing a run: a benchmark config and its prompts become a run's rows (its variants,
prompts and one pending job per variant, size, prompt and seed), or the run they made
before, so that rerunning the same config resumes it.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.bench import benchmark as bm
from app.bench.prompts import PromptRow
from app.db import session_scope
from app.models import Job, JobStatus, Prompt, Run, RunStatus, Variant, VariantStatus


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
                spec=row.spec,
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
