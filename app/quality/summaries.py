"""Summaries of a run's stored metrics for the pages and the CLI: per (variant, metric, model)
the mean and a Student-t interval, clipped to the metric's range where shown (METRIC_RANGES);
for a metric whose values are 0 or 1 (PROPORTIONS: adherence, the share of images fully
right), the Wilson score interval, which a Student-t interval of 0/1 values is not: all
right gives it [1, 1] whatever the count.

Plain SQL aggregates + numpy, no torch: the web tier reads these. Cached per change of the
metrics (DESIGN.md rule 10).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.arena.win_rates import wilson_interval
from app.memo import TTLMemo
from app.models import Generation, GenerationMetric, MetricStatus, Run, Variant
from app.numbers import UNBOUNDED, clip, fmt_estimate

# Each metric's possible values: its intervals are clipped to them where shown (a Student-t
# interval of a CLIP score near 0 would otherwise reach below 0, an SSIM near 1 above 1).
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "ssim": (-1.0, 1.0),
    "psnr_db": (0.0, math.inf),  # 10·log10(1 / MSE), MSE ≤ 1 on [0, 1] images
    "lpips": (0.0, math.inf),
    "clip_score": (0.0, 100.0),  # 100 × max(cos, 0)
    "adherence": (0.0, 1.0),  # 1: every attribute the prompt states is right
}

PROPORTIONS = frozenset({"adherence"})


@dataclass(frozen=True)
class MetricSummary:
    """One (variant, metric, model) of a run: mean and Student-t interval of its values.

    PSNR of identical images is +inf: those are counted in `n_infinite` and left out of the
    mean and the interval. The interval needs two finite values.
    """

    variant: str
    metric: str
    model: str
    n: int  # finite values
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n_infinite: int
    n_unavailable: int
    reason: str | None  # the most frequent reason among the unavailable rows

    @property
    def interval(self) -> tuple[float | None, float | None]:
        """The interval as shown: clipped to the metric's range (METRIC_RANGES)."""
        return clip(self.ci_low, self.ci_high, METRIC_RANGES.get(self.metric, UNBOUNDED))

    @property
    def display(self) -> str:
        """The mean and its 95% interval at the decimals the interval's width supports, the
        interval clipped to the metric's range (app.numbers.fmt_estimate)."""
        if self.mean is None and self.reason is not None:
            return f"unavailable: {self.reason}"
        if self.mean is None:
            return "∞" if self.n_infinite else "-"
        return fmt_estimate(
            self.mean, self.ci_low, self.ci_high, METRIC_RANGES.get(self.metric, UNBOUNDED)
        )


def mean_interval(
    values: Sequence[float], confidence: float = 0.95
) -> tuple[float | None, float | None, float | None]:
    """Mean and Student-t interval (mean ± t·s/√n, s with n-1): (None, None, None) for no
    values, no interval for one."""
    n = len(values)
    if n == 0:
        return None, None, None
    mean = float(np.mean(values))
    if n == 1:
        return mean, None, None
    half = float(special.stdtrit(n - 1, (1 + confidence) / 2)) * float(np.std(values, ddof=1))
    half /= math.sqrt(n)
    return mean, mean - half, mean + half


# A value at least this large is +inf (PSNR of identical images): both databases compare
# infinity as larger than any finite float, and no metric here comes near it.
_INFINITE = 1e300


def metrics_version(session: Session) -> tuple[int, str]:
    """What changes when any metric is written or recomputed: the largest row id and the
    latest `created_at` (a recompute updates rows in place). Two index probes."""
    largest = session.scalar(select(func.max(GenerationMetric.id))) or 0
    latest = session.scalar(select(func.max(GenerationMetric.created_at)))
    return int(largest), str(latest)


# Summaries by (database, run, variant, confidence, metrics version): computed once per change
# of the metrics, however many pages ask (DESIGN.md rule 10).
_summaries: TTLMemo[tuple[str, int, str | None, float, tuple[int, str]], list[MetricSummary]]
_summaries = TTLMemo(ttl_s=3600.0, maxsize=64)


def metric_summaries(
    session: Session, run_id: int, *, variant: str | None = None, confidence: float = 0.95
) -> list[MetricSummary]:
    """Every (variant, metric, model) of the run at its main size, variants in config
    order: from SQL aggregates (count, sum, sum of squares of the finite values; infinite
    and unavailable counts; the most frequent reason), cached until the metrics change."""
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    key = (url, run_id, variant, confidence, metrics_version(session))
    return _summaries.get(key, lambda: _summarize(session, run_id, variant, confidence))


def _summarize(
    session: Session, run_id: int, variant: str | None, confidence: float
) -> list[MetricSummary]:
    ok = GenerationMetric.status == MetricStatus.ok
    finite = (
        ok & GenerationMetric.value.is_not(None) & (func.abs(GenerationMetric.value) < _INFINITE)
    )
    infinite = ok & (func.abs(GenerationMetric.value) >= _INFINITE)
    unavailable = GenerationMetric.status == MetricStatus.unavailable

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    # The run's main size: the headline figures (and the arena) are at that size; other sizes'
    # images are scored too but never averaged in with it.
    main = select(Run.width, Run.height).where(Run.id == run_id).subquery()
    where = [
        Generation.run_id == run_id,
        Generation.width == select(main.c.width).scalar_subquery(),
        Generation.height == select(main.c.height).scalar_subquery(),
    ]
    if variant is not None:
        where.append(Variant.name == variant)
    group = (Variant.id, GenerationMetric.metric, GenerationMetric.model)
    rows = session.execute(
        select(
            Variant.name,
            GenerationMetric.metric,
            GenerationMetric.model,
            count(finite),
            func.sum(case((finite, GenerationMetric.value), else_=0.0)),
            func.sum(case((finite, GenerationMetric.value * GenerationMetric.value), else_=0.0)),
            count(infinite),
            count(unavailable),
        )
        .join(Generation, Generation.id == GenerationMetric.generation_id)
        .join(Variant, Variant.id == Generation.variant_id)
        .where(*where)
        .group_by(*group, Variant.name, Variant.position)
        .order_by(Variant.position, GenerationMetric.metric, GenerationMetric.model)
    ).all()
    reasons: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for name, metric, model, reason, n in session.execute(
        select(
            Variant.name,
            GenerationMetric.metric,
            GenerationMetric.model,
            GenerationMetric.reason,
            func.count(),
        )
        .join(Generation, Generation.id == GenerationMetric.generation_id)
        .join(Variant, Variant.id == Generation.variant_id)
        .where(*where, unavailable, GenerationMetric.reason.is_not(None))
        .group_by(*group, Variant.name, GenerationMetric.reason)
    ):
        reasons[(name, metric, model)][str(reason)] += n
    out = []
    for name, metric, model, n, total, squares, n_infinite, n_unavailable in rows:
        n, n_infinite, n_unavailable = int(n or 0), int(n_infinite or 0), int(n_unavailable or 0)
        if metric in PROPORTIONS:
            mean, low, high = share_with_interval(round(float(total or 0)), n, confidence)
        else:
            mean, low, high = _mean_interval_from_sums(
                n, float(total or 0), float(squares or 0), confidence
            )
        common = reasons[(name, metric, model)].most_common(1)
        out.append(
            MetricSummary(
                variant=name,
                metric=metric,
                model=model,
                n=n,
                mean=mean,
                ci_low=low,
                ci_high=high,
                n_infinite=n_infinite,
                n_unavailable=n_unavailable,
                reason=common[0][0] if common else None,
            )
        )
    return out


def share_with_interval(
    successes: int, n: int, confidence: float = 0.95
) -> tuple[float | None, float | None, float | None]:
    """The share `successes / n` and its Wilson score interval (the arena's, for its
    head-to-head shares): (None, None, None) for no trials, as for a mean of no values."""
    if n == 0:
        return None, None, None
    low, high = wilson_interval(successes, n, confidence)
    return successes / n, low, high


def _mean_interval_from_sums(
    n: int, total: float, squares: float, confidence: float
) -> tuple[float | None, float | None, float | None]:
    """mean_interval from the count, sum and sum of squares (what SQL aggregates give)."""
    if n == 0:
        return None, None, None
    mean = total / n
    if n == 1:
        return mean, None, None
    variance = max(0.0, (squares - n * mean * mean) / (n - 1))
    half = float(special.stdtrit(n - 1, (1 + confidence) / 2)) * math.sqrt(variance / n)
    return mean, mean - half, mean + half
