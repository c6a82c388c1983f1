"""Head-to-head shares: the win-rate matrix, the Wilson interval, and position bias.

The plain views beside Bradley–Terry (DESIGN.md, "Ranking conventions"): each pair's share of
its votes, ties half, and how often the image shown on the left won, which says whether the
arena's left/right placement leans on the votes. Pure numpy and the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from app.arena.vote_counts import OUTCOMES, FloatArray, IntArray, PairCounts


@dataclass(frozen=True, eq=False)
class WinRates:
    """``rate[i, j]``: i's share of the votes between i and j, ties half; nan if none."""

    names: tuple[str, ...]
    rate: FloatArray
    games: IntArray
    wins: IntArray
    ties: IntArray
    both_bad: IntArray


def win_rates(counts: PairCounts) -> WinRates:
    games = counts.games
    score = counts.wins + 0.5 * counts.ties
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(games > 0, score / games, np.nan)
    return WinRates(counts.names, rate, games, counts.wins, counts.ties, counts.both_bad)


# --- Intervals for proportions ------------------------------------------------------------


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval; (0, 1) when n is 0. ``successes`` may be fractional (half ties)."""
    z = _z(confidence)
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


@dataclass(frozen=True)
class PositionBias:
    """How often the image shown on the left won, among votes with a winner."""

    left_wins: int
    right_wins: int
    share_left: float | None  # None when no vote had a winner
    ci_low: float
    ci_high: float
    biased: bool  # the interval excludes 0.5


def position_bias(votes: Iterable[tuple[str, str, str]], confidence: float = 0.95) -> PositionBias:
    """Share of decided votes won by the left image, with a Wilson interval."""
    left = right = 0
    for _, _, outcome in votes:
        if outcome == "left":
            left += 1
        elif outcome == "right":
            right += 1
        elif outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {list(OUTCOMES)}")
    return position_bias_of(left, right, confidence)


def position_bias_of(left: int, right: int, confidence: float = 0.95) -> PositionBias:
    """PositionBias from the numbers of votes the left and the right image won."""
    decided = left + right
    low, high = wilson_interval(left, decided, confidence)
    share = left / decided if decided else None
    return PositionBias(left, right, share, low, high, high < 0.5 or low > 0.5)
