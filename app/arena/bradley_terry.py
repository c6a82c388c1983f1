"""Bradley–Terry ratings from pairwise preference votes, with bootstrap intervals and ranks.

Pure numpy: vote counts in, results out; no database and no web. Conventions (DESIGN.md,
"Ranking conventions"):

- Bradley–Terry by maximum likelihood, no penalty; a tie ("tie" or "both_bad") counts as half
  a win to each side. Fitted on strengths with the reference pinned (log-strength 0) and shown
  on the Elo scale, ``rating = 400·log10(strength) + 1000``: the reference is exactly 1000.
- 95% intervals from a bootstrap (1000 rounds, seeded), all resamples fitted at once by
  batched MM (Zermelo) iterations. Given the votes grouped by rater (``Clusters``), it
  resamples raters (cluster bootstrap), since one rater's votes are not independent;
  otherwise it is a multinomial bootstrap of the vote counts.
- rank = 1 + the number of variants whose interval lies wholly above this one's.

When the maximum-likelihood estimate does not exist. Draw an arrow i → j when i beat or tied
j at least once. Ratings are finite, relative to each other, exactly within a strongly
connected group of that graph (Zermelo, Ford). So, for each variant:

- ``ok``: in the reference's group; a finite rating.
- ``above`` / ``below``: a chain of arrows leads from it to the reference (``above``) or from
  the reference to it (``below``), never back: its likelihood keeps rising as it moves away,
  so its rating is reported as +inf / -inf (a variant that won every vote is one). The
  ratings of the reference's group are then fitted on the votes inside the group, which is
  the limit of the likelihood as the one-sided gaps grow.
- ``not_connected``: no chain of votes at all links it to the reference (another component
  of the comparison graph, no votes yet, or a reference without votes): rating None.
- ``not_identified``: linked, but only through one-sided results that run both ways around
  it (e.g. reference > X < Y): the data put no bound on it relative to the reference; None.

In a bootstrap resample a variant can fall into another case than in the data. Its interval
counts a resample where it is not identified as -inf for the lower bound and +inf for the
upper bound, so such resamples can only widen the interval; the bounds are order statistics
(numpy's "lower"/"higher" quantiles, never interpolated, so ±inf stay exact).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from app.arena.bootstrap import resample_clusters, resample_votes
from app.arena.vote_counts import BoolArray, Clusters, FloatArray, PairCounts, flatten

RatingStatus = Literal["ok", "above", "below", "not_connected", "not_identified"]

ELO_BASE = 1000.0
ELO_SCALE = 400.0
# Elo points per unit of natural log-strength.
_ELO_PER_NAT = ELO_SCALE / math.log(10.0)


# --- Bradley–Terry, batched ---------------------------------------------------------------


def _reachability(arrows: BoolArray) -> BoolArray:
    """reach[b, i, j]: a chain of arrows leads from i to j (or i == j). arrows: (B, n, n)."""
    n = arrows.shape[-1]
    reach = (arrows | np.eye(n, dtype=bool)).astype(np.float64)
    # Squaring doubles the chain length covered; float matmul is the fast batched path.
    for _ in range(max(0, math.ceil(math.log2(n)))):
        reach = np.minimum(reach @ reach, 1.0)
    return reach > 0


def _mm_fit(
    games: FloatArray, scores: FloatArray, reference: int, tol: float, max_iter: int
) -> tuple[FloatArray, BoolArray]:
    """Batched MM (Zermelo) iterations for Bradley–Terry strengths.

    games: (B, n, n) symmetric vote counts, zero outside each row's fitted group; scores:
    (B, n) wins plus half the ties inside the group. Returns strengths (B, n) with the
    reference at exactly 1 (and 1 for variants outside the group), and per row whether
    the score equations hold to ``tol`` (relative to each variant's votes).
    """
    strength = np.ones_like(scores)
    converged = np.zeros(len(scores), dtype=bool)
    totals = games.sum(axis=2)
    live = totals > 0
    totals = np.where(live, totals, 1.0)
    rows = np.arange(len(scores))  # the rows still iterating; the arrays below hold only them
    p = strength.copy()
    for _ in range(max_iter):
        # sum_j n_ij / (p_i + p_j): the MM denominator, and p_i times it is i's expected score.
        denom = (games / (p[:, :, None] + p[:, None, :])).sum(axis=2)
        done = (np.abs(scores - p * denom) / totals).max(axis=1) < tol
        if done.any():
            strength[rows[done]] = p[done]
            converged[rows[done]] = True
            # Dropping finished rows keeps the cost on the slow few.
            keep = ~done
            rows, games, scores, live, totals = (
                rows[keep],
                games[keep],
                scores[keep],
                live[keep],
                totals[keep],
            )
            p, denom = p[keep], denom[keep]
            if rows.size == 0:
                break
        p = np.where(live, scores / np.where(live, denom, 1.0), 1.0)
        # Pinning every step keeps the scale fixed, so the stopping rule means the same thing.
        p /= p[:, reference, None]
    strength[rows] = p
    return strength, converged


@dataclass(frozen=True)
class _BatchFit:
    log_strength: FloatArray  # (B, n); +inf/-inf for above/below, nan when not identified
    connected: BoolArray  # (B, n): any chain of votes to the reference, ignoring direction
    converged: BoolArray  # (B,)


def _fit_batch(
    wins: FloatArray,
    ties: FloatArray,
    reference: int,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> _BatchFit:
    """Fit B data sets at once: wins, ties (B, n, n) -> log-strengths (B, n), reference 0."""
    games = wins + np.swapaxes(wins, 1, 2) + ties
    reach = _reachability((wins + ties) > 0)
    up = reach[:, :, reference]  # a chain of wins/ties leads from i to the reference
    down = reach[:, reference, :]
    group = up & down
    # Only votes inside the reference's group enter the fit (see the module docstring).
    inside = group[:, :, None] & group[:, None, :]
    scores = ((wins + 0.5 * ties) * inside).sum(axis=2)
    strength, converged = _mm_fit(games * inside, scores, reference, tol, max_iter)
    log_strength = np.where(group, np.log(strength), np.nan)
    log_strength = np.where(up & ~down, np.inf, log_strength)
    log_strength = np.where(down & ~up, -np.inf, log_strength)
    connected = _reachability(games > 0)[:, :, reference]
    return _BatchFit(log_strength, connected, converged)


def to_elo(log_strength: FloatArray) -> FloatArray:
    """Natural log-strength -> Elo scale; 0 (the reference) maps to exactly 1000."""
    return ELO_BASE + _ELO_PER_NAT * log_strength


# --- The leaderboard ----------------------------------------------------------------------


@dataclass(frozen=True)
class VariantRating:
    """One variant's Bradley–Terry result on the Elo scale.

    ``rating`` is +inf/-inf for ``above``/``below`` and None when not connected or not
    identified (then ``ci_*`` and ``rank`` are None too). Intervals may have infinite ends.
    A JSON encoder must map the infinities (e.g. to null plus ``status``).
    """

    name: str
    status: RatingStatus
    rating: float | None
    ci_low: float | None
    ci_high: float | None
    rank: int | None
    games: int
    wins: int
    losses: int
    ties: int  # including both_bad
    both_bad: int
    message: str  # why the rating is not a finite number; "" when status is "ok"


@dataclass(frozen=True)
class Ranking:
    reference: str
    rounds: int
    confidence: float
    n_votes: int
    variants: tuple[VariantRating, ...]  # in the order of PairCounts.names
    messages: tuple[str, ...]  # notes on the whole table ("no votes yet", ...)

    def __getitem__(self, name: str) -> VariantRating:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)

    def by_rank(self) -> list[VariantRating]:
        """Best first; variants without a rating last, in their original order."""
        return sorted(self.variants, key=lambda v: (v.rating is None, -(v.rating or 0.0)))


def _status_message(status: RatingStatus, games: int, reference: str) -> str:
    if status == "above":
        return f"unbounded above (+inf): every vote linking it to {reference} went its way"
    if status == "below":
        return f"unbounded below (-inf): every vote linking it to {reference} went against it"
    if status == "not_connected":
        if games == 0:
            return "no votes yet"
        return f"not connected to the reference {reference}: no chain of votes links them"
    if status == "not_identified":
        return (
            f"not identified: linked to {reference} only through one-sided results, "
            "which put no bound on its rating"
        )
    return ""


def _statuses(fit: _BatchFit) -> list[RatingStatus]:
    statuses: list[RatingStatus] = []
    for value, connected in zip(fit.log_strength[0], fit.connected[0], strict=True):
        if np.isnan(value):
            statuses.append("not_identified" if connected else "not_connected")
        elif value == np.inf:
            statuses.append("above")
        elif value == -np.inf:
            statuses.append("below")
        else:
            statuses.append("ok")
    return statuses


def _intervals(boot: FloatArray, confidence: float) -> tuple[FloatArray, FloatArray]:
    """Percentile interval per column; a not-identified resample (nan) widens both ends."""
    alpha = 1.0 - confidence
    low = np.quantile(np.where(np.isnan(boot), -np.inf, boot), alpha / 2, axis=0, method="lower")
    high = np.quantile(
        np.where(np.isnan(boot), np.inf, boot), 1 - alpha / 2, axis=0, method="higher"
    )
    return low, high


def _ranks(low: Sequence[float | None], high: Sequence[float | None]) -> list[int | None]:
    ranks: list[int | None] = []
    for lo_i, hi_i in zip(low, high, strict=True):
        if lo_i is None or hi_i is None:
            ranks.append(None)
            continue
        above = sum(1 for lo_j in low if lo_j is not None and lo_j > hi_i)
        ranks.append(1 + above)
    return ranks


def fit_bradley_terry(
    counts: PairCounts,
    reference: str,
    *,
    rounds: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
    tol: float = 1e-10,
    max_iter: int = 10_000,
    clusters: Clusters | None = None,
) -> Ranking:
    """Bradley–Terry ratings (Elo scale, ``reference`` at 1000) with bootstrap intervals.

    ``rounds=0`` skips the bootstrap: each interval is then the point itself. The default
    seed makes a page show the same intervals on every reload. With ``clusters`` (the same
    votes, grouped by rater) the bootstrap resamples raters, not votes.
    """
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    ref = counts.index(reference)
    if clusters is not None and (
        clusters.names != counts.names
        or not np.array_equal(clusters.cells.sum(axis=0), flatten(counts))
    ):
        raise ValueError("clusters must hold exactly the votes of counts")
    wins = counts.wins.astype(np.float64)[None]
    ties = counts.ties.astype(np.float64)[None]
    point = _fit_batch(wins, ties, ref, tol, max_iter)
    statuses = _statuses(point)
    ratings = to_elo(point.log_strength[0])
    messages: list[str] = []
    converged = bool(point.converged.all())

    if rounds > 0 and counts.n_votes > 0:
        rng = np.random.default_rng(seed)
        resampled = (
            resample_votes(counts, rounds, rng)
            if clusters is None
            else resample_clusters(clusters, rounds, rng)
        )
        boot = _fit_batch(*resampled, ref, tol, max_iter)
        converged = converged and bool(boot.converged.all())
        low, high = _intervals(to_elo(boot.log_strength), confidence)
    else:
        low, high = ratings, ratings

    games = counts.games.sum(axis=1)
    if counts.n_votes == 0:
        messages.append("no votes yet")
    elif games[ref] == 0:
        messages.append(f"the reference {reference} has no votes yet: no rating can be placed")
    if not converged:
        # MM slows down when ratings lie far apart: say so rather than show unearned digits.
        messages.append(f"the fit stopped after {max_iter} iterations before converging")

    identified = [s not in ("not_connected", "not_identified") for s in statuses]
    lows = [float(lo) if ok else None for lo, ok in zip(low, identified, strict=True)]
    highs = [float(hi) if ok else None for hi, ok in zip(high, identified, strict=True)]
    ranks = _ranks(lows, highs)
    variants = tuple(
        VariantRating(
            name=name,
            status=statuses[i],
            rating=float(ratings[i]) if identified[i] else None,
            ci_low=lows[i],
            ci_high=highs[i],
            rank=ranks[i],
            games=int(games[i]),
            wins=int(counts.wins[i].sum()),
            losses=int(counts.wins[:, i].sum()),
            ties=int(counts.ties[i].sum()),
            both_bad=int(counts.both_bad[i].sum()),
            message=_status_message(statuses[i], int(games[i]), reference),
        )
        for i, name in enumerate(counts.names)
    )
    return Ranking(reference, rounds, confidence, counts.n_votes, variants, tuple(messages))
