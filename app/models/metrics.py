"""Automatic quality figures of the images (app/quality/), one row per (generation, metric,
model).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, stored_enum, utcnow
from app.models.runs import Generation


class MetricStatus(enum.StrEnum):
    ok = "ok"
    unavailable = "unavailable"


class GenerationMetric(Base):
    """One automatic quality figure of one image (app/quality/).

    Keyed by (generation, metric, model): recomputing updates the row in place, and a figure
    from another model (another CLIP) is another row, never mixed with this one. A metric
    that cannot run here is stored with status "unavailable", no value and the reason.
    """

    __tablename__ = "generation_metrics"
    __table_args__ = (
        UniqueConstraint("generation_id", "metric", "model"),
        # The latest change, for the summaries' cache key (app/quality metrics_version).
        Index("ix_generation_metrics_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    # "ssim", "psnr_db", "lpips", "clip_score", "adherence"
    metric: Mapped[str] = mapped_column(String(32))
    # What computed it: "torchmetrics", "lpips-alex", a CLIP Hub id, local path or tiny ref.
    model: Mapped[str] = mapped_column(String(255))
    # Settings and versions behind the figure; the reference image for fidelity metrics.
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Null when unavailable; PSNR of identical images is +inf.
    value: Mapped[float | None] = mapped_column(Float)
    status: Mapped[MetricStatus] = mapped_column(stored_enum(MetricStatus, "metric_status"))
    reason: Mapped[str | None] = mapped_column(Text)
    # When the figure was (re)computed.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    generation: Mapped[Generation] = relationship()
