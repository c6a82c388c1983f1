"""What the API's routers share: the path and query parameters, the documented error
responses, and the run a route is about (404 when there is none)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Path, Query
from sqlalchemy.orm import Session

from app.api_schemas import ErrorOut
from app.models import Run
from app.web.deps import INT64_MAX

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such run"}
}
CSV_BODY: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV with a header row"}
}
HIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "A blind run whose results are not published yet"}
}

RunId = Annotated[int, Path(ge=1, le=INT64_MAX, description="The run's id.")]
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX, description="Items to skip.")]
Price = Annotated[
    float | None,
    Query(
        ge=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="What-if price in US dollars per hour for the costs; the run's own price "
        "when left out. Nothing stored changes.",
    ),
]


def run_or_404(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(status_code=404, detail=f"run {run_id} not found")
    return run
