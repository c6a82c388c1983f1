"""Dashboard `/dashboard`: a run's variants as charts (latency, speed-up, cost, memory, cost
against quality) and as a table with the same numbers, with a what-if price control.

Quality is the arena's Bradley–Terry rating (app.leaderboard, the run's reference at 1000)
with its 95% interval as error bars, once the run has counted votes.

The price control (`?usd_per_hour=`) recomputes the cost figures from the stored latencies;
it never writes. With htmx the price form swaps only the `figures` block (table + chart data).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.leaderboard import LeaderboardView, leaderboard
from app.models import Run
from app.summaries import VariantSummary, variant_summaries
from app.web.deps import SessionDep
from app.web.selection import select_run
from app.web.templating import render

router = APIRouter()

# Above any single machine's on-demand price (an 8×H100 node is under $100/h): a bigger
# figure is a typo (cents typed as dollars, an extra zero), not a what-if.
MAX_USD_PER_HOUR = 1000.0

FIGURES_TARGET = "dashboard-figures"


def fmt_price(usd_per_hour: float) -> str:
    """$/h as typed: cents when it has no finer digits, else every significant digit."""
    if round(usd_per_hour, 2) == usd_per_hour:
        return f"${usd_per_hour:,.2f}/h"
    return f"${usd_per_hour:,.6g}/h"


QUALITY_LABEL = "arena rating (Elo scale)"


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


def chart_data(
    run: Run,
    variants: list[VariantSummary],
    usd_per_hour: float,
    view: LeaderboardView | None = None,
) -> dict[str, Any]:
    """What static/js/dashboard.js draws. `quality` stays None for every variant until the
    run has counted arena votes; the cost/quality scatter then gets its y axis."""
    ratings = quality(view) if view is not None and view.n_votes else {}
    return {
        "run": {
            "id": run.id,
            "name": run.name,
            "hardware": run.hardware,
            "usd_per_hour": usd_per_hour,
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
        "quality_label": QUALITY_LABEL if ratings else None,
        "reference": view.reference if ratings and view else None,
    }


@router.get("/dashboard", response_class=HTMLResponse, summary="Dashboard page")
def dashboard(
    request: Request,
    session: SessionDep,
    run: Annotated[int | None, Query(ge=1, description="Run id; default the latest.")] = None,
    usd_per_hour: Annotated[
        float | None,
        Query(
            ge=0,
            le=MAX_USD_PER_HOUR,
            allow_inf_nan=False,
            description="What-if hardware price in $/h for the cost figures; default the "
            "run's own price. Stored measurements are never changed.",
        ),
    ] = None,
) -> Response:
    selected = select_run(session, run)
    context: dict[str, Any] = {"nav": "dashboard", "run": selected}
    if selected is not None:
        price = selected.usd_per_hour if usd_per_hour is None else usd_per_hour
        variants = variant_summaries(session, selected, usd_per_hour=usd_per_hour)
        view = leaderboard(session, selected)
        data = chart_data(selected, variants, price, view)
        context |= {
            "variants": variants,
            "price": price,
            "price_label": fmt_price(price),
            "run_price_label": fmt_price(selected.usd_per_hour),
            "price_overridden": usd_per_hour is not None and usd_per_hour != selected.usd_per_hour,
            "max_usd_per_hour": MAX_USD_PER_HOUR,
            "figures_target": FIGURES_TARGET,
            "data": data,
            "n_votes": view.n_votes,
            # A point needs both axes: a rating and a measured cost.
            "has_quality": any(
                v["quality"] is not None and v["usd_per_1k_images"] is not None
                for v in data["variants"]
            ),
        }
    block = "figures" if request.headers.get("HX-Target") == FIGURES_TARGET else "content"
    return render(request, "dashboard.html", context, block=block)
