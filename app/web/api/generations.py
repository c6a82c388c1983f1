"""The API's per-image results: filtered, paged by offset or by cursor (a page costs what it
shows, however big the run), private while a blind run is unpublished, and streamed as CSV."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.orm import Session

from app.api_schemas import GenerationOut, GenerationPage
from app.bench.benchmark import Size
from app.models import Generation, Prompt, Run, Variant
from app.progress import LIVE_STATUSES, run_latencies
from app.web.api.csv_export import csv_filename, csv_stream
from app.web.api.params import CSV_BODY, HIDDEN, NOT_FOUND, Limit, Offset, RunId, run_or_404
from app.web.deps import INT64_MAX, SessionDep
from app.web.visibility import check_images_visible, mark_private

router = APIRouter()


def media_url(path: str, sha256: str) -> str:
    """The media URL with the content hash in it, so browsers may cache it for good."""
    return f"/media/{quote(path)}?v={sha256[:12]}"


def generation_filters(
    variant: Annotated[str | None, Query(max_length=64, description="Variant name.")] = None,
    prompt_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    seed: Annotated[int | None, Query(ge=0, le=INT64_MAX)] = None,
    size: Annotated[
        str | None,
        Query(max_length=16, description="Only images of this size, WIDTHxHEIGHT (e.g. 1344x768)."),
    ] = None,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if size is not None:
        try:
            parsed = Size.model_validate(size)
        except ValidationError as err:
            reason = err.errors()[0]["msg"].removeprefix("Value error, ")
            raise HTTPException(422, f"size: {reason}") from None
        where += [Generation.width == parsed.width, Generation.height == parsed.height]
    if variant is not None:
        # On the generations alone (no join): a count of a big run's rows stays an index scan.
        where.append(Generation.variant_id.in_(select(Variant.id).where(Variant.name == variant)))
    if prompt_id is not None:
        where.append(Generation.prompt_id == prompt_id)
    if seed is not None:
        where.append(Generation.seed == seed)
    return where


GenerationFilters = Annotated[list[ColumnElement[bool]], Depends(generation_filters)]


def _generation_select(run_id: int, where: list[ColumnElement[bool]], *columns: Any) -> Select[Any]:
    return (
        select(*columns)
        .select_from(Generation)
        .join(Variant, Generation.variant_id == Variant.id)
        .join(Prompt, Generation.prompt_id == Prompt.id)
        .where(Generation.run_id == run_id, *where)
    )


def _generation_out(g: Generation, variant: str, prompt: str) -> GenerationOut:
    return GenerationOut(
        generation_id=g.id,
        job_id=g.job_id,
        variant=variant,
        prompt_id=g.prompt_id,
        prompt=prompt,
        seed=g.seed,
        latency_s=g.latency_s,
        steps=g.steps,
        guidance=g.guidance,
        dtype=g.dtype,
        lora=g.lora,
        optimizations=g.optimizations,
        width=g.width,
        height=g.height,
        image_url=media_url(g.image_path, g.image_sha256),
        thumb_url=media_url(g.thumb_path, g.image_sha256),
        sha256=g.image_sha256,
    )


def _generations(
    session: Session, run_id: int, where: list[ColumnElement[bool]]
) -> Iterator[GenerationOut]:
    """Every matching generation in page order (variant, prompt position, seed), read a
    variant at a time in chunks: an export streams them with flat memory."""
    for variant in _variants_in_order(session, run_id):
        rows = session.execute(
            _generation_select(run_id, where, Generation, Prompt.text)
            .where(Generation.variant_id == variant.id)
            .order_by(Prompt.position, Generation.seed)
            .execution_options(yield_per=1000)
        )
        for g, prompt in rows:
            yield _generation_out(g, variant.name, prompt)
        session.expunge_all()  # a streamed export keeps no ORM objects behind it


def _counts_per_variant(
    session: Session, run: Run, where: list[ColumnElement[bool]]
) -> dict[int, int]:
    """Matching generations per variant id. Unfiltered, an ended run's counts are exact and
    kept (app/progress.py), so a page of a finished run does not count its 78k rows again;
    otherwise one pass over the index on (variant_id, prompt_id)."""
    if not where and run.status not in LIVE_STATUSES:
        return {variant_id: n for variant_id, (_, n) in run_latencies(session, run).items()}
    run_variants = select(Variant.id).where(Variant.run_id == run.id)
    return dict(
        session.execute(
            select(Generation.variant_id, func.count())
            .where(Generation.variant_id.in_(run_variants), *where)
            .group_by(Generation.variant_id)
        ).all()
    )


def _variants_in_order(session: Session, run_id: int) -> list[Variant]:
    return list(
        session.scalars(select(Variant).where(Variant.run_id == run_id).order_by(Variant.position))
    )


def _cursor(item: GenerationOut, variant_position: int, prompt_position: int) -> str:
    return f"{variant_position}.{prompt_position}.{item.seed}"


def _generation_page(
    session: Session,
    run_id: int,
    where: list[ColumnElement[bool]],
    *,
    limit: int,
    offset: int,
    after: tuple[int, int, int] | None,
    counts: dict[int, int],
) -> tuple[list[GenerationOut], str | None]:
    """One page in page order, read a variant at a time: each query is one variant's rows
    past the cursor (or the offset), through the index on its prompts, so a page costs what
    it shows and not the run's 78k rows (issue 11); whole variants before the offset are
    skipped by their `counts` (per variant id). Returns the page and the cursor of its last item."""
    items: list[tuple[GenerationOut, int, int]] = []
    for variant in _variants_in_order(session, run_id):
        if after is not None and variant.position < after[0]:
            continue
        query = (
            _generation_select(run_id, where, Generation, Prompt.text, Prompt.position)
            .where(Generation.variant_id == variant.id)
            .order_by(Prompt.position, Generation.seed)
        )
        if after is not None and variant.position == after[0]:
            query = query.where(
                tuple_(Prompt.position, Generation.seed) > tuple_(after[1], after[2])
            )
        if after is None and offset:
            count = counts.get(variant.id, 0)
            if offset >= count:
                offset -= count
                continue
            query, offset = query.offset(offset), 0
        for g, prompt, position in session.execute(query.limit(limit - len(items))):
            items.append((_generation_out(g, variant.name, prompt), variant.position, position))
        if len(items) >= limit:
            break
    if not items:
        return [], None
    last, variant_position, prompt_position = items[-1]
    return [item for item, _, _ in items], _cursor(last, variant_position, prompt_position)


def _parse_cursor(after: str) -> tuple[int, int, int]:
    try:
        variant_position, prompt_position, seed = (int(part) for part in after.split("."))
    except ValueError:
        raise HTTPException(422, f"after: not a cursor from this API: {after!r}") from None
    return variant_position, prompt_position, seed


@router.get(
    "/runs/{run_id}/generations",
    responses={**NOT_FOUND, **HIDDEN},
    summary="Per-image results",
)
def list_generations(
    request: Request,
    response: Response,
    session: SessionDep,
    run_id: RunId,
    where: GenerationFilters,
    limit: Limit = 100,
    offset: Offset = 0,
    after: Annotated[
        str | None,
        Query(
            max_length=80,
            description="The `next` cursor of the previous page: the page after it "
            "(faster than `offset` deep into a big run).",
        ),
    ] = None,
) -> GenerationPage:
    run = run_or_404(session, run_id)
    mark_private(response, check_images_visible(request, run))
    cursor = _parse_cursor(after) if after is not None else None
    # The total, and the whole variants an offset skips, from one count per variant.
    counts = _counts_per_variant(session, run, where)
    total = sum(counts.values())
    items, last = _generation_page(
        session, run_id, where, limit=limit, offset=offset, after=cursor, counts=counts
    )
    more = len(items) == limit and last is not None
    return GenerationPage(
        total=total, limit=limit, offset=offset, items=items, next=last if more else None
    )


@router.get(
    "/runs/{run_id}/export/generations.csv",
    response_class=Response,
    responses={**NOT_FOUND, **CSV_BODY, **HIDDEN},
    summary="Per-image results as CSV",
)
def export_generations(
    request: Request, session: SessionDep, run_id: RunId, where: GenerationFilters
) -> Response:
    run = run_or_404(session, run_id)
    private = check_images_visible(request, run)

    def rows(stream_session: Session) -> Iterator[dict[str, Any]]:
        return (g.model_dump() for g in _generations(stream_session, run_id, where))

    return mark_private(
        csv_stream(
            request, rows, list(GenerationOut.model_fields), csv_filename(run, "generations")
        ),
        private,
    )
