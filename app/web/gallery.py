"""Gallery `/prompts`: every prompt of a run as a row of thumbnails, one per variant, filtered
and paged; and `/prompts/{id}`: one prompt's images at full size with their settings, a
compare slider between two variants, and previous/next navigation. Each image's settings list
ends with its automatic metrics (SSIM and PSNR against its reference, CLIP score), when computed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.models import Generation, GenerationMetric, Job, MetricStatus, Prompt, Run, Variant
from app.web.deps import INT64_MAX, IdPath, RunQuery, SessionDep
from app.web.selection import select_run
from app.web.templating import fmt_seconds, render
from app.web.visibility import check_images_visible, mark_private

# A page, not the API: kept out of the OpenAPI schema (/docs documents the API only).
router = APIRouter(include_in_schema=False)

PER_PAGE = 24
MAX_PER_PAGE = 96

SeedQuery = Annotated[
    int | None, Query(ge=0, le=INT64_MAX, description="One of the run's seeds; default the first.")
]


@dataclass(frozen=True)
class Cell:
    """One variant's image of one prompt at one seed, or why there is none."""

    variant: Variant
    generation: Generation | None
    # The job's status; the variant's when it has no job for this image (not queued yet).
    status: str
    error: str | None

    @property
    def image_url(self) -> str:
        return _media_url(self._generation.image_path, self._generation.image_sha256)

    @property
    def thumb_url(self) -> str:
        return _media_url(self._generation.thumb_path, self._generation.image_sha256)

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


def _variants(session: Session, run: Run) -> list[Variant]:
    return list(
        session.scalars(select(Variant).where(Variant.run_id == run.id).order_by(Variant.position))
    )


def _cells(
    session: Session, variants: list[Variant], prompt_ids: list[int], seed: int
) -> dict[int, list[Cell]]:
    """prompt id -> one cell per variant, in variant order."""
    if not prompt_ids:
        return {}
    generations = {
        (g.prompt_id, g.variant_id): g
        for g in session.scalars(
            select(Generation).where(Generation.prompt_id.in_(prompt_ids), Generation.seed == seed)
        )
    }
    jobs = {
        (prompt_id, variant_id): (status.value, error)
        for prompt_id, variant_id, status, error in session.execute(
            select(Job.prompt_id, Job.variant_id, Job.status, Job.error).where(
                Job.prompt_id.in_(prompt_ids), Job.seed == seed
            )
        )
    }
    out: dict[int, list[Cell]] = {}
    for prompt_id in prompt_ids:
        cells = []
        for variant in variants:
            status, error = jobs.get((prompt_id, variant.id), (variant.status.value, variant.error))
            cells.append(
                Cell(variant, generations.get((prompt_id, variant.id)), status, error or None)
            )
        out[prompt_id] = cells
    return out


def _distinct(session: Session, run: Run, column: Any) -> list[str]:
    return list(
        session.scalars(select(column).where(Prompt.run_id == run.id).distinct().order_by(column))
    )


def _filtered(run: Run, category: str, challenge: str, q: str) -> Select[Prompt]:
    query = select(Prompt).where(Prompt.run_id == run.id)
    if category:
        query = query.where(Prompt.category == category)
    if challenge:
        query = query.where(Prompt.challenge == challenge)
    if q:
        # autoescape: a "%" or "_" typed in the search box matches itself, not anything.
        query = query.where(Prompt.text.icontains(q, autoescape=True))
    return query


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
    page: Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
    per_page: Annotated[
        int, Query(ge=1, le=MAX_PER_PAGE, description="Prompts per page.")
    ] = PER_PAGE,
) -> Response:
    selected = select_run(session, run)
    # The filter form swaps the results; infinite scroll appends the next page's rows.
    target = request.headers.get("HX-Target") or ""
    block = {"results": "results", "load-more": "rows"}.get(target, "content")
    context: dict[str, Any] = {"nav": "gallery", "run": selected}
    if selected is None:
        return render(request, "gallery.html", context)
    private = check_images_visible(request, selected)

    q = q.strip()
    chosen_seed = _checked_seed(selected, seed)
    variants = _variants(session, selected)
    query = _filtered(selected, category, challenge, q)
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
    cells = _cells(session, variants, [p.id for p in prompts], chosen_seed)
    # Links carry the seed only when one was asked for; the default keeps URLs short.
    rows = [Row(p, _url(f"/prompts/{p.id}", seed=seed), cells[p.id]) for p in prompts]

    state: dict[str, object] = {
        "run": selected.id,
        "category": category,
        "challenge": challenge,
        "q": q,
        "seed": seed,
        "per_page": per_page if per_page != PER_PAGE else None,
    }
    context.update(
        variants=variants,
        rows=rows,
        seeds=_seeds(selected),
        seed=chosen_seed,
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
        first_index=(page - 1) * per_page + 1,
        # Appended below the earlier pages, the pager counts from the first prompt on.
        shown_from=1 if block == "rows" else (page - 1) * per_page + 1,
        prev_url=_url("/prompts", **state, page=page - 1) if page > 1 and block != "rows" else None,
        next_url=_url("/prompts", **state, page=page + 1) if page < pages else None,
        filter_url=lambda **changes: _url("/prompts", **{**state, **changes}),
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


def _settings(cell: Cell, run: Run, seed: int) -> list[tuple[str, str, str]]:
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
        ("size", "Size", f"{run.width}×{run.height}"),
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
    cells = _cells(session, _variants(session, run), [prompt.id], chosen_seed)[prompt.id]

    context: dict[str, Any] = {
        "nav": "gallery",
        "run": run,
        "prompt": prompt,
        "cells": cells,
        "seeds": _seeds(run),
        "seed": chosen_seed,
        "seed_param": seed,
        "left": left,
        "right": right,
    }
    if cells:
        default_left, default_right = _default_pair(cells)
        context["left_cell"] = _checked_variant("left", left or default_left, run, cells)
        context["right_cell"] = _checked_variant("right", right or default_right, run, cells)
    # Keep the seed and the chosen comparison while stepping through the prompts.
    keep = {"seed": seed, "left": left, "right": right}
    previous = _neighbour(session, prompt, after=False)
    following = _neighbour(session, prompt, after=True)
    metric_rows = _metric_rows(session, cells)
    context.update(
        settings={
            c.variant.id: _settings(c, run, chosen_seed)
            + (metric_rows.get(c.generation.id, []) if c.generation else [])
            for c in cells
        },
        prev_url=_url(f"/prompts/{previous.id}", **keep) if previous else None,
        next_url=_url(f"/prompts/{following.id}", **keep) if following else None,
        gallery_url=_url("/prompts", run=run.id, seed=seed),
        number=session.scalar(
            select(func.count())
            .select_from(Prompt)
            .where(Prompt.run_id == run.id, Prompt.position <= prompt.position)
        ),
        run_prompts=session.scalar(
            select(func.count()).select_from(Prompt).where(Prompt.run_id == run.id)
        ),
    )
    return mark_private(render(request, "prompt.html", context), private)
