"""How far the runs are: job counts per (run, variant, status) and image latencies per
variant, read once a second however many pages, polls and API calls ask.

On a run of 78k jobs each of these is a GROUP BY over the run's rows (~30 ms each on the
2-core box, issue 11), and the run page polls every second while the worker runs. They are
kept in a TTLMemo (app/memo.py): fresh for PROGRESS_TTL_S, then served stale while one
background thread reads them again; a page never waits for more than the first read. An
ended run's figures are read exactly once it has ended, and kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.memo import TTLMemo
from app.models import Generation, Job, JobStatus, Run, RunStatus

PROGRESS_TTL_S = 1.0
LIVE_STATUSES = (RunStatus.pending, RunStatus.running)

T = TypeVar("T")


@dataclass(frozen=True)
class RunJobs:
    """One run's job counts by variant and status, and its last finished job."""

    by_variant: dict[int, dict[JobStatus, int]] = field(default_factory=dict)
    last_finished_at: datetime | None = None

    def of(self, variant_id: int) -> dict[JobStatus, int]:
        return self.by_variant.get(variant_id, {})

    def total(self, status: JobStatus | None = None) -> int:
        return sum(
            n
            for counts in self.by_variant.values()
            for s, n in counts.items()
            if status is None or s == status
        )


_jobs: TTLMemo[str, dict[int, RunJobs]] = TTLMemo(PROGRESS_TTL_S, max_stale_s=60.0)
_latency: TTLMemo[tuple[str, int], dict[int, tuple[float, int]]] = TTLMemo(
    PROGRESS_TTL_S, max_stale_s=60.0
)
# Ended runs' figures, by what they are and how the run ended: exact, kept for an hour
# (then read again, still exact).
_ended: TTLMemo[tuple[object, ...], object] = TTLMemo(3600.0, maxsize=256)

Latencies = dict[int, tuple[float, int]]


def _url(session: Session) -> str:
    return session.get_bind().engine.url.render_as_string(hide_password=False)


def _read_jobs(session: Session, run_id: int | None = None) -> dict[int, RunJobs]:
    """Job counts of every run (or of one)."""
    where = [] if run_id is None else [Job.run_id == run_id]
    counts: dict[int, dict[int, dict[JobStatus, int]]] = defaultdict(lambda: defaultdict(dict))
    for rid, variant_id, status, n in session.execute(
        select(Job.run_id, Job.variant_id, Job.status, func.count())
        .where(*where)
        .group_by(Job.run_id, Job.variant_id, Job.status)
    ):
        counts[rid][variant_id][JobStatus(status)] = n
    last = dict(
        session.execute(
            select(Job.run_id, func.max(Job.finished_at)).where(*where).group_by(Job.run_id)
        ).all()
    )
    return {rid: RunJobs(dict(by_variant), last.get(rid)) for rid, by_variant in counts.items()}


def _read_latencies(session: Session, run_id: int) -> Latencies:
    return {
        variant_id: (float(total_s or 0.0), int(n))
        for variant_id, total_s, n in session.execute(
            select(Generation.variant_id, func.sum(Generation.latency_s), func.count())
            .where(Generation.run_id == run_id)
            .group_by(Generation.variant_id)
        )
    }


def _reader(session: Session, read: Callable[[Session], T]) -> Callable[[], T]:
    """`read` on a session of its own (a background reload outlives the request's)."""
    bind = session.get_bind()

    def run_read() -> T:
        with Session(bind) as own:
            return read(own)

    return run_read


def _ended_run(session: Session, run: Run, what: str, read: Callable[[Session], T]) -> T:
    """An ended run's figure, read exactly once it has ended and then kept (it does not
    change): the page that shows a run as done shows its final figures, not the last
    second's."""
    key = (_url(session), what, run.id, str(run.status), str(run.finished_at))
    return cast(T, _ended.get(key, _reader(session, read)))


def run_jobs(session: Session) -> dict[int, RunJobs]:
    """Every run's job counts, read once a second (a run without jobs is absent)."""
    return _jobs.get(_url(session), _reader(session, _read_jobs))


def jobs_of(session: Session, run: Run) -> RunJobs:
    """One run's job counts: once a second while it runs, exact once it has ended."""
    if run.status in LIVE_STATUSES:
        return run_jobs(session).get(run.id, RunJobs())
    return _ended_run(
        session, run, "jobs", lambda own: _read_jobs(own, run.id).get(run.id, RunJobs())
    )


def run_latencies(session: Session, run: Run) -> Latencies:
    """variant id -> (sum of its images' latency_s, number of images), for ETAs: once a
    second while the run runs, exact once it has ended."""
    if run.status in LIVE_STATUSES:
        return _latency.get(
            (_url(session), run.id), _reader(session, lambda own: _read_latencies(own, run.id))
        )
    return _ended_run(session, run, "latencies", lambda own: _read_latencies(own, run.id))
