"""app/progress.py: job counts read once a second while a run runs, exact once it ended."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from app.db import make_engine, session_scope
from app.models import Generation, Job, JobStatus, Run, RunStatus
from app.progress import jobs_of, run_latencies
from tests.conftest import DemoData


def test_progress_ended_run_counts_are_exact_not_last_seconds(writable_demo: DemoData) -> None:
    engine = make_engine(writable_demo.database_url)
    run_id = writable_demo.run_id
    with session_scope(engine) as session:
        session.execute(update(Run).where(Run.id == run_id).values(status=RunStatus.running))
        job = session.scalars(
            select(Job).where(Job.run_id == run_id, Job.status == JobStatus.done).limit(1)
        ).one()
        job.status = JobStatus.running
    with session_scope(engine) as session:
        run = session.get_one(Run, run_id)
        running = jobs_of(session, run)
        done_while_running = running.total(JobStatus.done)
        latencies_while_running = run_latencies(session, run)
    # The last job finishes and the run ends within the same second: the ended run's page
    # must show the final count, not the once-a-second read from before.
    with session_scope(engine) as session:
        # Its image's own latency, replaced below (a figure of this machine's speed).
        measured = sum(
            session.scalars(select(Generation.latency_s).where(Generation.job_id == job.id))
        )
        session.execute(update(Job).where(Job.id == job.id).values(status=JobStatus.done))
        session.execute(
            update(Generation).where(Generation.job_id == job.id).values(latency_s=100.0)
        )
        session.execute(update(Run).where(Run.id == run_id).values(status=RunStatus.done))
    with session_scope(engine) as session:
        run = session.get_one(Run, run_id)
        ended = jobs_of(session, run)
        assert ended.total(JobStatus.done) == done_while_running + 1
        assert ended.total(JobStatus.running) == 0
        # The latencies too: read again once it ended, with the last image's figure.
        before = sum(total for total, _ in latencies_while_running.values())
        after = sum(total for total, _ in run_latencies(session, run).values())
        assert after == pytest.approx(before - measured + 100.0)
    engine.dispose()
