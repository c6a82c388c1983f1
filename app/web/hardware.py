"""Hardware side by side `/hardware`: the same benchmark measured on several machines, per
variant — latency per image at a size, images/s at the best batch, cost at each machine's
own price, peak memory and fit, speed-up against the variant's reference on the same machine,
and the cheapest machine per image (app.bench.hardware).

Which runs: `?runs=3,2` (or `runs=3&runs=2`), the first compared with the others; the ones
that do not make the same images are listed with why. Without it: the latest run and every
ended run that makes the same images. `?size=` picks one of their sizes (default the main
one); `?sort=` orders the table with plain links (htmx swaps only the table).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from app.bench.hardware import (
    SORT_LABELS,
    SortKey,
    cheapest_machines,
    compare,
    default_runs,
    select_comparable,
    sort_rows,
)
from app.bench.scaling import gpu_label, run_sizes
from app.models import Run
from app.web.dashboard import fmt_price
from app.web.deps import INT64_MAX, SessionDep, SettingsDep
from app.web.templating import render

# A page, not the API: kept out of the OpenAPI schema (/docs documents the API only).
router = APIRouter(include_in_schema=False)

TABLE_TARGET = "hardware-table"
# Each run is a machine column's worth of reads (its variants and shapes): a bound on what one
# request costs.
MAX_RUNS = 20
# The figures whose best is the largest: sorted from the top down.
DESCENDING = ("throughput", "speedup")


def parse_run_ids(values: list[str]) -> list[int]:
    """The run ids in "3,2" (or in several values), in order, each once; 422 with the reason
    otherwise."""
    ids: list[int] = []
    for part in (p.strip() for value in values for p in value.split(",")):
        if not part:
            continue
        # ASCII digits, and few enough of them that int() neither refuses nor overflows.
        if not (part.isascii() and part.isdigit() and len(part) <= 19) or not (
            1 <= int(part) <= INT64_MAX
        ):
            raise HTTPException(422, f"runs: not a run id: {part!r}")
        if int(part) not in ids:
            ids.append(int(part))
    if len(ids) > MAX_RUNS:
        raise HTTPException(422, f"runs: at most {MAX_RUNS} runs side by side, not {len(ids)}")
    return ids


def _runs(session: Session, ids: list[int]) -> list[Run]:
    runs = []
    for run_id in ids:
        run = session.get(Run, run_id)
        if run is None:
            raise HTTPException(status_code=404, detail=f"run {run_id} not found")
        runs.append(run)
    return runs


@router.get("/hardware", response_class=HTMLResponse, summary="Hardware side by side page")
def hardware_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    runs: Annotated[
        list[str] | None,
        Query(
            max_length=MAX_RUNS,
            description="Run ids (comma-separated or repeated); the first is compared with the "
            "others. Default: the latest run and every ended run that makes the same images.",
        ),
    ] = None,
    size: Annotated[
        str | None,
        Query(max_length=16, description="WIDTHxHEIGHT, one of the runs' sizes; default main."),
    ] = None,
    sort: Annotated[SortKey, Query(description="Order of the table's rows.")] = "variant",
) -> Response:
    asked = parse_run_ids(runs or [])
    candidates = _runs(session, asked) if asked else default_runs(session)
    context: dict[str, Any] = {"nav": "hardware", "run": None, "asked": asked}
    if candidates:
        selection = select_comparable(session, candidates)
        anchor = selection.runs[0]
        sizes = [s.label for s in run_sizes(anchor)[0]]
        chosen = size or sizes[0]
        if chosen not in sizes:
            raise HTTPException(
                422, f"size: {chosen!r} is not one of these runs' sizes: {', '.join(sizes)}"
            )
        gpu_sizes = settings.gpu_memory_sizes_gb
        rows = compare(session, selection.runs, chosen, gpu_sizes)
        params = {"runs": ",".join(map(str, asked))} if asked else {}
        if size:
            params["size"] = chosen

        def link(**changes: str) -> str:
            return "/hardware?" + urlencode(params | changes) if params | changes else "/hardware"

        context |= {
            "run": anchor,
            "selection": selection,
            "sizes": sizes,
            "size": chosen,
            "main_size": sizes[0],
            "rows": sort_rows(rows, sort),
            "cheapest": cheapest_machines(rows),
            "sort": sort,
            "sort_labels": SORT_LABELS,
            "descending": DESCENDING,
            "link": link,
            "gpu_sizes": ", ".join(gpu_label(s) for s in gpu_sizes),
            "price": fmt_price,
            "table_target": TABLE_TARGET,
        }
    block = "table" if request.headers.get("HX-Target") == TABLE_TARGET else "content"
    return render(request, "hardware.html", context, block=block)
