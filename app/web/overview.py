"""The overview page: runs, their variants' speed and cost, and each prompt's images."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from app.models import Prompt, Run
from app.summaries import latest_run_id, prompt_rows, variant_summaries
from app.web.deps import SessionDep

router = APIRouter()

PAGE_SIZE = 24


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request,
    session: SessionDep,
    run: Annotated[int | None, Query(ge=1, description="Run id; default the latest.")] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    runs = list(session.scalars(select(Run).order_by(Run.id.desc())))
    run_id = run if run is not None else latest_run_id(session)
    selected = session.get(Run, run_id) if run_id is not None else None
    if run is not None and selected is None:
        raise HTTPException(status_code=404, detail=f"run {run} not found")
    context: dict[str, object] = {"runs": runs, "run": selected, "page": page}
    if selected is not None:
        total = session.scalar(select(func.count()).where(Prompt.run_id == selected.id)) or 0
        context.update(
            variants=variant_summaries(session, selected),
            rows=prompt_rows(session, selected, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE),
            pages=max(1, -(-total // PAGE_SIZE)),
            prompt_count=total,
        )
    templates = request.app.state.templates
    response: HTMLResponse = templates.TemplateResponse(request, "index.html", context)
    return response
