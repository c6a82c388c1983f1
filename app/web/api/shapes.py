"""The API's shapes: latency, throughput, memory and fit per (variant, size, batch size),
as JSON and as a streamed CSV.

Timings and memory per shape are public like the variants' (a blind run hides its images,
not its figures): nothing here links an image to its variant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api_schemas import ShapeOut, ShapesOut
from app.bench.scaling import RunScaling, run_scaling
from app.models import Run
from app.web.api.csv_export import csv_filename, csv_stream
from app.web.api.params import CSV_BODY, NOT_FOUND, RunId, run_or_404
from app.web.deps import SessionDep, SettingsDep

router = APIRouter()


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


@router.get(
    "/runs/{run_id}/shapes",
    responses=NOT_FOUND,
    summary="Latency, throughput, memory and fit per (variant, size, batch size)",
)
def list_shapes(session: SessionDep, settings: SettingsDep, run_id: RunId) -> ShapesOut:
    run = run_or_404(session, run_id)
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
    run = run_or_404(session, run_id)
    gpu_sizes = settings.gpu_memory_sizes_gb

    def rows(stream_session: Session) -> Iterator[dict[str, Any]]:
        scaling = run_scaling(stream_session, stream_session.get_one(Run, run_id), gpu_sizes)
        return (shape.model_dump() for shape in _shapes(scaling))

    return csv_stream(request, rows, list(ShapeOut.model_fields), csv_filename(run, "shapes"))
