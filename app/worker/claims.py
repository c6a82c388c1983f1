"""Claims in the database that let several workers share the jobs: who measures what.

A variant is claimed whole by one worker (a conditional UPDATE, then a heartbeat while its
child works), so two workers never measure the same variant; a job is claimed the same way.
Claims of dead workers (same host: pid gone; other host: silent longer than the lease) go
back to `pending`. DESIGN.md ("Scale-out") hands this to Ray, which brings its own failure
detection: this module is the part that goes then.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Engine, Update, select, update

from app.db import session_scope
from app.models import Job, JobStatus, Run, RunStatus, Variant, VariantStatus, utcnow


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_is_dead(worker: str | None, last_seen: datetime | None, cutoff: datetime) -> bool:
    """A claim's holder ("host:pid") is dead: on this host its pid is gone; elsewhere it has
    not been heard of since `cutoff`. A claim with no holder or no time is dead too (left by
    a version that did not record them)."""
    worker_host, _, pid = (worker or "").rpartition(":")
    if worker_host == socket.gethostname() and pid.isdigit():
        return not pid_alive(int(pid))
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
            if claim_is_dead(worker, claimed_at, cutoff)
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
            if claim_is_dead(worker, heartbeat_at, cutoff)
        ]
        if stale:
            session.execute(
                update(Variant)
                .where(Variant.id.in_(stale), Variant.status == VariantStatus.running)
                .values(status=VariantStatus.pending, worker=None)
            )
    return len(stale)


class Claim(NamedTuple):
    job_id: int
    run_id: int
    prompt_id: int
    seed: int
    width: int
    height: int


class Claims:
    """One worker's claims on variants and jobs; `worker_id` ("host:pid") names the holder."""

    def __init__(self, engine: Engine, worker_id: str, lease_s: float) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.lease_s = lease_s

    def next_variant(self, run_id: int | None) -> tuple[int, str] | None:
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

    def claim_variant(self, variant_id: int) -> bool:
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

    def heartbeat(self, variant_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.owned(variant_id).values(heartbeat_at=utcnow()))

    def owned(self, variant_id: int) -> Update:
        """An UPDATE of the variant that applies only while this worker still holds it."""
        return update(Variant).where(Variant.id == variant_id, Variant.worker == self.worker_id)

    def claim_job(self, variant_id: int) -> Claim | None:
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

    def release(self, job_id: int) -> None:
        with session_scope(self.engine) as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.running)
                .values(status=JobStatus.pending, worker=None, claimed_at=None)
            )
