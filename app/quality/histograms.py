"""Histograms of a fidelity metric per variant and prompt category, on bins shared by the
whole run so the bars compare. Plain SQL + numpy, no torch: the pages read these."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Generation, GenerationMetric, MetricStatus, Prompt, Variant


@dataclass(frozen=True)
class FidelityHistogram:
    """One variant's values of a fidelity metric, binned per prompt category.

    `edges` (bins + 1) are shared by every category and every variant of the run, so the
    bars compare; non-finite values (PSNR of identical images) are left out.
    """

    variant: str
    metric: str
    model: str
    edges: list[float]
    counts: dict[str, list[int]]  # prompt category -> count per bin, categories sorted


def fidelity_histograms(
    session: Session, run_id: int, *, metric: str = "ssim", bins: int | Sequence[float] = 10
) -> list[FidelityHistogram]:
    """The histogram data of `metric` per variant (config order) and prompt category."""
    rows = session.execute(
        select(Variant.name, GenerationMetric.model, Prompt.category, GenerationMetric.value)
        .join(Generation, Generation.id == GenerationMetric.generation_id)
        .join(Variant, Variant.id == Generation.variant_id)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .where(
            Generation.run_id == run_id,
            GenerationMetric.metric == metric,
            GenerationMetric.status == MetricStatus.ok,
        )
        .order_by(Variant.position, GenerationMetric.model, Prompt.category)
    ).all()
    finite = [(n, m, c, v) for n, m, c, v in rows if v is not None and math.isfinite(v)]
    if not finite:
        return []
    edges = np.histogram_bin_edges([v for *_, v in finite], bins=_bins(bins))
    grouped: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name, model, category, value in finite:
        grouped[(name, model)][category].append(value)
    return [
        FidelityHistogram(
            variant=name,
            metric=metric,
            model=model,
            edges=[float(e) for e in edges],
            counts={
                category: [int(c) for c in np.histogram(values, bins=edges)[0]]
                for category, values in sorted(by_category.items())
            },
        )
        for (name, model), by_category in grouped.items()
    ]


def _bins(bins: int | Iterable[float]) -> int | list[float]:
    return bins if isinstance(bins, int) else list(bins)
