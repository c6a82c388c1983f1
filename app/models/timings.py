"""What a variant's timed series measured: latency statistics (TimingSummary) and the steady
state per (size, batch size) with its memory and batch checks (ShapeSeries).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, stored_enum, utcnow

if TYPE_CHECKING:  # the relationship's annotation only: SQLAlchemy resolves it by name
    from app.models.runs import Variant


class SeriesStatus(enum.StrEnum):
    measured = "measured"
    does_not_fit = "does_not_fit"  # out of device memory at this size and batch size
    skipped = "skipped"  # not tried: a smaller batch at this size did not fit (error says)


class TimingSummary(Base):
    """Latency statistics of one variant.

    kind "steady_state": `repeats` timed calls on one prompt after `warmup` untimed ones.
    kind "per_image": the latencies of the benchmark's generations.
    """

    __tablename__ = "timing_summaries"
    __table_args__ = (UniqueConstraint("variant_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(Integer)
    warmup: Mapped[int] = mapped_column(Integer)
    latency_median_s: Mapped[float] = mapped_column(Float)
    latency_p10_s: Mapped[float] = mapped_column(Float)
    latency_p90_s: Mapped[float] = mapped_column(Float)
    latency_mean_s: Mapped[float] = mapped_column(Float)
    latency_min_s: Mapped[float] = mapped_column(Float)
    latency_max_s: Mapped[float] = mapped_column(Float)
    # Where and when the series ran: "host/device" and the child's "host:pid".
    device_key: Mapped[str | None] = mapped_column(String(160))
    process: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Graphs compiled and graph breaks during the series: a compiled variant that recompiled
    # was not in its steady state.
    recompiles: Mapped[int | None] = mapped_column(Integer)
    graph_breaks: Mapped[int | None] = mapped_column(Integer)
    # What else used the device meanwhile (app/worker/contention.py), and the verdict.
    contention: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    contended: Mapped[bool | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    variant: Mapped[Variant] = relationship(back_populates="timings")

    @property
    def flags(self) -> list[str]:
        """Why this series is not a clean steady state, in words for its card."""
        out = []
        if self.recompiles:
            out.append(f"recompiled {self.recompiles}× while timed")
        if self.contended:
            out.append("measured under contention")
        return out


class ShapeFigures:
    """What a shape's series gives per image: shared by the stored row (ShapeSeries) and the
    pages' plain copy of it (app/bench/scaling.py, ShapeRow). Latencies are per call; a call
    makes `batch_size` images."""

    if TYPE_CHECKING:  # provided by the class that mixes this in
        width: int
        height: int
        batch_size: int
        latency_median_s: float | None

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    @property
    def latency_per_image_s(self) -> float | None:
        if self.latency_median_s is None:
            return None
        return self.latency_median_s / self.batch_size

    @property
    def images_per_s(self) -> float | None:
        if not self.latency_median_s:
            return None
        return self.batch_size / self.latency_median_s


class ShapeSeries(ShapeFigures, Base):
    """The steady state of one variant at one (size, batch size): what a call costs there,
    what the first call at that shape cost (a compiled variant recompiles for a new shape),
    the memory it peaked at, whether it fits at all, and whether batching changed the images.

    Latencies are per call (a call makes `batch_size` images). `first_call_s` is the first
    call the variant's process made at this shape: at load for its first size, before its
    images for its other sizes at batch 1, before the series for a larger batch.
    """

    __tablename__ = "shape_series"
    __table_args__ = (UniqueConstraint("variant_id", "width", "height", "batch_size"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    status: Mapped[SeriesStatus] = mapped_column(stored_enum(SeriesStatus, "series_status"))
    error: Mapped[str | None] = mapped_column(Text)
    n: Mapped[int] = mapped_column(Integer, default=0)
    warmup: Mapped[int] = mapped_column(Integer, default=0)
    latency_median_s: Mapped[float | None] = mapped_column(Float)
    latency_p10_s: Mapped[float | None] = mapped_column(Float)
    latency_p90_s: Mapped[float | None] = mapped_column(Float)
    latency_mean_s: Mapped[float | None] = mapped_column(Float)
    latency_min_s: Mapped[float | None] = mapped_column(Float)
    latency_max_s: Mapped[float | None] = mapped_column(Float)
    first_call_s: Mapped[float | None] = mapped_column(Float)
    first_call_graphs: Mapped[int | None] = mapped_column(Integer)  # compiled by that call
    # Peak device memory at this shape (first call and series), or reached before the OOM;
    # and the device's total, so "does not fit at 2048², batch 4" reads "31.8 of 24 GB".
    peak_mem_gb: Mapped[float | None] = mapped_column(Float)
    peak_mem_kind: Mapped[str | None] = mapped_column(String(32))
    device_total_gb: Mapped[float | None] = mapped_column(Float)
    # Batch > 1: the batch's images against the same prompts and seeds at batch 1.
    batch_compared: Mapped[int | None] = mapped_column(Integer)
    batch_identical: Mapped[int | None] = mapped_column(Integer)  # pixel for pixel
    batch_ssim_mean: Mapped[float | None] = mapped_column(Float)
    batch_ssim_min: Mapped[float | None] = mapped_column(Float)
    batch_psnr_min_db: Mapped[float | None] = mapped_column(Float)  # over the non-identical
    recompiles: Mapped[int | None] = mapped_column(Integer)
    graph_breaks: Mapped[int | None] = mapped_column(Integer)
    contention: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    contended: Mapped[bool | None] = mapped_column()
    process: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    variant: Mapped[Variant] = relationship(back_populates="shapes")
