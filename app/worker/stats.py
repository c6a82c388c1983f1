"""Latency statistics: what a series of timed calls is summarized as (numpy only, no torch,
so the worker's parent process, which stores them, never imports torch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    n: int
    median_s: float
    p10_s: float
    p90_s: float
    mean_s: float
    min_s: float
    max_s: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> LatencyStats:
        if not samples:
            raise ValueError("no latency samples")
        values = np.asarray(samples, dtype=float)
        p10, median, p90 = np.percentile(values, [10, 50, 90])
        return cls(
            n=len(values),
            median_s=float(median),
            p10_s=float(p10),
            p90_s=float(p90),
            mean_s=float(values.mean()),
            min_s=float(values.min()),
            max_s=float(values.max()),
        )
