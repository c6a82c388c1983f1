"""Verdicts of a variant against its reference that stay valid under continuous looking.

The leaderboard page polls every few seconds and a team may look after every vote, so a
fixed-n interval would, looked at that often, declare a winner where there is none. The
verdict rests instead on an anytime-valid confidence sequence for the head-to-head win rate
(DESIGN.md, "Ranking conventions"), and says about how many more votes would decide it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from app.arena.vote_counts import PairCounts

VerdictLabel = Literal["better", "worse", "indistinguishable", "undecided"]


@dataclass(frozen=True)
class Verdict:
    """A variant against its reference, from their head-to-head votes (ties half).

    ``verdict``: "better" if the interval's lower end is above 0.5, "worse" if its upper end
    is below 0.5, else "indistinguishable" if it lies within 0.5 ± margin, else
    "undecided". The interval is an anytime-valid confidence sequence
    (`confidence_sequence`), so the verdict stays valid however often it is looked at
    (`test` names it). One interval serves all three tests, so each holds at the stated
    confidence.
    ``equivalent`` says whether the interval lies within the margin even when better/worse
    won the precedence: "worse, but by less than the margin" is a useful thing to show.
    """

    variant: str
    reference: str
    verdict: VerdictLabel
    win_rate: float | None  # None without head-to-head votes
    ci_low: float
    ci_high: float
    games: int
    wins: int
    losses: int
    ties: int
    margin: float
    equivalent: bool
    votes_needed: int | None  # more head-to-head votes likely needed; 0 when decided
    message: str
    test: str  # the interval behind the verdict, in words


# A head-to-head score (1 win, 0.5 tie, 0 loss) lies in [0, 1]: sub-Gaussian with variance
# proxy 1/4 (Hoeffding), whatever the true rate.
_SCORE_VARIANCE = 0.25
# The confidence sequence holds at every count; its mixture is tuned to be tightest around
# this many head-to-head votes (a panel's usual size of study).
CS_TUNED_VOTES = 500


def _cs_rho(alpha: float) -> float:
    """The normal mixture's precision, tuned for CS_TUNED_VOTES (Howard et al. 2021, eq. for
    the optimal rho at a target intrinsic time)."""
    log_term = 2 * math.log(1 / alpha)
    return _SCORE_VARIANCE * CS_TUNED_VOTES / (log_term + math.log(1 + log_term))


def _cs_half_width(games: int, alpha: float) -> float:
    """Half-width of the win-rate confidence sequence after `games` votes."""
    rho = _cs_rho(alpha)
    v = _SCORE_VARIANCE * games + rho
    return math.sqrt(v * math.log(v / (rho * alpha * alpha))) / games


def confidence_sequence(score: float, games: int, confidence: float = 0.95) -> tuple[float, float]:
    """An anytime-valid interval for the win rate: with probability `confidence` it holds at
    every count of votes at once, so a verdict may be looked at after every vote.

    The two-sided normal-mixture boundary for sums of sub-Gaussian increments (Robbins;
    Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic
    confidence sequences", Ann. Statist. 2021): |S_n - n·p| <= sqrt((V + rho)·log((V + rho) /
    (rho·alpha²))) with V = n/4. About 1.5× as wide as a fixed-n interval at its tuned size:
    the price of peeking. (0, 1) without votes.
    """
    if games == 0:
        return 0.0, 1.0
    mean = score / games
    half = _cs_half_width(games, 1 - confidence)
    return max(0.0, mean - half), min(1.0, mean + half)


def _votes_needed(score: float, games: int, margin: float, confidence: float) -> int | None:
    """More votes until the sequence likely clears a decision boundary, if the rate holds.

    With p the rate so far (0.5 without votes) and d the distance the half-width must shrink
    below, d = max(|p - 0.5|, margin - |p - 0.5|) (clearing 0.5, or fitting inside the
    margin), the smallest total N whose half-width is at most d, found by bisection (the
    half-width falls with N past the first few votes).
    """
    p = score / games if games else 0.5
    distance = max(abs(p - 0.5), margin - abs(p - 0.5))
    if distance <= 0:
        return None
    alpha = 1 - confidence
    high = max(games, 1)
    while _cs_half_width(high, alpha) > distance:
        high *= 2
        if high > 10**9:
            return None
    low = max(games, 1)
    while low < high:
        middle = (low + high) // 2
        if _cs_half_width(middle, alpha) <= distance:
            high = middle
        else:
            low = middle + 1
    return max(1, high - games)


def verdict(
    counts: PairCounts,
    variant: str,
    reference: str,
    *,
    margin: float = 0.05,
    confidence: float = 0.95,
) -> Verdict:
    if not 0.0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    i, r = counts.index(variant), counts.index(reference)
    if i == r:
        raise ValueError(f"{variant!r} is the reference; a verdict compares two variants")
    wins, losses, ties = int(counts.wins[i, r]), int(counts.wins[r, i]), int(counts.ties[i, r])
    games = wins + losses + ties
    score = wins + 0.5 * ties
    # Anytime-valid: the page polls every few seconds and a team may look after every vote;
    # a fixed-n interval looked at that often would declare a winner where there is none.
    low, high = confidence_sequence(score, games, confidence)
    # Without votes the interval is (0, 1), which decides nothing.
    equivalent = 0.5 - margin <= low and high <= 0.5 + margin
    label: VerdictLabel
    if low > 0.5:
        label = "better"
    elif high < 0.5:
        label = "worse"
    elif equivalent:
        label = "indistinguishable"
    else:
        label = "undecided"
    needed = 0 if label != "undecided" else _votes_needed(score, games, margin, confidence)
    return Verdict(
        variant=variant,
        reference=reference,
        verdict=label,
        win_rate=score / games if games else None,
        ci_low=low,
        ci_high=high,
        games=games,
        wins=wins,
        losses=losses,
        ties=ties,
        margin=margin,
        equivalent=equivalent,
        votes_needed=needed,
        message=_verdict_message(label, variant, reference, games, needed),
        test=f"anytime-valid {confidence:.0%} confidence sequence (normal mixture)",
    )


def _verdict_message(
    label: VerdictLabel, variant: str, reference: str, games: int, needed: int | None
) -> str:
    if label == "better":
        return f"{variant} beats {reference}"
    if label == "worse":
        return f"{variant} loses to {reference}"
    if label == "indistinguishable":
        return f"{variant} and {reference} are within the margin of each other"
    prefix = "undecided yet" if games else f"no votes between {variant} and {reference} yet"
    if needed is None:
        return prefix
    return f"{prefix}: about {needed} more votes would likely decide it"
