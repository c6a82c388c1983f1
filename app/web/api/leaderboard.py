"""The API's leaderboard: what /leaderboard shows, as JSON and as CSV, optionally counting
one panel's votes only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api_schemas import ErrorOut, LeaderboardOut, LeaderboardRowOut
from app.arena.leaderboard_cache import leaderboard
from app.arena.leaderboard_data import leaderboard_data
from app.config import Settings
from app.models import Run
from app.web.api.csv_export import csv_filename, csv_response
from app.web.api.params import CSV_BODY, RunId, run_or_404
from app.web.deps import SessionDep, SettingsDep
from app.web.selection import select_panel

router = APIRouter()

PanelCode = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Only the votes of this panel (its invitation code); all counted votes "
        "when left out.",
    ),
]


def _leaderboard(
    session: Session, settings: Settings, run: Run, panel: str | None
) -> LeaderboardOut:
    panel_row = select_panel(session, panel)
    view = leaderboard(session, run, panel_id=panel_row.id if panel_row else None)
    return LeaderboardOut(
        **leaderboard_data(
            view,
            panel=panel_row.name if panel_row else None,
            preliminary_votes=settings.arena_preliminary_votes,
        )
    )


@router.get(
    "/runs/{run_id}/leaderboard",
    responses={404: {"model": ErrorOut, "description": "No such run or panel code"}},
    summary="The arena's leaderboard: ratings, intervals, ranks, verdicts",
)
def get_leaderboard(
    session: SessionDep, settings: SettingsDep, run_id: RunId, panel: PanelCode = None
) -> LeaderboardOut:
    """What /leaderboard shows, as data: Bradley–Terry ratings (Elo scale, the reference at
    1000) with 95% bootstrap intervals and ranks, each optimized variant's verdict against
    its reference with the test behind it, and the votes counted and left out."""
    return _leaderboard(session, settings, run_or_404(session, run_id), panel)


@router.get(
    "/runs/{run_id}/export/leaderboard.csv",
    response_class=Response,
    responses={**CSV_BODY, 404: {"model": ErrorOut, "description": "No such run or panel code"}},
    summary="The leaderboard as CSV: one row per variant, with its verdict",
)
def export_leaderboard(
    session: SessionDep, settings: SettingsDep, run_id: RunId, panel: PanelCode = None
) -> Response:
    run = run_or_404(session, run_id)
    board = _leaderboard(session, settings, run, panel)
    verdicts = {v.variant: v for v in board.verdicts}
    header = [*LeaderboardRowOut.model_fields, "verdict", "verdict_votes_needed"]
    rows = [
        {
            **row.model_dump(),
            "verdict": verdicts[row.name].verdict if row.name in verdicts else None,
            "verdict_votes_needed": verdicts[row.name].votes_needed
            if row.name in verdicts
            else None,
        }
        for row in board.rows
    ]
    return csv_response(rows, header, csv_filename(run, "leaderboard"))
