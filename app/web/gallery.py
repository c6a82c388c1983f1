"""Gallery `/prompts`: every prompt of a run as a row of thumbnails, one per variant, filtered
and paged ("Load more" appends the next page with htmx); and `/prompts/{id}`: one prompt's
images (thumbnails, each linking to its PNG) with their settings, a compare slider between two
variants at full resolution, and previous/next navigation. Each image's settings list ends
with its automatic metrics (SSIM and PSNR against its reference, CLIP score), when computed.
Both show one seed at one of the run's sizes (`size=WxH`, default the main size): a run with
several sizes has one image per (variant, prompt, seed, size)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.models import (
    Generation,
    GenerationMetric,
    Job,
    JobStatus,
    MetricStatus,
    Prompt,
    Run,
    Variant,
)
from app.web.deps import INT64_MAX, IdPath, RunQuery, SessionDep
from app.web.selection import select_run
from app.web.templating import fmt_seconds, render
from app.web.visibility import check_images_visible, mark_private
from app.worker.images import THUMB_MAX_SIDE

# A page, not the API: kept out of the OpenAPI schema (/docs documents the API only).
router = APIRouter(include_in_schema=False)

PER_PAGE = 24
MAX_PER_PAGE = 96

SeedQuery = Annotated[
    int | None, Query(ge=0, le=INT64_MAX, description="One of the run's seeds; default the first.")
]
SizeQuery = Annotated[
    str | None,
    Query(max_length=16, description="One of the run's sizes, WIDTHxHEIGHT; default the main one."),
]
_SIZE_TEXT = re.compile(r"(\d{1,5})x(\d{1,5})")
# A cell's status when no image is made at the chosen size: its variant's config narrows the
# run's sizes, or the prompt is past the run's size_prompt_limit. There is no job, and the
# variant's own status ("done") would read as a bug.
NOT_MADE = "not_made"


class ImageSize(NamedTuple):
    width: int
    height: int

    @property
    def label(self) -> str:
        """As URLs and configs write it: "96x64"."""
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class Cell:
    """One variant's image of one prompt at one seed and size, or why there is none."""

    variant: Variant
    generation: Generation | None
    # The job's status; the variant's when it has no job for this image (not queued yet),
    # or NOT_MADE when the variant makes no images at this size.
    status: str
    error: str | None
    size: ImageSize

    @property
    def label(self) -> str:
        """The status as a cell without an image shows it. Out of memory is a result of the
        benchmark, not a failure: it says so, with the size."""
        if self.status == JobStatus.does_not_fit:
            return f"does not fit at {self.size.label}"
        if self.status == NOT_MADE:
            return f"not made at {self.size.label}"
        return self.status

    @property
    def image_url(self) -> str:
        return _media_url(self._generation.image_path, self._generation.image_sha256)

    @property
    def thumb_url(self) -> str:
        return _media_url(self._generation.thumb_path, self._generation.image_sha256)

    @property
    def thumb_width(self) -> int:
        """The thumbnail's width: the image scaled down (never up) to fit THUMB_MAX_SIDE."""
        g = self._generation
        return min(g.width, round(g.width * THUMB_MAX_SIDE / max(g.width, g.height)))

    @property
    def srcset(self) -> str | None:
        """The thumbnail and the PNG by width, for an image shown small (the browser takes the
        PNG only where the screen needs more pixels than the thumbnail has); None when the
        thumbnail is the image's own size."""
        if self.thumb_width >= self._generation.width:
            return None
        return f"{self.thumb_url} {self.thumb_width}w, {self.image_url} {self._generation.width}w"

    @property
    def _generation(self) -> Generation:
        if self.generation is None:
            raise ValueError(f"{self.variant.name} has no image here")
        return self.generation


@dataclass(frozen=True)
class Row:
    prompt: Prompt
    url: str
    cells: list[Cell]


def _media_url(path: str, sha256: str) -> str:
    # The content hash in the URL lets /media serve with a one-year immutable Cache-Control.
    return f"/media/{path}?v={sha256[:12]}"


def _url(path: str, **params: object) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None and v != ""})
    return f"{path}?{query}" if query else path


def _seeds(run: Run) -> list[int]:
    return [int(s) for s in run.config["seeds"]]


def _checked_seed(run: Run, seed: int | None, *, missing_status: int = 422) -> int:
    """The seed to show. A seed the run lacks is a bad filter on the gallery (422) and a
    resource that does not exist on a prompt's page (404: that prompt at that seed)."""
    seeds = _seeds(run)
    if seed is None:
        return seeds[0]
    if seed not in seeds:
        listed = ", ".join(str(s) for s in seeds)
        raise HTTPException(
            missing_status, f"seed: {seed} is not a seed of run #{run.id} (one of {listed})"
        )
    return seed


def _sizes(run: Run) -> list[ImageSize]:
    """The run's image sizes, the main one (runs.width x height) first. A run stored before
    sizes existed has no "sizes" in its config: one size."""
    labels = run.config.get("sizes") or [f"{run.width}x{run.height}"]
    return [ImageSize(*map(int, str(label).split("x"))) for label in labels]


def _checked_size(run: Run, size: str | None, *, missing_status: int = 422) -> ImageSize:
    """The size to show, as _checked_seed does for the seed; a size not written WxH is a
    bad parameter (422) on both pages."""
    sizes = _sizes(run)
    if size is None:
        return sizes[0]
    found = _SIZE_TEXT.fullmatch(size)
    if found is None:
        raise HTTPException(
            422, f"size: {size!r} is not a size: write it WIDTHxHEIGHT, e.g. {sizes[0].label}"
        )
    chosen = ImageSize(int(found[1]), int(found[2]))
    if chosen not in sizes:
        listed = ", ".join(s.label for s in sizes)
        raise HTTPException(
            missing_status,
            f"size: {chosen.label} is not a size of run #{run.id} (one of {listed})",
        )
    return chosen


def _size_param(run: Run, size: ImageSize) -> str | None:
    """The size as links carry it: not at all when it is the main size (short URLs)."""
    return None if size == _sizes(run)[0] else size.label


def _size_prompt_limit(run: Run, size: ImageSize) -> int | None:
    """How many of the run's prompts (the first, in position order) have images at `size`;
    None: all. The main size has every prompt; size_prompt_limit cuts the others."""
    limit = run.config.get("size_prompt_limit")
    return None if limit is None or size == _sizes(run)[0] else int(limit)


def _variants(session: Session, run: Run) -> list[Variant]:
    return list(
        session.scalars(select(Variant).where(Variant.run_id == run.id).order_by(Variant.position))
    )


def _absent(variant: Variant, size: ImageSize) -> tuple[str, str | None]:
    """(status, error) of a cell that has no job: the variant's own, unless its config
    narrows the run's sizes and leaves this one out."""
    own = variant.config.get("sizes")
    if own is not None and size.label not in own:
        return NOT_MADE, f"{variant.name} makes images only at {', '.join(own)}"
    return variant.status.value, variant.error


def _cells(
    session: Session,
    variants: list[Variant],
    prompt_ids: list[int],
    seed: int,
    size: ImageSize,
    *,
    not_made: str | None = None,
) -> dict[int, list[Cell]]:
    """prompt id -> one cell per variant, in variant order, at this seed and size.
    `not_made`: why these prompts have no images at this size (a cell without a job says it)."""
    if not prompt_ids:
        return {}
    generations = {
        (g.prompt_id, g.variant_id): g
        for g in session.scalars(
            select(Generation).where(
                Generation.prompt_id.in_(prompt_ids),
                Generation.seed == seed,
                Generation.width == size.width,
                Generation.height == size.height,
            )
        )
    }
    jobs = {
        (prompt_id, variant_id): (status.value, error)
        for prompt_id, variant_id, status, error in session.execute(
            select(Job.prompt_id, Job.variant_id, Job.status, Job.error).where(
                Job.prompt_id.in_(prompt_ids),
                Job.seed == seed,
                Job.width == size.width,
                Job.height == size.height,
            )
        )
    }
    absent = {
        variant.id: (NOT_MADE, not_made) if not_made else _absent(variant, size)
        for variant in variants
    }
    out: dict[int, list[Cell]] = {}
    for prompt_id in prompt_ids:
        cells = []
        for variant in variants:
            status, error = jobs.get((prompt_id, variant.id), absent[variant.id])
            generation = generations.get((prompt_id, variant.id))
            cells.append(Cell(variant, generation, status, error or None, size))
        out[prompt_id] = cells
    return out


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
    chosen_seed = _checked_seed(selected, seed)
    chosen_size = _checked_size(selected, size)
    size_param = _size_param(selected, chosen_size)
    size_limit = _size_prompt_limit(selected, chosen_size)
    variants = _variants(session, selected)
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
    cells = _cells(session, variants, [p.id for p in prompts], chosen_seed, chosen_size)
    # Links carry the seed only when one was asked for, the size only when it is not the
    # main one; the defaults keep URLs short.
    rows = [
        Row(p, _url(f"/prompts/{p.id}", seed=seed, size=size_param), cells[p.id]) for p in prompts
    ]

    # Appended below the earlier pages, the pager counts from the first prompt on.
    shown_from = 1 if block == "rows" else (page - 1) * per_page + 1
    shown_to = (page - 1) * per_page + len(prompts)
    filters = [f"“{q}”"] if q else []
    filters += [f"category {category}"] if category else []
    filters += [f"challenge {challenge}"] if challenge else []
    # The filter form always sends a seed: said only when it is not the default one.
    shown_as = [f"seed {chosen_seed}"] if chosen_seed != _seeds(selected)[0] else []
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
        seeds=_seeds(selected),
        seed=chosen_seed,
        sizes=_sizes(selected),
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
        prev_url=_url("/prompts", **state, page=page - 1) if page > 1 and block != "rows" else None,
        next_url=_url("/prompts", **state, page=page + 1) if page < pages else None,
        filter_url=lambda **changes: _url("/prompts", **{**state, **changes}),
        all_url=_url("/prompts", run=selected.id, seed=seed, size=size_param),
    )
    return mark_private(render(request, "gallery.html", context, block=block), private)


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


def _scalar(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None and v is not False)
    return str(value)


def _lora(lora: dict[str, Any] | None) -> str:
    if not lora:
        return "none"
    fused = " (fused)" if lora.get("fuse") else ""
    return f"{lora['path']} × {lora.get('scale', 1.0)}{fused}"


def _optimizations(optimizations: dict[str, Any]) -> str:
    parts = []
    for name, value in optimizations.items():
        if value is None or value is False:
            continue
        if value is True:
            parts.append(name)
        elif isinstance(value, dict):
            parts.append(f"{name} ({_scalar(value)})")
        else:
            parts.append(f"{name}: {value}")
    return "; ".join(parts) or "none"


def _settings(cell: Cell, seed: int) -> list[tuple[str, str, str]]:
    """(key, label, value) rows: from the Generation (what made this image) when there is one,
    else from the variant's config (what would have)."""
    g = cell.generation
    if g is not None:
        return [
            ("model", "Model", g.model),
            ("steps", "Steps", str(g.steps)),
            ("guidance", "Guidance", f"{g.guidance:g}"),
            ("seed", "Seed", str(g.seed)),
            ("size", "Size", f"{g.width}×{g.height}"),
            ("dtype", "dtype", g.dtype),
            ("max-seq", "Max sequence length", str(g.max_sequence_length)),
            ("lora", "LoRA", _lora(g.lora)),
            ("optimizations", "Optimizations", _optimizations(g.optimizations)),
            ("latency", "Latency", fmt_seconds(g.latency_s)),
        ]
    config = cell.variant.config
    optimizations = {k: config.get(k) for k in ("compile", "quantize", "cache", "fuse_qkv")}
    return [
        ("model", "Model", str(config.get("model"))),
        ("steps", "Steps", str(config.get("steps"))),
        ("guidance", "Guidance", f"{config.get('guidance', 0.0):g}"),
        ("seed", "Seed", str(seed)),
        ("size", "Size", f"{cell.size.width}×{cell.size.height}"),
        ("dtype", "dtype", str(config.get("dtype"))),
        ("max-seq", "Max sequence length", str(config.get("max_sequence_length"))),
        ("lora", "LoRA", _lora(config.get("lora"))),
        ("optimizations", "Optimizations", _optimizations(optimizations)),
    ]


# The metrics the prompt page lists, in this order: fidelity to the reference, then alignment.
PAGE_METRICS = ("ssim", "psnr_db", "clip_score")


def _fmt_metric(metric: str, value: float) -> str:
    if metric == "psnr_db":
        return "∞ dB (identical)" if value == float("inf") else f"{value:.2f} dB"
    return f"{value:.4f}" if metric == "ssim" else f"{value:.2f}"


def _metric_rows(session: Session, cells: list[Cell]) -> dict[int, list[tuple[str, str, str]]]:
    """generation id -> (key, label, value) rows of its metrics, in one query."""
    ids = [c.generation.id for c in cells if c.generation is not None]
    if not ids:
        return {}
    metrics = session.scalars(
        select(GenerationMetric)
        .where(
            GenerationMetric.generation_id.in_(ids),
            GenerationMetric.metric.in_(PAGE_METRICS),
        )
        .order_by(GenerationMetric.model)
    ).all()
    metrics = sorted(metrics, key=lambda m: PAGE_METRICS.index(m.metric))
    out: dict[int, list[tuple[str, str, str]]] = {}
    for m in metrics:
        if m.metric == "clip_score":
            label = f"CLIP score ({m.model})"
        else:
            reference = m.params.get("reference_variant")
            name = "SSIM" if m.metric == "ssim" else "PSNR"
            label = f"{name} vs {reference}" if reference else name
        if m.status is MetricStatus.ok and m.value is not None:
            value = _fmt_metric(m.metric, m.value)
        else:
            value = f"unavailable: {m.reason or 'no reason given'}"
        out.setdefault(m.generation_id, []).append((f"metric-{m.metric}", label, value))
    return out


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
    chosen_seed = _checked_seed(run, seed, missing_status=404)
    chosen_size = _checked_size(run, size, missing_status=404)
    size_param = _size_param(run, chosen_size)
    number = session.scalar(
        select(func.count())
        .select_from(Prompt)
        .where(Prompt.run_id == run.id, Prompt.position <= prompt.position)
    )
    size_limit = _size_prompt_limit(run, chosen_size)
    not_made = None
    if size_limit is not None and (number or 0) > size_limit:
        not_made = f"images at {chosen_size.label} are made for the first {size_limit} prompts only"
    variants = _variants(session, run)
    by_prompt = _cells(session, variants, [prompt.id], chosen_seed, chosen_size, not_made=not_made)
    cells = by_prompt[prompt.id]

    context: dict[str, Any] = {
        "nav": "gallery",
        "run": run,
        "prompt": prompt,
        "cells": cells,
        "seeds": _seeds(run),
        "seed": chosen_seed,
        "seed_param": seed,
        "sizes": _sizes(run),
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
    metric_rows = _metric_rows(session, cells)
    context.update(
        settings={
            c.variant.id: _settings(c, chosen_seed)
            + (metric_rows.get(c.generation.id, []) if c.generation else [])
            for c in cells
        },
        prev_url=_url(f"/prompts/{previous.id}", **keep) if previous else None,
        next_url=_url(f"/prompts/{following.id}", **keep) if following else None,
        gallery_url=_url("/prompts", run=run.id, seed=seed, size=size_param),
        category_url=_url(
            "/prompts", run=run.id, category=prompt.category, seed=seed, size=size_param
        ),
        challenge_url=_url(
            "/prompts", run=run.id, challenge=prompt.challenge, seed=seed, size=size_param
        ),
        number=number,
        run_prompts=session.scalar(
            select(func.count()).select_from(Prompt).where(Prompt.run_id == run.id)
        ),
    )
    return mark_private(render(request, "prompt.html", context), private)
