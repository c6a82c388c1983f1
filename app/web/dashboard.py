"""Dashboard `/dashboard`: a run's variants as charts (latency, speed-up, cost, memory, cost
against quality) and as a table with the same numbers, with a what-if price control.

Quality (`?quality=`) is the arena's Bradley–Terry rating (app.arena.leaderboard_cache, the run's
reference at 1000) with its 95% interval as error bars, or an automatic metric's per-variant
mean with its 95% interval (app.quality: `ssim` against the reference, `clip_score`). The
default is the rating once the run has counted votes, else SSIM (then CLIP score) when computed.

The price control (`?usd_per_hour=`) recomputes the cost figures from the stored latencies;
it never writes. With htmx the price form swaps only the `figures` block (table + chart data).
A price that is not a number from $0 to MAX_USD_PER_HOUR gets the page back with status 422:
the field keeps what was typed, marked invalid and described by the reason, and the figures
stay at the run's own price (static/js/numbers.js says the same before any request).

Every cost is per 1,000 images, at three significant figures or as many as tell it from the
other variants' (app.numbers).

A run with more than one shape (sizes × batch sizes) gets a scaling section
(app.bench.scaling): latency per image against megapixels, images/s against batch size, peak
memory against size with the configured GPU sizes, the fits matrix and batch-vs-single
similarity; each chart with the table of its numbers beside it. Prices do not enter it.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.arena.leaderboard_cache import leaderboard
from app.arena.leaderboard_view import LeaderboardView
from app.bench.scaling import (
    CUDA_PEAK_KINDS,
    RunScaling,
    fits_on_text,
    gpu_label,
    run_scaling,
    variant_fits_on,
)
from app.bench.summaries import VariantSummary, variant_summaries
from app.models import Run
from app.numbers import fixed
from app.quality import MetricSummary, metric_summaries
from app.web.deps import RunQuery, SessionDep, SettingsDep
from app.web.selection import select_run
from app.web.templating import render

# A page, not the API: kept out of the OpenAPI schema (/docs documents the API only).
router = APIRouter(include_in_schema=False)

# Above any single machine's on-demand price (an 8×H100 node is under $100/h): a bigger
# figure is a typo (cents typed as dollars, an extra zero), not a what-if.
MAX_USD_PER_HOUR = 1000.0

FIGURES_TARGET = "dashboard-figures"

# Dollars per hour as people type them ("2.5", "$2.50", ".5", "1e3"); static/js/numbers.js
# holds the same pattern.
PRICE_PATTERN = re.compile(r"\s*\$?\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*")


def price_error(raw: str) -> str | None:
    """Why `raw` is not a price the page can use, in a sentence; None when it is one.
    static/js/numbers.js (priceError) says the same, word for word."""
    span = f"from $0 to ${fixed(MAX_USD_PER_HOUR, 0)} per hour"
    if not raw.strip():
        return f"Enter a price {span}."
    if PRICE_PATTERN.fullmatch(raw) is None:
        return f"Enter the price as a number, like 2.50, {span}."
    value = float(raw.replace("$", "", 1).strip())
    if not math.isfinite(value) or not 0 <= value <= MAX_USD_PER_HOUR:
        return f"Enter a price {span}."
    return None


def parse_price(raw: str) -> float:
    """The price `raw` stands for (check it with price_error first); -0 reads as 0."""
    return float(raw.replace("$", "", 1).strip()) + 0.0


def fmt_price(usd_per_hour: float) -> str:
    """$/h as typed: cents when it has no finer digits, else every significant digit."""
    if round(usd_per_hour, 2) == usd_per_hour:
        return f"${usd_per_hour:,.2f}/h"
    return f"${usd_per_hour:,.6g}/h"


QUALITY_LABEL = "arena rating (Elo scale)"
QualityKey = Literal["rating", "ssim", "clip_score"]
METRIC_LABELS = {"ssim": "SSIM vs reference (mean)", "clip_score": "CLIP score (mean)"}
QUALITY_CHOICES = {"rating": "arena rating", "ssim": "SSIM", "clip_score": "CLIP score"}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def quality(view: LeaderboardView) -> dict[str, dict[str, float | None] | None]:
    """Per variant: its rating and interval ends (None where an end is unbounded), or None
    when it has no finite rating (no votes, not connected, above/below every other)."""
    out: dict[str, dict[str, float | None] | None] = {}
    for rating in view.ranking.variants:
        value = _finite(rating.rating)
        out[rating.name] = (
            {"rating": value, "ci_low": _finite(rating.ci_low), "ci_high": _finite(rating.ci_high)}
            if value is not None and rating.games > 0
            else None
        )
    return out


def metric_quality(
    summaries: list[MetricSummary], metric: str
) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Per variant with a mean: the mean and its interval ends, for the metric's model with
    the most values (another CLIP model is never mixed in); and that model."""
    rows = [s for s in summaries if s.metric == metric and s.mean is not None]
    if not rows:
        return {}, None
    counts: dict[str, int] = {}
    for s in rows:
        counts[s.model] = counts.get(s.model, 0) + s.n
    model = max(counts, key=lambda m: counts[m])
    return {
        s.variant: {
            "value": s.mean,
            # Clipped to the metric's range (a CLIP score's bar never reaches below 0).
            "ci_low": s.interval[0],
            "ci_high": s.interval[1],
            "text": s.display,
        }
        for s in rows
        if s.model == model
    }, model


def default_quality(view: LeaderboardView, summaries: list[MetricSummary]) -> QualityKey:
    if view.n_votes:
        return "rating"
    for metric in ("ssim", "clip_score"):
        if metric_quality(summaries, metric)[0]:
            return metric
    return "rating"


def chart_data(
    run: Run,
    variants: list[VariantSummary],
    usd_per_hour: float,
    view: LeaderboardView | None = None,
    *,
    quality_key: QualityKey = "rating",
    metric_values: dict[str, dict[str, Any]] | None = None,
    metric_label: str | None = None,
) -> dict[str, Any]:
    """What static/js/dashboard.js draws. With `quality_key` "rating", `quality` stays None
    for every variant until the run has counted arena votes; with a metric, it is the
    variant's `metric_values` entry ({"value", "ci_low", "ci_high"}) when it has one."""
    ratings: dict[str, Any]
    if quality_key == "rating":
        ratings = quality(view) if view is not None and view.n_votes else {}
        label = QUALITY_LABEL if ratings else None
    else:
        ratings = metric_values or {}
        label = metric_label if ratings else None
    return {
        "run": {
            "id": run.id,
            "name": run.name,
            "hardware": run.hardware,
            "usd_per_hour": usd_per_hour,
            "price_label": fmt_price(usd_per_hour),
            "run_usd_per_hour": run.usd_per_hour,
        },
        "variants": [
            {
                "name": v.name,
                "status": v.status,
                "error": v.error,
                "reference": v.reference,
                "latency_median_s": v.latency_median_s,
                "latency_p10_s": v.latency_p10_s,
                "latency_p90_s": v.latency_p90_s,
                "latency_kind": v.latency_kind,
                "speedup": v.speedup,
                "usd_per_image": v.usd_per_image,
                "usd_per_1k_images": v.usd_per_1k_images,
                "peak_mem_gb": v.peak_mem_gb,
                "peak_mem_kind": v.peak_mem_kind,
                "quality": ratings.get(v.name),
            }
            for v in variants
        ],
        "quality_kind": quality_key,
        "quality_label": label,
        "reference": view.reference if ratings and view and quality_key == "rating" else None,
    }


def gpu_lines(scaling: RunScaling) -> list[float]:
    """The GPU sizes the memory chart draws: none for a CPU peak (not comparable); else the
    configured sizes up to the first that holds every peak (the larger ones add nothing but
    would flatten the chart: a 12 GB peak under a 141 GB line is a flat line)."""
    peaks = [
        r.peak_mem_gb
        for r in scaling.rows
        if r.peak_mem_gb is not None and r.peak_mem_kind in CUDA_PEAK_KINDS
    ]
    if not peaks:
        return []
    top = max(peaks)
    above = [size for size in scaling.gpu_memory_gb if size > top]
    return [size for size in scaling.gpu_memory_gb if size <= top] + above[:1]


def scaling_data(scaling: RunScaling) -> dict[str, Any]:
    """What static/js/dashboard.js draws in the scaling section. Sizes by megapixels (the x
    axis); latency and memory at batch 1, images/s at the main size."""
    by_mp = sorted({r.size: r.megapixels for r in scaling.rows}.items(), key=lambda kv: kv[1])
    variants = []
    for name in scaling.variants:
        singles = [(size, scaling.row(name, size, 1)) for size, _ in by_mp]
        variants.append(
            {
                "name": name,
                "latency": [
                    {"size": size, "mp": row.megapixels, "s": row.latency_per_image_s}
                    for size, row in singles
                    if row is not None and row.measured
                ],
                "throughput": [
                    {"batch": batch, "images_per_s": row.images_per_s}
                    for batch in scaling.batch_sizes
                    if (row := scaling.row(name, scaling.main_size, batch)) is not None
                    and row.measured
                ],
                "memory": [
                    {
                        "size": size,
                        "mp": row.megapixels,
                        "gb": row.peak_mem_gb,
                        "fits": row.measured,
                    }
                    for size, row in singles
                    if row is not None and row.peak_mem_gb is not None
                ],
            }
        )
    kinds = {r.peak_mem_kind for r in scaling.rows if r.peak_mem_kind}
    return {
        "main_size": scaling.main_size,
        "batch_sizes": scaling.batch_sizes,
        "sizes": [{"size": size, "mp": mp} for size, mp in by_mp],
        "peak_mem_kind": kinds.pop() if len(kinds) == 1 else None,
        "gpu_memory_gb": gpu_lines(scaling),
        "variants": variants,
    }


def scaling_context(scaling: RunScaling) -> dict[str, Any]:
    """The scaling section's tables: sizes by megapixels for the per-size tables, the best
    batch per (variant, size), and the batch > 1 series that compared their images."""
    megapixels = {r.size: r.megapixels for r in scaling.rows}
    return {
        "scaling": scaling,
        "scaling_data": scaling_data(scaling),
        "sizes_by_mp": sorted(megapixels.items(), key=lambda kv: kv[1]),
        "best_batch": {(b.variant, b.size): b for b in scaling.best_batches()},
        "fits": {(c.variant, c.size, c.batch_size): c for c in scaling.fits()},
        "fits_on": {
            (r.variant, r.size, r.batch_size): fits_on_text(
                r.peak_mem_gb, r.peak_mem_kind, scaling.gpu_memory_gb
            )
            for r in scaling.rows
            if r.measured
        },
        "gpu_sizes": ", ".join(gpu_label(size) for size in scaling.gpu_memory_gb),
        "cuda_peaks": any(r.peak_mem_kind in CUDA_PEAK_KINDS for r in scaling.rows),
        "compared": [r for r in scaling.rows if r.batch_size > 1 and r.batch_compared],
    }


@router.get("/dashboard", response_class=HTMLResponse, summary="Dashboard page")
def dashboard(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    run: RunQuery = None,
    usd_per_hour: Annotated[
        str | None,
        Query(
            description="What-if hardware price in $/h for the cost figures, from 0 to "
            f"{MAX_USD_PER_HOUR:g}; default the run's own price. Stored measurements are "
            "never changed. Anything else: the page at the run's price with the reason (422).",
        ),
    ] = None,
    quality: Annotated[
        QualityKey | None,
        Query(
            description="The scatter's quality axis: the arena rating or a metric's mean; "
            "default the rating once there are votes, else SSIM (then CLIP score)."
        ),
    ] = None,
) -> Response:
    selected = select_run(session, run)
    error = None if usd_per_hour is None else price_error(usd_per_hour)
    what_if = None if usd_per_hour is None or error else parse_price(usd_per_hour)
    context: dict[str, Any] = {"nav": "dashboard", "run": selected}
    if selected is not None:
        price = selected.usd_per_hour if what_if is None else what_if
        variants = variant_summaries(session, selected, usd_per_hour=what_if)
        view = leaderboard(session, selected, stale_ok=True)
        summaries = metric_summaries(session, selected.id)
        quality_key = quality or default_quality(view, summaries)
        metric_values: dict[str, dict[str, Any]] = {}
        metric_label = None
        if quality_key != "rating":
            metric_values, model = metric_quality(summaries, quality_key)
            metric_label = METRIC_LABELS[quality_key]
            if quality_key == "clip_score" and model:
                metric_label += f", {model}"
        data = chart_data(
            selected,
            variants,
            price,
            view,
            quality_key=quality_key,
            metric_values=metric_values,
            metric_label=metric_label,
        )
        context |= {
            "variants": variants,
            "price": price,
            "price_label": fmt_price(price),
            "run_price_label": fmt_price(selected.usd_per_hour),
            "price_overridden": what_if is not None and what_if != selected.usd_per_hour,
            # What the field shows: the price in effect, or what was typed when it was wrong.
            "price_input": usd_per_hour if error else price,
            "price_error": error,
            "max_usd_per_hour": MAX_USD_PER_HOUR,
            "figures_target": FIGURES_TARGET,
            "data": data,
            "n_votes": view.n_votes,
            "pinned_reference": view.reference,
            "quality_key": quality_key,
            "quality_param": quality,
            "quality_choices": QUALITY_CHOICES,
            # A point needs both axes: a rating and a measured cost.
            "has_quality": any(
                v["quality"] is not None and v["usd_per_1k_images"] is not None
                for v in data["variants"]
            ),
            "fits_on": {
                v.name: variant_fits_on(
                    v.load_peak_gb, v.peak_mem_gb, v.peak_mem_kind, settings.gpu_memory_sizes_gb
                )
                for v in variants
            },
        }
    block = "figures" if request.headers.get("HX-Target") == FIGURES_TARGET else "content"
    # The price control's swap shows no scaling figure: it does not read them.
    if selected is not None and block == "content":
        scaling = run_scaling(session, selected, settings.gpu_memory_sizes_gb)
        if scaling.several_shapes:
            context |= scaling_context(scaling)
    return render(
        request, "dashboard.html", context, block=block, status_code=422 if error else 200
    )
