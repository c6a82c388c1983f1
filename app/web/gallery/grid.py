"""Gallery `/prompts`: every prompt of a run as a row of thumbnails, one per variant,
filtered by category, challenge and text, and paged ("Load more" appends the next page's rows
with htmx; the filter form swaps the results)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.models import Prompt, Run
from app.web.deps import RunQuery, SessionDep
from app.web.gallery import choices
from app.web.gallery.cells import Row, load_cells, run_variants
from app.web.gallery.choices import SeedQuery, SizeQuery
from app.web.selection import select_run
from app.web.templating import render
from app.web.visibility import check_images_visible, mark_private

router = APIRouter()

PER_PAGE = 24
MAX_PER_PAGE = 96


def _distinct(session: Session, run: Run, column: Any) -> list[str]:
    return list(
        session.scalars(select(column).where(Prompt.run_id == run.id).distinct().order_by(column))
    )


def _filtered(
    run: Run, category: str, challenge: str, q: str, limit: int | None = None
) -> Select[Prompt]:
    query = select(Prompt).where(Prompt.run_id == run.id)
    if limit is not None:
        # Only the prompts with images at the size shown: the run's first `limit`.
        first = select(Prompt.id).where(Prompt.run_id == run.id).order_by(Prompt.position)
        query = query.where(Prompt.id.in_(first.limit(limit)))
    if category:
        query = query.where(Prompt.category == category)
    if challenge:
        query = query.where(Prompt.challenge == challenge)
    if q:
        # autoescape: a "%" or "_" typed in the search box matches itself, not anything.
        query = query.where(Prompt.text.icontains(q, autoescape=True))
    return query


def _prompts(count: int) -> str:
    return f"{count} {'prompt' if count == 1 else 'prompts'}"


def _results_sentence(
    total: int, first: int, last: int, paged: bool, filters: list[str], shown_as: list[str]
) -> str:
    """The one sentence the gallery's live region says when the results change. The results
    themselves are not live: a screen reader reads a swapped region unreliably, or all of it.
    `filters`: what narrows the prompts; `shown_as`: a seed or size other than the default."""
    if total == 0:
        matched = f"No prompts match {', '.join(filters)}" if filters else "No prompts"
        return ", ".join([matched, *shown_as]) + "."
    count = f"{first}–{last} of {_prompts(total)}" if paged else _prompts(total)
    parts = [f"{count} shown"]
    if filters:
        parts.append(f"filtered by {', '.join(filters)}")
    return ", ".join(parts + shown_as) + "."


@router.get("/prompts", response_class=HTMLResponse, summary="Gallery: images side by side")
def gallery(
    request: Request,
    session: SessionDep,
    run: RunQuery = None,
    category: Annotated[str, Query(max_length=64, description="Only this category.")] = "",
    challenge: Annotated[str, Query(max_length=64, description="Only this challenge.")] = "",
    q: Annotated[
        str, Query(max_length=200, description="Prompt text contains (ignoring case).")
    ] = "",
    seed: SeedQuery = None,
    size: SizeQuery = None,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
    per_page: Annotated[
        int, Query(ge=1, le=MAX_PER_PAGE, description="Prompts per page.")
    ] = PER_PAGE,
) -> Response:
    selected = select_run(session, run)
    # The filter form swaps the results; "Load more" appends the next page's rows.
    target = request.headers.get("HX-Target") or ""
    block = {"results": "results", "load-more": "rows"}.get(target, "content")
    context: dict[str, Any] = {"nav": "gallery", "run": selected}
    if selected is None:
        return render(request, "gallery.html", context)
    private = check_images_visible(request, selected)

    q = q.strip()
    chosen_seed = choices.checked_seed(selected, seed)
    chosen_size = choices.checked_size(selected, size)
    size_param = choices.size_param(selected, chosen_size)
    size_limit = choices.size_prompt_limit(selected, chosen_size)
    variants = run_variants(session, selected)
    query = _filtered(selected, category, challenge, q, size_limit)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // per_page))
    if page > pages:
        raise HTTPException(
            404, f"page: {page} is past the last page ({pages}) of {total} matching prompts"
        )
    prompts = list(
        session.scalars(
            query.order_by(Prompt.position).limit(per_page).offset((page - 1) * per_page)
        )
    )
    cells = load_cells(
        session, variants, [p.id for p in prompts], chosen_seed, chosen_size, thumbnails_only=True
    )
    # Links carry the seed only when one was asked for, the size only when it is not the
    # main one; the defaults keep URLs short.
    rows = [
        Row(p, choices.query_url(f"/prompts/{p.id}", seed=seed, size=size_param), cells[p.id])
        for p in prompts
    ]

    # Appended below the earlier pages, the pager counts from the first prompt on.
    shown_from = 1 if block == "rows" else (page - 1) * per_page + 1
    shown_to = (page - 1) * per_page + len(prompts)
    filters = [f"“{q}”"] if q else []
    filters += [f"category {category}"] if category else []
    filters += [f"challenge {challenge}"] if challenge else []
    # The filter form always sends a seed: said only when it is not the default one.
    shown_as = [f"seed {chosen_seed}"] if chosen_seed != choices.run_seeds(selected)[0] else []
    shown_as += [f"{chosen_size.width}×{chosen_size.height}"] if size_param else []
    # What the live region says once "Load more" has appended this page's rows.
    loaded = None
    if block == "rows":
        more = "prompt" if len(prompts) == 1 else "prompts"
        loaded = f"{len(prompts)} more {more} loaded, {shown_from}–{shown_to} of {total} shown."

    state: dict[str, object] = {
        "run": selected.id,
        "category": category,
        "challenge": challenge,
        "q": q,
        "seed": seed,
        "size": size_param,
        "per_page": per_page if per_page != PER_PAGE else None,
    }
    context.update(
        variants=variants,
        rows=rows,
        seeds=choices.run_seeds(selected),
        seed=chosen_seed,
        sizes=choices.run_sizes(selected),
        size=chosen_size,
        size_limit=size_limit,
        category=category,
        challenge=challenge,
        # Not "q": base.html sets a variable of that name for its nav links.
        search=q,
        per_page=per_page,
        default_per_page=PER_PAGE,
        categories=_distinct(session, selected, Prompt.category),
        challenges=_distinct(session, selected, Prompt.challenge),
        filtered=bool(category or challenge or q),
        run_prompts=session.scalar(
            select(func.count()).select_from(Prompt).where(Prompt.run_id == selected.id)
        ),
        total=total,
        page=page,
        pages=pages,
        shown_from=shown_from,
        shown_to=shown_to,
        next_count=min(per_page, total - shown_to),
        announce=_results_sentence(total, shown_from, shown_to, pages > 1, filters, shown_as),
        loaded=loaded,
        prev_url=choices.query_url("/prompts", **state, page=page - 1)
        if page > 1 and block != "rows"
        else None,
        next_url=choices.query_url("/prompts", **state, page=page + 1) if page < pages else None,
        filter_url=lambda **changes: choices.query_url("/prompts", **{**state, **changes}),
        all_url=choices.query_url("/prompts", run=selected.id, seed=seed, size=size_param),
    )
    return mark_private(render(request, "gallery.html", context, block=block), private)
