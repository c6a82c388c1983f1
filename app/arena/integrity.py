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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

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


def _p(value: float) -> str:
    return f"p = {value:.1g}"


FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class _Members:
    """Who is tested on which decisive vote: one row per (subject, vote), every vote once
    for its rater and once more for its network when it has one. Subjects 0..R-1 are the
    raters, R.. the networks."""

    kinds: list[SubjectKind]  # per subject
    names: list[str]  # per subject
    subject: IntArray  # per row
    vote: IntArray  # per row


def _members(
    rater: IntArray, network: IntArray, rater_names: Sequence[str], network_names: Sequence[str]
) -> _Members:
    n_raters = len(rater_names)
    with_network = np.flatnonzero(network >= 0)
    kinds: list[SubjectKind] = ["rater"] * n_raters
    kinds += ["network"] * len(network_names)
    return _Members(
        kinds=kinds,
        names=[*rater_names, *network_names],
        subject=np.concatenate([rater, n_raters + network[with_network]]).astype(np.int64),
        vote=np.concatenate([np.arange(len(rater)), with_network]).astype(np.int64),
    )


def _sums(keys: IntArray, size: int, weights: FloatArray | None = None) -> FloatArray:
    return np.bincount(keys, weights=weights, minlength=size).astype(np.float64)


def find_anomalies(
    names: Sequence[str], votes: Sequence[CastVote], log_strength: Sequence[float]
) -> list[Flag]:
    """The flagged subjects among `votes` (see the module docstring), the strongest evidence
    first. `log_strength`: the consensus model's natural log-strength per variant (±inf or
    nan where it has no finite rating; votes touching those are left out of the model tests).
    """
    decisive = [v for v in votes if v.outcome in ("left", "right")]
    raters: dict[str, int] = {}
    networks: dict[str, int] = {}
    rater = [raters.setdefault(v.rater, len(raters)) for v in decisive]
    network = [
        -1 if v.network is None else networks.setdefault(v.network, len(networks)) for v in decisive
    ]
    return find_anomalies_coded(
        names,
        left=np.array([v.left for v in decisive], dtype=np.int64),
        right=np.array([v.right for v in decisive], dtype=np.int64),
        left_won=np.array([v.outcome == "left" for v in decisive], dtype=bool),
        rater=np.array(rater, dtype=np.int64),
        network=np.array(network, dtype=np.int64),
        rater_names=list(raters),
        network_names=list(networks),
        log_strength=log_strength,
    )


def find_anomalies_coded(
    names: Sequence[str],
    *,
    left: IntArray,
    right: IntArray,
    left_won: NDArray[np.bool_],
    rater: IntArray,
    network: IntArray,
    rater_names: Sequence[str],
    network_names: Sequence[str],
    log_strength: Sequence[float],
) -> list[Flag]:
    """find_anomalies on decisive votes as arrays: variant indices, whether the left side
    won, rater and network codes (-1: no network) into the name lists. Vectorized over
    subjects (sums by np.bincount): one pass over 100k votes of 2,500 subjects takes
    ~0.1 s (benchmarks/ranking_speed.py)."""
    if len(left) == 0:
        return []
    # Imported here: a process that only reads a stored leaderboard (the CLI) never tests
    # anyone. scipy.special, not scipy.stats: the same functions for a third of the memory
    # (46 MB less in every server process) and of the import time.
    from scipy.special import bdtrc, ndtr

    m = _members(rater, network, rater_names, network_names)
    n_subjects, n_variants = len(m.names), len(names)
    theta = np.asarray(log_strength, dtype=np.float64)
    winner = np.where(left_won, left, right)[m.vote]
    loser = np.where(left_won, right, left)[m.vote]
    won_left = left_won[m.vote].astype(np.float64)

    # 1. One side: twice the binomial tail of the majority side (either could be the one).
    n = _sums(m.subject, n_subjects)
    n_left = _sums(m.subject, n_subjects, won_left)
    majority = np.maximum(n_left, n - n_left)
    # (Counts as integers: scipy.special takes a float count but warns that it is deprecated.)
    p_side = np.minimum(
        1.0, 2.0 * bdtrc((majority - 1).astype(np.int64), n.astype(np.int64), SIDE_SHARE)
    )
    tested = n >= MIN_VOTES

    # 2. Off consensus: the log-likelihood of the choices against its mean and variance.
    with np.errstate(invalid="ignore"):  # inf - inf: both unrated, not evidence
        diff = theta[winner] - theta[loser]
    usable = np.isfinite(diff)
    q = 1.0 / (1.0 + np.exp(-np.where(usable, diff, 0.0)))  # P(the observed choice)
    with np.errstate(divide="ignore", invalid="ignore"):
        term_ll = np.where(usable, np.log(q), 0.0)
        term_mean = np.where(usable, q * np.log(q) + (1 - q) * np.log1p(-q), 0.0)
        term_var = np.where(usable, q * (1 - q) * np.log(q / (1 - q)) ** 2, 0.0)
    m_usable = _sums(m.subject, n_subjects, usable.astype(np.float64))
    ll = _sums(m.subject, n_subjects, term_ll)
    ll_mean = _sums(m.subject, n_subjects, term_mean)
    ll_var = _sums(m.subject, n_subjects, term_var)
    off_tested = tested & (m_usable >= MIN_VOTES) & (ll_var > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_off = np.where(off_tested, ndtr((ll - ll_mean) / np.sqrt(ll_var)), 1.0)

    # 3. One variant: per (subject, variant), its wins against the wins the model expects.
    keys = np.concatenate([m.subject * n_variants + winner, m.subject * n_variants + loser])
    won = np.concatenate([np.ones(len(winner)), np.zeros(len(loser))])
    p_win = np.concatenate([q, 1 - q])
    ok = np.concatenate([usable, usable]).astype(np.float64)
    size = n_subjects * n_variants
    games = _sums(keys, size, ok).reshape(n_subjects, n_variants)
    wins = _sums(keys, size, won * ok).reshape(n_subjects, n_variants)
    expected = _sums(keys, size, p_win * ok).reshape(n_subjects, n_variants)
    var = _sums(keys, size, p_win * (1 - p_win) * ok).reshape(n_subjects, n_variants)
    variant_tested = tested[:, None] & (games >= MIN_VOTES) & (var > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_variant = np.where(variant_tested, ndtr(-(wins - 0.5 - expected) / np.sqrt(var)), 1.0)

    # Bonferroni within each subject; the smallest p-value names the reason.
    tests_run = 1 + off_tested + variant_tested.sum(axis=1)
    best_variant = p_variant.argmin(axis=1)
    p_best_variant = p_variant[np.arange(n_subjects), best_variant]
    flags = []
    for s in np.flatnonzero(tested):
        candidates: list[tuple[float, TestName]] = [
            (float(p_side[s]), "one_side"),
            (float(p_off[s]), "off_consensus"),
            (float(p_best_variant[s]), "one_variant"),
        ]
        p, test = min(candidates, key=lambda c: c[0])
        if p >= SUBJECT_ALPHA / tests_run[s]:
            continue
        if test == "one_side":
            side = "left" if n_left[s] >= n[s] - n_left[s] else "right"
            why = (
                f"chose the {side} image in {majority[s]:.0f} of {n[s]:.0f} decisive votes "
                f"({_p(p)}; a rater who looks picks one side at most {SIDE_SHARE:.0%} "
                "of the time)"
            )
        elif test == "off_consensus":
            why = (
                f"disagrees with the consensus beyond chance: log-likelihood {ll[s]:.1f} of "
                f"its {m_usable[s]:.0f} choices, expected {ll_mean[s]:.1f} ({_p(p)})"
            )
        else:
            v = best_variant[s]
            why = (
                f"chose {names[v]} in {wins[s, v]:.0f} of {games[s, v]:.0f} votes where the "
                f"consensus expects {expected[s, v]:.1f} ({_p(p)})"
            )
        flags.append(Flag(m.kinds[s], m.names[s], test, p, int(n[s]), why))
    return sorted(flags, key=lambda flag: flag.p_value)
