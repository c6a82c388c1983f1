"""The API's prompts of a run: filtered by category, challenge or text, paged by offset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from app.api_schemas import PromptOut, PromptPage
from app.models import Prompt
from app.web.api.params import NOT_FOUND, Limit, Offset, RunId, run_or_404
from app.web.deps import SessionDep

router = APIRouter()


@router.get("/runs/{run_id}/prompts", responses=NOT_FOUND, summary="The run's prompts")
def list_prompts(
    session: SessionDep,
    run_id: RunId,
    category: Annotated[str | None, Query(max_length=64, description="Exact category.")] = None,
    challenge: Annotated[str | None, Query(max_length=64, description="Exact challenge.")] = None,
    q: Annotated[
        str | None, Query(max_length=500, description="Text contained, ignoring case.")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PromptPage:
    run_or_404(session, run_id)
    where = [Prompt.run_id == run_id]
    if category is not None:
        where.append(Prompt.category == category)
    if challenge is not None:
        where.append(Prompt.challenge == challenge)
    if q:
        where.append(Prompt.text.icontains(q, autoescape=True))
    total = session.scalar(select(func.count()).select_from(Prompt).where(*where)) or 0
    prompts = session.scalars(
        select(Prompt).where(*where).order_by(Prompt.position).limit(limit).offset(offset)
    )
    items = [
        PromptOut(
            id=p.id, position=p.position, text=p.text, category=p.category, challenge=p.challenge
        )
        for p in prompts
    ]
    return PromptPage(total=total, limit=limit, offset=offset, items=items)
