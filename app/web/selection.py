"""Which run a page shows (`?run=ID`, or the latest run), and which panel (`?panel=CODE`)."""

from __future__ import annotations

from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Panel, Run


def select_run(session: Session, run_id: int | None) -> Run | None:
    """The run asked for (404 if it does not exist), else the latest, else None."""
    if run_id is not None:
        run = session.get(Run, run_id)
        if run is None:
            raise HTTPException(status_code=404, detail=f"run {run_id} not found")
        return run
    return session.scalars(select(Run).order_by(Run.id.desc()).limit(1)).first()


def select_panel(session: Session, code: str | None) -> Panel | None:
    """The panel with this invitation code (404 if none has it), or None without a code."""
    if not code:
        return None
    panel = session.scalars(select(Panel).where(Panel.code == code)).first()
    if panel is None:
        raise HTTPException(status_code=404, detail=f"unknown panel code {code!r}")
    return panel


def all_runs(session: Session) -> list[Run]:
    return list(session.scalars(select(Run).order_by(Run.id.desc())))
