"""Words for the leaderboard's numbers, shared by the page (Jinja filters) and the CLI.

A rating, an interval, a rank, a share and a verdict as short text; an infinite or missing
number reads in words, never as "inf" or "nan".
"""

from __future__ import annotations

import math

from app.arena.bradley_terry import VariantRating
from app.arena.verdicts import Verdict

_STATUS_WORDS = {
    "above": "above all",
    "below": "below all",
    "not_connected": "not connected",
    "not_identified": "not identified",
}


def fmt_rating(rating: VariantRating) -> str:
    """The rating as a number, or in words when it is infinite or missing (never "inf").
    A variant without votes says so, the reference too (its 1000 is a convention then)."""
    if rating.games == 0:
        return "no votes yet"
    if rating.status == "ok" and rating.rating is not None and math.isfinite(rating.rating):
        return f"{rating.rating:.0f}"
    return _STATUS_WORDS.get(rating.status, rating.status.replace("_", " "))


def fmt_interval(low: float | None, high: float | None) -> str:
    """A 95% interval on the Elo scale; an infinite end reads as "≥ low" / "≤ high"."""
    if low is None or high is None:
        return ""
    low_open, high_open = not math.isfinite(low), not math.isfinite(high)
    if low_open and high_open:
        return "unbounded"
    if high_open:
        return f"≥ {low:.0f}"
    if low_open:
        return f"≤ {high:.0f}"
    return f"[{low:.0f}, {high:.0f}]"


def fmt_rank(rank: int | None) -> str:
    return "—" if rank is None else str(rank)


def fmt_share(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value * 100:.0f}%"


def fmt_verdict(v: Verdict) -> str:
    if v.games == 0:
        return "no votes yet"
    return "undecided yet" if v.verdict == "undecided" else v.verdict
