"""`/prompts/{id}`: one prompt's images (thumbnails, each linking to its PNG) with their
settings and metrics, a compare slider between two variants at full resolution (by default
the first optimized variant against its reference), and previous/next navigation that keeps
the seed, the size and the comparison."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Prompt, Run
from app.web.deps import IdPath, SessionDep
from app.web.gallery import choices
from app.web.gallery.cells import Cell, load_cells, run_variants
from app.web.gallery.choices import SeedQuery, SizeQuery
from app.web.gallery.image_settings import metric_rows, settings_rows
from app.web.templating import render
from app.web.visibility import check_images_visible, mark_private

router = APIRouter()


def _default_pair(cells: list[Cell]) -> tuple[str, str]:
    """The first optimized variant against its reference, both with an image; else the first
    two variants with an image; else the first two variants."""
    with_image = [c for c in cells if c.generation is not None]
    by_id = {c.variant.id: c for c in with_image}
    for cell in with_image:
        reference = by_id.get(cell.variant.reference_id or -1)
        if reference is not None:
            return reference.variant.name, cell.variant.name
    pool = with_image if len(with_image) >= 2 else cells
    return pool[0].variant.name, pool[min(1, len(pool) - 1)].variant.name


def _checked_variant(side: str, name: str, run: Run, cells: list[Cell]) -> Cell:
    for cell in cells:
        if cell.variant.name == name:
            return cell
    names = ", ".join(c.variant.name for c in cells)
    raise HTTPException(422, f"{side}: no variant named {name!r} in run #{run.id} (one of {names})")


def _neighbour(session: Session, prompt: Prompt, *, after: bool) -> Prompt | None:
    position = Prompt.position > prompt.position if after else Prompt.position < prompt.position
    order = Prompt.position.asc() if after else Prompt.position.desc()
    return session.scalars(
        select(Prompt).where(Prompt.run_id == prompt.run_id, position).order_by(order).limit(1)
    ).first()


@router.get(
    "/prompts/{prompt_id}", response_class=HTMLResponse, summary="One prompt, every variant"
)
def prompt_page(
    request: Request,
    session: SessionDep,
    prompt_id: IdPath,
    seed: SeedQuery = None,
    size: SizeQuery = None,
    left: Annotated[
        str | None, Query(max_length=64, description="Variant on the slider's left side.")
    ] = None,
    right: Annotated[
        str | None, Query(max_length=64, description="Variant on the slider's right side.")
    ] = None,
) -> Response:
    prompt = session.get(Prompt, prompt_id)
    if prompt is None:
        raise HTTPException(404, f"prompt {prompt_id} not found")
    run = prompt.run
    private = check_images_visible(request, run)
    chosen_seed = choices.checked_seed(run, seed, missing_status=404)
    chosen_size = choices.checked_size(run, size, missing_status=404)
    size_param = choices.size_param(run, chosen_size)
    number = session.scalar(
        select(func.count())
        .select_from(Prompt)
        .where(Prompt.run_id == run.id, Prompt.position <= prompt.position)
    )
    size_limit = choices.size_prompt_limit(run, chosen_size)
    not_made = None
    if size_limit is not None and (number or 0) > size_limit:
        not_made = f"images at {chosen_size.label} are made for the first {size_limit} prompts only"
    variants = run_variants(session, run)
    by_prompt = load_cells(
        session, variants, [prompt.id], chosen_seed, chosen_size, not_made=not_made
    )
    cells = by_prompt[prompt.id]

    context: dict[str, Any] = {
        "nav": "gallery",
        "run": run,
        "prompt": prompt,
        "cells": cells,
        "seeds": choices.run_seeds(run),
        "seed": chosen_seed,
        "seed_param": seed,
        "sizes": choices.run_sizes(run),
        "size": chosen_size,
        "size_param": size_param,
        "left": left,
        "right": right,
    }
    if cells:
        default_left, default_right = _default_pair(cells)
        context["left_cell"] = _checked_variant("left", left or default_left, run, cells)
        context["right_cell"] = _checked_variant("right", right or default_right, run, cells)
    # Keep the seed, the size and the chosen comparison while stepping through the prompts.
    keep = {"seed": seed, "size": size_param, "left": left, "right": right}
    previous = _neighbour(session, prompt, after=False)
    following = _neighbour(session, prompt, after=True)
    metrics = metric_rows(session, cells)
    context.update(
        settings={
            c.variant.id: settings_rows(c, chosen_seed)
            + (metrics.get(c.generation.id, []) if c.generation else [])
            for c in cells
        },
        prev_url=choices.query_url(f"/prompts/{previous.id}", **keep) if previous else None,
        next_url=choices.query_url(f"/prompts/{following.id}", **keep) if following else None,
        gallery_url=choices.query_url("/prompts", run=run.id, seed=seed, size=size_param),
        category_url=choices.query_url(
            "/prompts", run=run.id, category=prompt.category, seed=seed, size=size_param
        ),
        challenge_url=choices.query_url(
            "/prompts", run=run.id, challenge=prompt.challenge, seed=seed, size=size_param
        ),
        number=number,
        run_prompts=session.scalar(
            select(func.count()).select_from(Prompt).where(Prompt.run_id == run.id)
        ),
    )
    return mark_private(render(request, "prompt.html", context), private)
