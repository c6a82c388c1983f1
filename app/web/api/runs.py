"""The API's runs and their variants: the list of runs, one run with its environment and
config, and each variant's timing and cost (as JSON and as CSV)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api_schemas import RunDetailOut, RunOut, VariantOut, VariantsOut
from app.bench.summaries import public_environment, variant_summaries
from app.models import JobStatus, Run
from app.progress import jobs_of
from app.web.api.csv_export import csv_filename, csv_response
from app.web.api.params import CSV_BODY, NOT_FOUND, Price, RunId, run_or_404
from app.web.deps import SessionDep

router = APIRouter()


def _job_counts(session: Session, run: Run) -> dict[str, int] | None:
    """jobs_done, jobs_failed, jobs_total (app/progress.py: once a second while the run
    runs, exact once it has ended); None for a run without jobs."""
    jobs = jobs_of(session, run)
    if not jobs.by_variant:
        return None
    return {
        "jobs_done": jobs.total(JobStatus.done),
        "jobs_failed": jobs.total(JobStatus.failed),
        "jobs_do_not_fit": jobs.total(JobStatus.does_not_fit),
        "jobs_total": jobs.total(),
    }


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite drops the zone of the UTC times we store.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _run_fields(run: Run, counts: dict[str, int] | None) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "description": run.description,
        "status": run.status.value,
        "device": run.device,
        "hardware": run.hardware,
        "usd_per_hour": run.usd_per_hour,
        "width": run.width,
        "height": run.height,
        "seeds": run.config["seeds"],
        "created_at": _utc(run.created_at),
        "finished_at": _utc(run.finished_at),
        **(counts or {"jobs_done": 0, "jobs_failed": 0, "jobs_do_not_fit": 0, "jobs_total": 0}),
    }


@router.get("/runs", summary="List runs, latest first")
def list_runs(session: SessionDep) -> list[RunOut]:
    runs = session.scalars(select(Run).order_by(Run.id.desc()))
    return [RunOut(**_run_fields(run, _job_counts(session, run))) for run in runs]


@router.get("/runs/{run_id}", responses=NOT_FOUND, summary="One run and its environment")
def get_run(session: SessionDep, run_id: RunId) -> RunDetailOut:
    run = run_or_404(session, run_id)
    return RunDetailOut(
        **_run_fields(run, _job_counts(session, run)),
        prompt_set=run.prompt_set,
        warmup=run.warmup,
        repeats=run.repeats,
        environment=public_environment(run.environment),
        config=public_config(run.config),
    )


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """The run's config as the API shows it: its files by name only. The stored config keeps
    the worker machine's absolute paths (where the run came from), which are nobody's
    business on a public server."""
    return {
        key: PurePath(value).name if key.endswith("_path") and isinstance(value, str) else value
        for key, value in config.items()
    }


def _variants(session: Session, run: Run, usd_per_hour: float | None) -> VariantsOut:
    variants = []
    for summary in variant_summaries(session, run, usd_per_hour=usd_per_hour):
        fields = dataclasses.asdict(summary)
        fields["speedup_vs_reference"] = fields.pop("speedup")
        variants.append(VariantOut(**fields))
    return VariantsOut(
        run_id=run.id,
        usd_per_hour=run.usd_per_hour if usd_per_hour is None else usd_per_hour,
        stored_usd_per_hour=run.usd_per_hour,
        variants=variants,
    )


@router.get("/runs/{run_id}/variants", responses=NOT_FOUND, summary="Variants with timing and cost")
def list_variants(session: SessionDep, run_id: RunId, usd_per_hour: Price = None) -> VariantsOut:
    return _variants(session, run_or_404(session, run_id), usd_per_hour)


@router.get(
    "/runs/{run_id}/export/variants.csv",
    response_class=Response,
    responses={**NOT_FOUND, **CSV_BODY},
    summary="Per-variant timing and cost as CSV",
)
def export_variants(session: SessionDep, run_id: RunId, usd_per_hour: Price = None) -> Response:
    run = run_or_404(session, run_id)
    out = _variants(session, run, usd_per_hour)
    # The nested config stays in the JSON; the CSV gets the price its costs are computed with.
    header = ["usd_per_hour", *(name for name in VariantOut.model_fields if name != "config")]
    rows = [{**v.model_dump(), "usd_per_hour": out.usd_per_hour} for v in out.variants]
    return csv_response(rows, header, csv_filename(run, "variants"))
