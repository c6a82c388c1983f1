"""Raters and networks whose votes no honest rater would cast: anomaly flags.

Limits (app/arena/network.py) bound how many votes a network can cast; these tests decide
which of the cast votes to believe. Each *subject* is tested on its decisive votes (left or
right; ties say little about a preference): every rater, and every network's anonymous votes
pooled (a script that takes a fresh cookie every 25 votes is one subject as a network). Three
tests, each with the null hypothesis it rejects:

- **one side**: the subject picks one side (left or right) at most SIDE_SHARE of the time.
  The arena shuffles the sides, so a rater who looks at the images picks each about half the
  time; people's position bias is a few points, far below SIDE_SHARE. Exact binomial tail.
- **one variant**: the subject's choices follow the consensus model (the Bradley–Terry fit
  on everyone's counted votes). Per variant, the wins it got from the subject against the
  wins the model expects (normal approximation of the Poisson-binomial, upper tail).
- **off consensus**: the same null, on the log-likelihood of all the subject's choices under
  the model (lower tail): votes that disagree with everyone else more than chance allows.

A subject is flagged when a test's p-value falls below SUBJECT_ALPHA divided by the number of
tests run on it (Bonferroni within the subject): under the nulls, an honest rater or network
is flagged with probability at most SUBJECT_ALPHA, however large the board. (Controlling the
chance that *any* honest subject of a board is flagged instead would let a bot hide among
many raters: the threshold would shrink with the board.) Subjects with fewer than MIN_VOTES
decisive votes are not tested: too few to tell, and a bot that keeps under it casts little.

A flag leaves the subject's votes out of the ranking (for a network: its anonymous votes;
invited panel raters are judged one by one). An admin can overrule a flag (the votes count
again) and undo that; the decision is kept per run in `integrity_reviews`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.stats import binom, norm

SubjectKind = Literal["rater", "network"]
TestName = Literal["one_side", "one_variant", "off_consensus"]

MIN_VOTES = 15
SIDE_SHARE = 0.65
SUBJECT_ALPHA = 0.001


class CastVote(NamedTuple):
    """One vote as the tests read it: variant indices, the outcome, who and from where."""

    left: int
    right: int
    outcome: str  # "left", "right", "tie", "both_bad"
    rater: str
    network: str | None  # None for a panel vote (or one from before networks were kept)


@dataclass(frozen=True)
class Flag:
    kind: SubjectKind
    subject: str  # the rater id, or the network
    test: TestName
    p_value: float
    votes: int  # the subject's decisive votes
    reason: str  # for the admin page: what the votes did, and how unlikely that is


@dataclass(frozen=True)
class _Subject:
    kind: SubjectKind
    subject: str
    left_won: NDArray[np.bool_]  # per decisive vote
    winner: NDArray[np.int64]
    loser: NDArray[np.int64]


def _p(value: float) -> str:
    return f"p = {value:.1g}"


def _test_one_side(s: _Subject) -> tuple[float, TestName, str]:
    n = len(s.left_won)
    left = int(s.left_won.sum())
    side, k = ("left", left) if left >= n - left else ("right", n - left)
    # Either side could be the one: twice the tail.
    p = min(1.0, 2.0 * float(binom.sf(k - 1, n, SIDE_SHARE)))
    reason = (
        f"chose the {side} image in {k} of {n} decisive votes ({_p(p)}; "
        f"a rater who looks picks one side at most {SIDE_SHARE:.0%} of the time)"
    )
    return p, "one_side", reason


def _model_probability(s: _Subject, theta: NDArray[np.float64]) -> NDArray[np.float64]:
    """The model's probability of each decisive vote's outcome (nan where a side has no
    finite rating)."""
    diff = theta[s.winner] - theta[s.loser]
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(diff), 1.0 / (1.0 + np.exp(-diff)), np.nan)


def _test_off_consensus(s: _Subject, theta: NDArray[np.float64]) -> tuple[float, str] | None:
    q = _model_probability(s, theta)
    q = q[np.isfinite(q)]
    if len(q) < MIN_VOTES:
        return None
    # The log-likelihood of what was chosen, against its mean and variance under the model.
    observed = float(np.log(q).sum())
    mean = float((q * np.log(q) + (1 - q) * np.log1p(-q)).sum())
    var = float((q * (1 - q) * np.log(q / (1 - q)) ** 2).sum())
    if var <= 0:
        return None  # every pair even: no choice is more likely than another
    z = (observed - mean) / var**0.5
    p = float(norm.cdf(z))
    agree = int((q > 0.5).sum())
    reason = (
        f"disagrees with the consensus beyond chance: sided with the favourite in {agree} of "
        f"{len(q)} votes (log-likelihood {observed:.1f}, expected {mean:.1f}; {_p(p)})"
    )
    return p, reason


def _test_one_variant(
    s: _Subject, theta: NDArray[np.float64], names: Sequence[str]
) -> list[tuple[float, str]]:
    q = _model_probability(s, theta)
    usable = np.isfinite(q)
    results = []
    for v in range(len(names)):
        as_winner = usable & (s.winner == v)
        as_loser = usable & (s.loser == v)
        n = int(as_winner.sum() + as_loser.sum())
        if n < MIN_VOTES:
            continue
        # P(v wins) per vote: q where v won, 1 - q where it lost.
        p_win = np.concatenate([q[as_winner], 1 - q[as_loser]])
        expected = float(p_win.sum())
        var = float((p_win * (1 - p_win)).sum())
        if var <= 0:
            continue
        won = int(as_winner.sum())
        p = float(norm.sf((won - 0.5 - expected) / var**0.5))
        reason = (
            f"chose {names[v]} in {won} of {n} votes where the consensus expects "
            f"{expected:.1f} ({_p(p)})"
        )
        results.append((p, reason))
    return results


def _subjects(votes: Sequence[CastVote]) -> list[_Subject]:
    groups: dict[tuple[SubjectKind, str], list[int]] = defaultdict(list)
    decisive = [v for v in votes if v.outcome in ("left", "right")]
    for i, vote in enumerate(decisive):
        groups[("rater", vote.rater)].append(i)
        if vote.network is not None:
            groups[("network", vote.network)].append(i)
    left_won = np.array([v.outcome == "left" for v in decisive], dtype=bool)
    left = np.array([v.left for v in decisive], dtype=np.int64)
    right = np.array([v.right for v in decisive], dtype=np.int64)
    winner = np.where(left_won, left, right)
    loser = np.where(left_won, right, left)
    subjects = []
    for (kind, subject), members in groups.items():
        if len(members) < MIN_VOTES:
            continue
        idx = np.asarray(members, dtype=np.int64)
        subjects.append(_Subject(kind, subject, left_won[idx], winner[idx], loser[idx]))
    return subjects


def find_anomalies(
    names: Sequence[str], votes: Sequence[CastVote], log_strength: Sequence[float]
) -> list[Flag]:
    """The flagged subjects among `votes` (see the module docstring), the strongest evidence
    first. `log_strength`: the consensus model's natural log-strength per variant (±inf or
    nan where it has no finite rating; votes touching those are left out of the model tests)."""
    theta = np.asarray(log_strength, dtype=np.float64)
    flags = []
    for s in _subjects(votes):
        results: list[tuple[float, TestName, str]] = [_test_one_side(s)]
        off = _test_off_consensus(s, theta)
        if off is not None:
            results.append((off[0], "off_consensus", off[1]))
        results += [(p, "one_variant", why) for p, why in _test_one_variant(s, theta, names)]
        p, test, why = min(results, key=lambda result: result[0])
        if p < SUBJECT_ALPHA / len(results):
            flags.append(Flag(s.kind, s.subject, test, p, len(s.left_won), why))
    return sorted(flags, key=lambda flag: flag.p_value)
