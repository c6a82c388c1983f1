"""Runs `/runs` (every run with its progress) and `/runs/{id}` (one run's live progress).

The run page polls itself with htmx while the run is pending or running: the `progress`
block carries `hx-trigger="every 1s"` and the same URL returns only that block. Once the run
has ended the block is rendered without the trigger, so the last poll stops the polling.

ETA: per variant, the mean pipeline latency of its images so far × its jobs still to do; a
variant with no image yet borrows the mean over the whole run's images. Per-image latency
leaves out loading and compiling the variants not started yet, so the ETA is a lower bound
(the page says so). The alternative, the rate of recent `finished_at` timestamps, mixes the
speeds of different variants (a 28-step dev and a 4-step schnell) into one rate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.bench.summaries import public_environment
from app.models import JobStatus, Run, Variant
from app.progress import LIVE_STATUSES, jobs_of, run_latencies
from app.web.deps import RunPath, SessionDep
from app.web.selection import all_runs
from app.web.templating import render

# A page, not the API: kept out of the OpenAPI schema (/docs documents the API only).
router = APIRouter(include_in_schema=False)

PROGRESS_TARGET = "run-progress"


@dataclass(frozen=True)
class Counts:
    done: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        return self.done + self.failed + self.running + self.pending

    @property
    def remaining(self) -> int:
        return self.running + self.pending

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.done + other.done,
            self.failed + other.failed,
            self.running + other.running,
            self.pending + other.pending,
        )


@dataclass(frozen=True)
class VariantProgress:
    name: str
    status: str
    error: str | None
    counts: Counts
    mean_latency_s: float | None
    eta_s: float | None
    # True when the ETA uses the run's mean latency because this variant has no image yet.
    eta_borrowed: bool


@dataclass(frozen=True)
class RunProgress:
    run: Run
    variants: list[VariantProgress]
    counts: Counts
    eta_s: float | None
    last_finished_at: datetime | None

    @property
    def live(self) -> bool:
        return self.run.status in LIVE_STATUSES


def _counts(by_status: dict[JobStatus, int]) -> Counts:
    return Counts(**{status.value: n for status, n in by_status.items()})


def run_counts(session: Session, runs: list[Run]) -> dict[int, Counts]:
    """Job counts of these runs (app/progress.py: once a second while a run runs, exact
    once it has ended)."""
    out: dict[int, Counts] = defaultdict(Counts)
    for run in runs:
        for by_status in jobs_of(session, run).by_variant.values():
            out[run.id] = out[run.id] + _counts(by_status)
    return out


def run_progress(session: Session, run: Run) -> RunProgress:
    variants = list(
        session.scalars(select(Variant).where(Variant.run_id == run.id).order_by(Variant.position))
    )
    jobs = jobs_of(session, run)
    counts = {vid: _counts(by_status) for vid, by_status in jobs.by_variant.items()}
    latency = run_latencies(session, run)
    images = sum(n for _, n in latency.values())
    run_mean = sum(s for s, _ in latency.values()) / images if images else None

    rows = []
    for variant in variants:
        c = counts.get(variant.id, Counts())
        total_s, n = latency.get(variant.id, (0.0, 0))
        mean = total_s / n if n else None
        per_image = mean if mean is not None else run_mean
        if c.remaining == 0:
            eta: float | None = 0.0
        else:
            eta = per_image * c.remaining if per_image is not None else None
        rows.append(
            VariantProgress(
                name=variant.name,
                status=variant.status.value,
                error=variant.error,
                counts=c,
                mean_latency_s=mean,
                eta_s=eta,
                eta_borrowed=mean is None and c.remaining > 0 and eta is not None,
            )
        )
    etas = [row.eta_s for row in rows]
    last = jobs.last_finished_at
    return RunProgress(
        run=run,
        variants=rows,
        counts=sum((row.counts for row in rows), Counts()),
        eta_s=None if any(e is None for e in etas) else sum(e for e in etas if e is not None),
        last_finished_at=last,
    )


def fmt_when(value: datetime | None) -> str:
    """UTC, to the second. SQLite gives back naive datetimes; they were stored as UTC."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = math.ceil(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def flat_environment(env: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested environment records (e.g. `packages`) as dotted keys, for a plain list."""
    out: list[tuple[str, str]] = []
    for key, value in env.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(flat_environment(value, f"{name}."))
        else:
            out.append((name, "—" if value is None else str(value)))
    return out


HELPERS: dict[str, Any] = {"when": fmt_when, "iso": iso, "duration": fmt_duration}


@router.get("/runs", response_class=HTMLResponse, summary="Runs page")
def runs_page(request: Request, session: SessionDep) -> Response:
    runs = all_runs(session)
    context: dict[str, Any] = {
        "nav": "runs",
        "run": None,
        "runs": runs,
        "counts": run_counts(session, runs),
        "empty_counts": Counts(),
        **HELPERS,
    }
    return render(request, "runs.html", context)


@router.get("/runs/{run_id}", response_class=HTMLResponse, summary="Run progress page")
def run_page(
    request: Request,
    session: SessionDep,
    run_id: RunPath,
) -> Response:
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(status_code=404, detail=f"run {run_id} not found")
    context: dict[str, Any] = {
        "nav": "runs",
        "run": run,
        "progress": run_progress(session, run),
        "environment": flat_environment(public_environment(run.environment)),
        "progress_target": PROGRESS_TARGET,
        **HELPERS,
    }
    block = "progress" if request.headers.get("HX-Target") == PROGRESS_TARGET else "content"
    return render(request, "run.html", context, block=block)
