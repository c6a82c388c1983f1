"""Overview `/`: the runs, and for the selected run one card per variant (speed, cost, memory,
status, and the automatic metrics' means: SSIM against the reference, CLIP score), sortable."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from app.bench.scaling import variant_fits_on
from app.bench.summaries import VariantSummary, variant_summaries
from app.quality import metric_summaries
from app.web.deps import RunQuery, SessionDep, SettingsDep
from app.web.selection import all_runs, select_run
from app.web.templating import render

# A page, not the API: kept out of the OpenAPI schema (/docs documents the API only).
router = APIRouter(include_in_schema=False)

SortKey = Literal["config", "name", "latency", "speedup", "cost", "memory"]
SORT_LABELS: dict[str, str] = {
    "config": "config order",
    "name": "name",
    "latency": "latency",
    "speedup": "speed-up",
    "cost": "cost",
    "memory": "memory",
}


CARD_METRICS = {"ssim": "SSIM", "clip_score": "CLIP score", "adherence": "Adherence (fully right)"}


def _metric_lines(
    session: Session, run_id: int, variants: list[VariantSummary]
) -> dict[str, list[tuple[str, str, str]]]:
    """variant -> (metric, label, "mean [95% CI]" or "unavailable: reason") lines."""
    reference = {v.name: v.reference for v in variants}
    out: dict[str, list[tuple[str, str, str]]] = {}
    for s in metric_summaries(session, run_id):
        if s.metric not in CARD_METRICS:
            continue
        label = CARD_METRICS[s.metric]
        if s.metric == "ssim" and reference.get(s.variant):
            label += f" vs {reference[s.variant]}"
        elif s.metric == "clip_score":
            label += f" ({s.model})"
        out.setdefault(s.variant, []).append((s.metric, label, s.display))
    return out


def _sorted(variants: list[VariantSummary], key: SortKey) -> list[VariantSummary]:
    if key == "config":
        return variants
    if key == "name":
        return sorted(variants, key=lambda v: v.name)
    missing_last = float("inf")
    if key == "speedup":
        # Fastest first; variants without a reference (speed-up undefined) after them.
        return sorted(variants, key=lambda v: -(v.speedup or 0.0))
    field = {
        "latency": "latency_median_s",
        "cost": "usd_per_1k_images",
        "memory": "peak_mem_gb",
    }[key]
    return sorted(
        variants,
        key=lambda v: missing_last if getattr(v, field) is None else getattr(v, field),
    )


@router.get("/", response_class=HTMLResponse, summary="Overview page")
def overview(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    run: RunQuery = None,
    sort: Annotated[SortKey, Query(description="Order of the variant cards.")] = "config",
) -> Response:
    selected = select_run(session, run)
    context: dict[str, object] = {
        "nav": "overview",
        "runs": all_runs(session),
        "run": selected,
        "sort": sort,
        "sort_labels": SORT_LABELS,
    }
    if selected is not None:
        variants = _sorted(variant_summaries(session, selected), sort)
        context["variants"] = variants
        context["metric_lines"] = _metric_lines(session, selected.id, variants)
        context["images_per_variant"] = max((v.jobs_total for v in variants), default=0)
        context["fits_on"] = {
            v.name: variant_fits_on(
                v.load_peak_gb, v.peak_mem_gb, v.peak_mem_kind, settings.gpu_memory_sizes_gb
            )
            for v in variants
        }
    block = "cards" if request.headers.get("HX-Target") == "variant-cards" else "content"
    return render(request, "index.html", context, block=block)
