"""Which run a page shows: `?run=ID`, or the latest run."""

from __future__ import annotations

from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Run


def select_run(session: Session, run_id: int | None) -> Run | None:
    """The run asked for (404 if it does not exist), else the latest, else None."""
    if run_id is not None:
        run = session.get(Run, run_id)
        if run is None:
            raise HTTPException(status_code=404, detail=f"run {run_id} not found")
        return run
    return session.scalars(select(Run).order_by(Run.id.desc()).limit(1)).first()


def all_runs(session: Session) -> list[Run]:
    return list(session.scalars(select(Run).order_by(Run.id.desc())))
