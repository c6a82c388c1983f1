"""How a run's variants scale with image size and batch size, read from `shape_series`: one
row per (variant, size, batch size) the run asks for, and the answers the dashboard, the API
and the hardware page give from them — the best batch per size, whether each shape fits,
and on which GPU memory sizes a measured peak would fit.

Pure database reads; no torch, no web. A shape the run asks for but has no row for (the
variant failed first, is still running, or narrows the benchmark's sizes) is a row with
status "not_measured" and the reason, so every table has a cell for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.bench import benchmark as bm
from app.models import Run, SeriesStatus, ShapeFigures, ShapeSeries, Variant, VariantStatus

NOT_MEASURED = "not_measured"
# The peak kinds a GPU's memory size can be compared with: a CPU process's peak RSS counts
# the Python process, the libraries and the host-side copies, nothing a GPU would hold.
CUDA_PEAK_KINDS = frozenset({"cuda_max_memory_allocated"})
NOT_COMPARABLE = "not comparable (a CPU peak RSS)"


@dataclass(frozen=True)
class ShapeRow(ShapeFigures):
    """One (variant, size, batch size): its series, or why it has none. Latencies are per
    call (a call makes `batch_size` images); `latency_per_image_s` divides by the batch."""

    variant: str
    width: int
    height: int
    batch_size: int
    # measured | does_not_fit | skipped | not_measured
    status: str
    error: str | None
    n: int = 0
    warmup: int = 0
    latency_median_s: float | None = None
    latency_p10_s: float | None = None
    latency_p90_s: float | None = None
    latency_mean_s: float | None = None
    latency_min_s: float | None = None
    latency_max_s: float | None = None
    first_call_s: float | None = None
    first_call_graphs: int | None = None
    peak_mem_gb: float | None = None
    peak_mem_kind: str | None = None
    device_total_gb: float | None = None
    batch_compared: int | None = None
    batch_identical: int | None = None
    batch_ssim_mean: float | None = None
    batch_ssim_min: float | None = None
    batch_psnr_min_db: float | None = None
    recompiles: int | None = None
    graph_breaks: int | None = None
    contended: bool | None = None

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def measured(self) -> bool:
        return self.status == SeriesStatus.measured and self.latency_median_s is not None

    @property
    def batch_all_identical(self) -> bool:
        return bool(self.batch_compared) and self.batch_identical == self.batch_compared


FitState = Literal["fits", "does_not_fit", "not_measured"]


@dataclass(frozen=True)
class FitCell:
    """One cell of the fits matrix (variant × size × batch size)."""

    variant: str
    size: str
    batch_size: int
    state: FitState
    peak_mem_gb: float | None
    peak_mem_kind: str | None
    device_total_gb: float | None
    # Why a shape does not fit or was not measured.
    reason: str | None
    # The configured GPU sizes (GB) the measured peak is under; None when not comparable
    # (a CPU peak) or not measured.
    fits_on_gb: tuple[float, ...] | None

    @property
    def text(self) -> str:
        if self.state == "fits":
            return f"✓ {_gb(self.peak_mem_gb)}"
        if self.state == "does_not_fit":
            reached = _gb(self.peak_mem_gb, unit=False)
            return f"✗ does not fit, {reached} of {_gb(self.device_total_gb)}"
        return f"not measured: {self.reason}"


@dataclass(frozen=True)
class BestBatch:
    """The batch size with the most images per second of a variant at one size."""

    variant: str
    size: str
    batch_size: int
    images_per_s: float
    latency_per_image_s: float
    # images/s at batch 1 there (None if batch 1 was not measured): the gain of batching.
    batch1_images_per_s: float | None


@dataclass(frozen=True)
class RunScaling:
    """A run's shapes: `sizes` in config order (the first is the main size), every variant's
    rows in config order, then size, then batch size."""

    run_id: int
    variants: list[str]
    references: dict[str, str | None]
    sizes: list[str]
    batch_sizes: list[int]
    rows: list[ShapeRow]
    gpu_memory_gb: tuple[float, ...]

    @property
    def main_size(self) -> str:
        return self.sizes[0]

    @property
    def several_shapes(self) -> bool:
        return len(self.sizes) * len(self.batch_sizes) > 1

    def row(self, variant: str, size: str, batch_size: int) -> ShapeRow | None:
        return self._index.get((variant, size, batch_size))

    @cached_property
    def _index(self) -> dict[tuple[str, str, int], ShapeRow]:
        return {(r.variant, r.size, r.batch_size): r for r in self.rows}

    def best_batches(self) -> list[BestBatch]:
        """Per (variant, size) with a measured series: the batch size with the most images/s."""
        out = []
        for variant in self.variants:
            for size in self.sizes:
                best = best_batch(self.rows, variant, size)
                if best is not None:
                    out.append(best)
        return out

    def fits(self) -> list[FitCell]:
        return [fit_cell(row, self.gpu_memory_gb) for row in self.rows]

    def fits_on(self, row: ShapeRow) -> tuple[float, ...] | None:
        return fits_on(row.peak_mem_gb, row.peak_mem_kind, self.gpu_memory_gb)


def best_batch(rows: list[ShapeRow], variant: str, size: str) -> BestBatch | None:
    here = [r for r in rows if r.variant == variant and r.size == size and r.measured]
    if not here:
        return None
    # The smaller batch on a tie: the same throughput for less memory and latency.
    best = max(here, key=lambda r: (r.images_per_s or 0.0, -r.batch_size))
    single = next((r for r in here if r.batch_size == 1), None)
    return BestBatch(
        variant=variant,
        size=size,
        batch_size=best.batch_size,
        images_per_s=best.images_per_s or 0.0,
        latency_per_image_s=best.latency_per_image_s or 0.0,
        batch1_images_per_s=single.images_per_s if single else None,
    )


def fits_on(
    peak_gb: float | None, kind: str | None, gpu_sizes_gb: tuple[float, ...]
) -> tuple[float, ...] | None:
    """The GPU sizes whose memory is above the peak, or None when the peak is not a CUDA
    figure. A peak under a card's size is necessary, not sufficient: max_memory_allocated
    leaves out the CUDA context and the allocator's cache (a few hundred MB more)."""
    if peak_gb is None or kind not in CUDA_PEAK_KINDS:
        return None
    return tuple(size for size in gpu_sizes_gb if peak_gb < size)


def fits_on_text(peak_gb: float | None, kind: str | None, gpu_sizes_gb: tuple[float, ...]) -> str:
    if peak_gb is None:
        return "—"
    sizes = fits_on(peak_gb, kind, gpu_sizes_gb)
    if sizes is None:
        return NOT_COMPARABLE
    if not sizes:
        return "none of " + ", ".join(gpu_label(s) for s in gpu_sizes_gb)
    return ", ".join(gpu_label(s) for s in sizes)


def variant_fits_on(
    load_peak_gb: float | None,
    peak_mem_gb: float | None,
    kind: str | None,
    gpu_sizes_gb: tuple[float, ...],
) -> str:
    """Which GPU sizes a variant fits, from its measured peaks only: the larger of loading
    (load, quantize, compile, first call) and generating at its main size. Nothing is
    extrapolated: a CPU peak is not comparable, a missing one says so."""
    peaks = [p for p in (load_peak_gb, peak_mem_gb) if p is not None]
    return fits_on_text(max(peaks) if peaks else None, kind, gpu_sizes_gb)


def gpu_label(size_gb: float) -> str:
    return f"{size_gb:g} GB"


def fit_cell(row: ShapeRow, gpu_sizes_gb: tuple[float, ...]) -> FitCell:
    state: FitState
    if row.status == SeriesStatus.measured:
        state, reason = "fits", None
    elif row.status == SeriesStatus.does_not_fit:
        state, reason = "does_not_fit", row.error
    else:
        state, reason = "not_measured", row.error
    return FitCell(
        variant=row.variant,
        size=row.size,
        batch_size=row.batch_size,
        state=state,
        peak_mem_gb=row.peak_mem_gb,
        peak_mem_kind=row.peak_mem_kind,
        device_total_gb=row.device_total_gb,
        reason=reason,
        fits_on_gb=fits_on(row.peak_mem_gb, row.peak_mem_kind, gpu_sizes_gb)
        if state == "fits"
        else None,
    )


def run_sizes(run: Run) -> tuple[list[bm.Size], list[int]]:
    """The run's sizes (config order, the main one first) and batch sizes."""
    sizes = [
        bm.Size.model_validate(s) for s in run.config.get("sizes") or [f"{run.width}x{run.height}"]
    ]
    return sizes, list(run.config.get("batch_sizes") or [1])


def run_scaling(session: Session, run: Run, gpu_memory_gb: tuple[float, ...]) -> RunScaling:
    """Every (variant, size, batch size) of the run, with its series or why it has none."""
    variants = list(
        session.scalars(
            select(Variant)
            .where(Variant.run_id == run.id)
            .options(selectinload(Variant.shapes), selectinload(Variant.timings))
            .order_by(Variant.position)
        )
    )
    sizes, batches = run_sizes(run)
    names = {v.id: v.name for v in variants}
    rows: list[ShapeRow] = []
    for variant in variants:
        stored = {(s.width, s.height, s.batch_size): _row(variant.name, s) for s in variant.shapes}
        if not stored:
            stored = _before_shapes(run, variant)
        # A variant narrows the benchmark's sizes and batch sizes (None: it takes them all).
        own_sizes = variant.config.get("sizes")
        own_batches = variant.config.get("batch_sizes")
        for size in sizes:
            for batch in batches:
                row = stored.get((size.width, size.height, batch))
                if row is not None:
                    rows.append(row)
                    continue
                reason = _why_not(
                    variant,
                    own_sizes is None or size.label in own_sizes,
                    own_batches is None or batch in own_batches,
                )
                rows.append(
                    ShapeRow(variant.name, size.width, size.height, batch, NOT_MEASURED, reason)
                )
    return RunScaling(
        run_id=run.id,
        variants=[v.name for v in variants],
        references={
            v.name: names.get(v.reference_id) if v.reference_id else None for v in variants
        },
        sizes=[s.label for s in sizes],
        batch_sizes=batches,
        rows=rows,
        gpu_memory_gb=gpu_memory_gb,
    )


def _before_shapes(run: Run, variant: Variant) -> dict[tuple[int, int, int], ShapeRow]:
    """A run measured before shape_series existed (migration 0012) had one shape, its size
    at batch 1, and its steady state is that shape's series."""
    steady = variant.timing("steady_state")
    if steady is None:
        return {}
    row = ShapeRow(
        variant=variant.name,
        width=run.width,
        height=run.height,
        batch_size=1,
        status=SeriesStatus.measured.value,
        error=None,
        n=steady.n,
        warmup=steady.warmup,
        latency_median_s=steady.latency_median_s,
        latency_p10_s=steady.latency_p10_s,
        latency_p90_s=steady.latency_p90_s,
        latency_mean_s=steady.latency_mean_s,
        latency_min_s=steady.latency_min_s,
        latency_max_s=steady.latency_max_s,
        first_call_s=variant.compile_s,
        peak_mem_gb=variant.peak_mem_gb,
        peak_mem_kind=variant.peak_mem_kind,
        recompiles=steady.recompiles,
        graph_breaks=steady.graph_breaks,
        contended=steady.contended,
    )
    return {(run.width, run.height, 1): row}


def _why_not(variant: Variant, in_sizes: bool, in_batches: bool) -> str:
    if not in_sizes:
        return "not one of this variant's sizes"
    if not in_batches:
        return "not one of this variant's batch sizes"
    if variant.status == VariantStatus.failed:
        return "the variant failed before this shape"
    if variant.status in (VariantStatus.pending, VariantStatus.running):
        return "not measured yet"
    return "no series recorded"


def _row(variant: str, s: ShapeSeries) -> ShapeRow:
    return ShapeRow(
        variant=variant,
        width=s.width,
        height=s.height,
        batch_size=s.batch_size,
        status=SeriesStatus(s.status).value,
        error=s.error,
        n=s.n or 0,
        warmup=s.warmup or 0,
        latency_median_s=s.latency_median_s,
        latency_p10_s=s.latency_p10_s,
        latency_p90_s=s.latency_p90_s,
        latency_mean_s=s.latency_mean_s,
        latency_min_s=s.latency_min_s,
        latency_max_s=s.latency_max_s,
        first_call_s=s.first_call_s,
        first_call_graphs=s.first_call_graphs,
        peak_mem_gb=s.peak_mem_gb,
        peak_mem_kind=s.peak_mem_kind,
        device_total_gb=s.device_total_gb,
        batch_compared=s.batch_compared,
        batch_identical=s.batch_identical,
        batch_ssim_mean=s.batch_ssim_mean,
        batch_ssim_min=s.batch_ssim_min,
        batch_psnr_min_db=s.batch_psnr_min_db,
        recompiles=s.recompiles,
        graph_breaks=s.graph_breaks,
        contended=s.contended,
    )


def _gb(value: float | None, *, unit: bool = True) -> str:
    # As the pages' `gb` filter writes it (app/web/templating.py), without importing the web.
    text = "?" if value is None else f"{value:.2f}"
    return f"{text} GB" if unit else text
