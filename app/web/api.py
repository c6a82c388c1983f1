"""The JSON API under /api/v1, documented at /docs: runs, variants with timing and cost,
prompts, per-image results, and CSV exports of the last two. Read-only."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.orm import Session

from app.api_schemas import (
    ErrorOut,
    GenerationOut,
    GenerationPage,
    LeaderboardOut,
    LeaderboardRowOut,
    PromptOut,
    PromptPage,
    RunDetailOut,
    RunOut,
    ShapeOut,
    ShapesOut,
    VariantOut,
    VariantsOut,
)
from app.arena.leaderboard import leaderboard, leaderboard_data
from app.bench.benchmark import Size
from app.bench.scaling import RunScaling, run_scaling
from app.bench.summaries import public_environment, variant_summaries
from app.config import Settings
from app.csv_cells import csv_cell
from app.models import Generation, JobStatus, Prompt, Run, Variant
from app.progress import LIVE_STATUSES, jobs_of, run_latencies
from app.web.deps import SessionDep, SettingsDep
from app.web.selection import select_panel
from app.web.visibility import check_images_visible, mark_private

router = APIRouter(prefix="/api/v1", tags=["api"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such run"}
}
CSV_BODY: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV with a header row"}
}
HIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "A blind run whose results are not published yet"}
}
# Ids are 64-bit in the database; a larger number would fail in the driver instead of a 404.
INT64_MAX = 2**63 - 1

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


def _run_or_404(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(status_code=404, detail=f"run {run_id} not found")
    return run


def _job_counts(session: Session, run: Run) -> dict[str, int] | None:
    """jobs_done, jobs_failed, jobs_total (app/progress.py: once a second while the run
    runs, exact once it has ended); None for a run without jobs."""
    jobs = jobs_of(session, run)
    if not jobs.by_variant:
        return None
    return {
        "jobs_done": jobs.total(JobStatus.done),
        "jobs_failed": jobs.total(JobStatus.failed),
        "jobs_do_not_fit": jobs.total(JobStatus.does_not_fit),
        "jobs_total": jobs.total(),
    }


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite drops the zone of the UTC times we store.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _run_fields(run: Run, counts: dict[str, int] | None) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "description": run.description,
        "status": run.status.value,
        "device": run.device,
        "hardware": run.hardware,
        "usd_per_hour": run.usd_per_hour,
        "width": run.width,
        "height": run.height,
        "seeds": run.config["seeds"],
        "created_at": _utc(run.created_at),
        "finished_at": _utc(run.finished_at),
        **(counts or {"jobs_done": 0, "jobs_failed": 0, "jobs_do_not_fit": 0, "jobs_total": 0}),
    }


def media_url(path: str, sha256: str) -> str:
    """The media URL with the content hash in it, so browsers may cache it for good."""
    return f"/media/{quote(path)}?v={sha256[:12]}"


def _csv_response(rows: list[dict[str, Any]], header: list[str], filename: str) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([csv_cell(row[name]) for name in header] for row in rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _csv_stream(
    request: Request,
    rows: Callable[[Session], Iterator[dict[str, Any]]],
    header: list[str],
    filename: str,
) -> StreamingResponse:
    """A CSV written as it is read, in chunks of CSV_CHUNK_ROWS: the first byte leaves at
    once and memory stays flat however many rows (the generations of a big run were 34 MB,
    built whole in memory before the first byte: 4.7 s and +420 MB, issue 11)."""
    # The request's session closes when the handler returns; the stream reads with its own.
    sessions = request.app.state.sessions

    def body() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        with sessions() as session:
            for n, row in enumerate(rows(session), 1):
                writer.writerow(csv_cell(row[name]) for name in header)
                if n % CSV_CHUNK_ROWS == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


CSV_CHUNK_ROWS = 500


def _csv_filename(run: Run, what: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', run.name)}-run{run.id}-{what}.csv"


@router.get("/runs", summary="List runs, latest first")
def list_runs(session: SessionDep) -> list[RunOut]:
    runs = session.scalars(select(Run).order_by(Run.id.desc()))
    return [RunOut(**_run_fields(run, _job_counts(session, run))) for run in runs]


@router.get("/runs/{run_id}", responses=NOT_FOUND, summary="One run and its environment")
def get_run(session: SessionDep, run_id: RunId) -> RunDetailOut:
    run = _run_or_404(session, run_id)
    return RunDetailOut(
        **_run_fields(run, _job_counts(session, run)),
        prompt_set=run.prompt_set,
        warmup=run.warmup,
        repeats=run.repeats,
        environment=public_environment(run.environment),
        config=public_config(run.config),
    )


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """The run's config as the API shows it: its files by name only. The stored config keeps
    the worker machine's absolute paths (where the run came from), which are nobody's
    business on a public server."""
    return {
        key: PurePath(value).name if key.endswith("_path") and isinstance(value, str) else value
        for key, value in config.items()
    }


def _variants(session: Session, run: Run, usd_per_hour: float | None) -> VariantsOut:
    variants = []
    for summary in variant_summaries(session, run, usd_per_hour=usd_per_hour):
        fields = dataclasses.asdict(summary)
        fields["speedup_vs_reference"] = fields.pop("speedup")
        variants.append(VariantOut(**fields))
    return VariantsOut(
        run_id=run.id,
        usd_per_hour=run.usd_per_hour if usd_per_hour is None else usd_per_hour,
        stored_usd_per_hour=run.usd_per_hour,
        variants=variants,
    )


@router.get("/runs/{run_id}/variants", responses=NOT_FOUND, summary="Variants with timing and cost")
def list_variants(session: SessionDep, run_id: RunId, usd_per_hour: Price = None) -> VariantsOut:
    return _variants(session, _run_or_404(session, run_id), usd_per_hour)


def _shapes(scaling: RunScaling) -> list[ShapeOut]:
    best = {(b.variant, b.size, b.batch_size) for b in scaling.best_batches()}
    out = []
    for row in scaling.rows:
        fits = scaling.fits_on(row) if row.measured else None
        fields = {name: getattr(row, name) for name in ShapeOut.model_fields if hasattr(row, name)}
        out.append(
            ShapeOut(
                **fields,
                best_batch=(row.variant, row.size, row.batch_size) in best,
                fits_on_gb=None if fits is None else list(fits),
            )
        )
    return out


# Timings and memory per shape are public like the variants' (a blind run hides its images,
# not its figures): nothing here links an image to its variant.
@router.get(
    "/runs/{run_id}/shapes",
    responses=NOT_FOUND,
    summary="Latency, throughput, memory and fit per (variant, size, batch size)",
)
def list_shapes(session: SessionDep, settings: SettingsDep, run_id: RunId) -> ShapesOut:
    run = _run_or_404(session, run_id)
    scaling = run_scaling(session, run, settings.gpu_memory_sizes_gb)
    return ShapesOut(
        run_id=run.id,
        main_size=scaling.main_size,
        sizes=scaling.sizes,
        batch_sizes=scaling.batch_sizes,
        gpu_memory_gb=list(scaling.gpu_memory_gb),
        shapes=_shapes(scaling),
    )


@router.get(
    "/runs/{run_id}/export/shapes.csv",
    response_class=Response,
    responses={**NOT_FOUND, **CSV_BODY},
    summary="Per (variant, size, batch size) latency, throughput, memory and fit as CSV",
)
def export_shapes(
    request: Request, session: SessionDep, settings: SettingsDep, run_id: RunId
) -> Response:
    run = _run_or_404(session, run_id)
    gpu_sizes = settings.gpu_memory_sizes_gb

    def rows(stream_session: Session) -> Iterator[dict[str, Any]]:
        scaling = run_scaling(stream_session, stream_session.get_one(Run, run_id), gpu_sizes)
        return (shape.model_dump() for shape in _shapes(scaling))

    return _csv_stream(request, rows, list(ShapeOut.model_fields), _csv_filename(run, "shapes"))


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
    _run_or_404(session, run_id)
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
    run = _run_or_404(session, run_id)
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
    run = _run_or_404(session, run_id)
    private = check_images_visible(request, run)

    def rows(stream_session: Session) -> Iterator[dict[str, Any]]:
        return (g.model_dump() for g in _generations(stream_session, run_id, where))

    return mark_private(
        _csv_stream(
            request, rows, list(GenerationOut.model_fields), _csv_filename(run, "generations")
        ),
        private,
    )


@router.get(
    "/runs/{run_id}/export/variants.csv",
    response_class=Response,
    responses={**NOT_FOUND, **CSV_BODY},
    summary="Per-variant timing and cost as CSV",
)
def export_variants(session: SessionDep, run_id: RunId, usd_per_hour: Price = None) -> Response:
    run = _run_or_404(session, run_id)
    out = _variants(session, run, usd_per_hour)
    # The nested config stays in the JSON; the CSV gets the price its costs are computed with.
    header = ["usd_per_hour", *(name for name in VariantOut.model_fields if name != "config")]
    rows = [{**v.model_dump(), "usd_per_hour": out.usd_per_hour} for v in out.variants]
    return _csv_response(rows, header, _csv_filename(run, "variants"))


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
    return _leaderboard(session, settings, _run_or_404(session, run_id), panel)


@router.get(
    "/runs/{run_id}/export/leaderboard.csv",
    response_class=Response,
    responses={**CSV_BODY, 404: {"model": ErrorOut, "description": "No such run or panel code"}},
    summary="The leaderboard as CSV: one row per variant, with its verdict",
)
def export_leaderboard(
    session: SessionDep, settings: SettingsDep, run_id: RunId, panel: PanelCode = None
) -> Response:
    run = _run_or_404(session, run_id)
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
    return _csv_response(rows, header, _csv_filename(run, "leaderboard"))
