"""Rank variants from pairwise preference votes: Bradley–Terry, bootstrap CIs, Elo, verdicts.

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
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from statistics import NormalDist
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

Outcome = Literal["left", "right", "tie", "both_bad"]
OUTCOMES: tuple[str, ...] = ("left", "right", "tie", "both_bad")
RatingStatus = Literal["ok", "above", "below", "not_connected", "not_identified"]
VerdictLabel = Literal["better", "worse", "indistinguishable", "undecided"]

ELO_BASE = 1000.0
ELO_SCALE = 400.0
# Elo points per unit of natural log-strength.
_ELO_PER_NAT = ELO_SCALE / math.log(10.0)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


class Vote(NamedTuple):
    """One vote as the arena records it. A plain (left, right, outcome) tuple works too."""

    left: str
    right: str
    outcome: str


@dataclass(frozen=True, eq=False)
class PairCounts:
    """Vote counts between every pair of variants.

    ``wins[i, j]``: votes where i beat j. ``ties[i, j]`` (symmetric): votes between i and j
    that were "tie" or "both_bad"; ``both_bad`` (symmetric) is the "both_bad" part of
    ``ties``, kept apart only for display since the fit treats it as a tie.
    """

    names: tuple[str, ...]
    wins: IntArray
    ties: IntArray
    both_bad: IntArray

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(set(self.names)) != n:
            raise ValueError(f"variant names must be unique: {list(self.names)}")
        for label, matrix in (("wins", self.wins), ("ties", self.ties)):
            if matrix.shape != (n, n):
                raise ValueError(f"{label} must be {n}x{n}, got {matrix.shape}")
            if (matrix < 0).any() or np.diag(matrix).any():
                raise ValueError(f"{label} must be non-negative with a zero diagonal")
        if self.both_bad.shape != (n, n) or (self.both_bad > self.ties).any():
            raise ValueError("both_bad must be a part of ties")
        if not (
            np.array_equal(self.ties, self.ties.T)
            and np.array_equal(self.both_bad, self.both_bad.T)
        ):
            raise ValueError("ties and both_bad must be symmetric")

    @property
    def games(self) -> IntArray:
        """Votes between i and j, whatever the outcome."""
        return self.wins + self.wins.T + self.ties

    @property
    def n_votes(self) -> int:
        # Each tie sits in both triangles of the symmetric matrix.
        return int(self.wins.sum() + np.triu(self.ties).sum())

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown variant {name!r}; known: {list(self.names)}") from None


def _code_votes(
    names: Sequence[str], votes: Iterable[tuple[str, str, str]], *, allow_same: bool = False
) -> tuple[IntArray, IntArray, IntArray]:
    """(left, right, outcome) votes as arrays: variant indices into `names` and outcome
    codes into OUTCOMES. Raises ValueError for an unknown variant or outcome, and for a
    variant compared with itself unless `allow_same`."""
    index = {name: i for i, name in enumerate(names)}
    left, right, outcome = [], [], []
    for a, b, result in votes:
        if a not in index or b not in index:
            raise ValueError(f"vote ({a!r}, {b!r}) names a variant not in {list(names)}")
        if a == b and not allow_same:
            raise ValueError(f"vote compares {a!r} with itself")
        if result not in OUTCOMES:
            raise ValueError(f"unknown outcome {result!r}; expected one of {list(OUTCOMES)}")
        left.append(index[a])
        right.append(index[b])
        outcome.append(OUTCOMES.index(result))
    as_array = partial(np.array, dtype=np.int64)
    return as_array(left), as_array(right), as_array(outcome)


def count_votes(names: Sequence[str], votes: Iterable[tuple[str, str, str]]) -> PairCounts:
    """Tally (left, right, outcome) votes; outcome is "left", "right", "tie" or "both_bad"."""
    return count_coded(names, *_code_votes(names, votes))


def count_coded(
    names: Sequence[str],
    left: NDArray[np.integer],
    right: NDArray[np.integer],
    outcome: NDArray[np.integer],
) -> PairCounts:
    """count_votes on votes as arrays: variant indices into `names`, and outcome codes
    indexing OUTCOMES ("left", "right", "tie", "both_bad"). One np.bincount per matrix."""
    n = len(names)
    rows_left: IntArray = left.astype(np.int64)
    rows_right: IntArray = right.astype(np.int64)

    def tally(mask: NDArray[np.bool_], rows: IntArray, cols: IntArray) -> IntArray:
        return np.bincount(rows[mask] * n + cols[mask], minlength=n * n).reshape(n, n)

    wins = tally(outcome == 0, rows_left, rows_right) + tally(outcome == 1, rows_right, rows_left)
    ties = tally(outcome >= 2, rows_left, rows_right)
    both_bad = tally(outcome == 3, rows_left, rows_right)
    return PairCounts(tuple(names), wins, ties + ties.T, both_bad + both_bad.T)


def clusters_coded(
    names: Sequence[str],
    cluster: NDArray[np.integer],
    left: NDArray[np.integer],
    right: NDArray[np.integer],
    outcome: NDArray[np.integer],
) -> Clusters:
    """count_clusters on votes as arrays (cluster codes, as in count_coded): only clusters
    with votes are kept."""
    n = len(names)
    win, tie = _cell_index(n)
    i: IntArray = left.astype(np.int64)
    j: IntArray = right.astype(np.int64)
    cell = np.where(outcome == 0, win[i, j], np.where(outcome == 1, win[j, i], tie[i, j]))
    n_cells = n * (n - 1) + n * (n - 1) // 2
    used, row = np.unique(cluster, return_inverse=True)
    cells = np.bincount(row * n_cells + cell, minlength=len(used) * n_cells)
    return Clusters(tuple(names), cells.reshape(len(used), n_cells).astype(np.int64))


def _cell_index(n: int) -> tuple[IntArray, IntArray]:
    """Where a vote lands in the flat cell vector (_flatten): `win[i, j]` for "i beat j"
    (the off-diagonal cells, row-major), `tie[i, j]` for a tie between i and j (the upper
    triangle, after them)."""
    off = ~np.eye(n, dtype=bool)
    win = np.full((n, n), -1, dtype=np.int64)
    win[off] = np.arange(int(off.sum()))
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    tie = np.full((n, n), -1, dtype=np.int64)
    tie[upper] = int(off.sum()) + np.arange(int(upper.sum()))
    tie = np.maximum(tie, tie.T)
    return win, tie


def _flatten(counts: PairCounts) -> FloatArray:
    n = len(counts.names)
    off = ~np.eye(n, dtype=bool)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    return np.concatenate([counts.wins[off], counts.ties[upper]]).astype(np.float64)


def _unflatten(flat: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    """(B, cells) -> wins, ties (B, n, n), ties symmetric."""
    off = ~np.eye(n, dtype=bool)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    n_off = int(off.sum())
    rounds = len(flat)
    wins = np.zeros((rounds, n, n))
    wins[:, off] = flat[:, :n_off]
    ties = np.zeros((rounds, n, n))
    ties[:, upper] = flat[:, n_off:]
    ties += np.swapaxes(ties, 1, 2)
    return wins, ties


@dataclass(frozen=True, eq=False)
class Clusters:
    """The votes grouped by who cast them: ``cells[r]`` is cluster r's (a rater's) votes as
    counts over the cells of the flat vote vector. Given to fit_bradley_terry, the bootstrap
    resamples clusters instead of single votes: one rater's votes are not independent of
    each other (a taste, a habit, a misunderstanding), and resampling them one by one makes
    the intervals too narrow when raters cast many votes each."""

    names: tuple[str, ...]
    cells: IntArray  # (clusters, cells)

    @property
    def n_clusters(self) -> int:
        return len(self.cells)


def count_clusters(
    names: Sequence[str], votes: Iterable[tuple[Hashable, str, str, str]]
) -> Clusters:
    """Tally (cluster label, left, right, outcome) votes per cluster; see count_votes."""
    labelled = list(votes)
    codes: dict[Hashable, int] = {}
    cluster = np.array([codes.setdefault(v[0], len(codes)) for v in labelled], dtype=np.int64)
    coded = _code_votes(names, [v[1:] for v in labelled])
    return clusters_coded(names, cluster, *coded)


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


def _resample(
    counts: PairCounts, rounds: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Multinomial bootstrap: ``rounds`` draws of n_votes votes from the observed cells."""
    cells = _flatten(counts)
    total = int(cells.sum())
    used = np.flatnonzero(cells)
    draws = rng.multinomial(total, cells[used] / total, size=rounds)
    flat = np.zeros((rounds, cells.size))
    flat[:, used] = draws
    return _unflatten(flat, len(counts.names))


CLUSTER_CHUNK = 50


def _resample_clusters(
    clusters: Clusters, rounds: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Cluster bootstrap: ``rounds`` draws of as many clusters as there are, with
    replacement, each bringing all its votes. Clusters with the same votes (every rater who
    cast one "left" between the same pair, say) are drawn as one kind: the number drawn of
    each kind is multinomial with the kinds' shares, exactly as if drawn one by one, at a
    cost that grows with the kinds, not the raters."""
    kinds, sizes = np.unique(clusters.cells, axis=0, return_counts=True)
    total = int(sizes.sum())
    weights = kinds.astype(np.float64)
    flat = np.empty((rounds, kinds.shape[1]))
    # In chunks of rounds: with 20,000 kinds of rater, all 1000 rounds' draws at once held
    # 320 MB (int64 draws and their float copy); a chunk holds a few.
    for start in range(0, rounds, CLUSTER_CHUNK):
        stop = min(rounds, start + CLUSTER_CHUNK)
        draws = rng.multinomial(total, sizes / total, size=stop - start)
        flat[start:stop] = draws.astype(np.float64) @ weights
    return _unflatten(flat, len(clusters.names))


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
        or not np.array_equal(clusters.cells.sum(axis=0), _flatten(counts))
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
            _resample(counts, rounds, rng)
            if clusters is None
            else _resample_clusters(clusters, rounds, rng)
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


# --- Win rates ----------------------------------------------------------------------------


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


# --- Online Elo ---------------------------------------------------------------------------


def online_elo(
    names: Sequence[str],
    votes: Iterable[tuple[str, str, str]],
    *,
    k: float = 4.0,
    scale: float = ELO_SCALE,
    base: float = ELO_BASE,
) -> dict[str, float]:
    """Sequential Elo over votes in time order; ties and "both_bad" score half.

    A secondary view only: unlike Bradley–Terry it depends on the order of the votes.
    """
    coded = _code_votes(names, votes, allow_same=True)
    return online_elo_coded(names, *coded, k=k, scale=scale, base=base)


def online_elo_coded(
    names: Sequence[str],
    left: NDArray[np.integer],
    right: NDArray[np.integer],
    outcome: NDArray[np.integer],
    *,
    k: float = 4.0,
    scale: float = ELO_SCALE,
    base: float = ELO_BASE,
) -> dict[str, float]:
    """online_elo on votes as arrays (see count_coded); online_elo checks and codes its
    votes, then calls this. Sequential by nature: a plain loop over Python ints (a million
    votes in well under a second)."""
    rating = [base] * len(names)
    score_of = (1.0, 0.0, 0.5, 0.5)  # left, right, tie, both_bad: ties score half
    for i, j, o in zip(left.tolist(), right.tolist(), outcome.tolist(), strict=True):
        expected = 1.0 / (1.0 + 10.0 ** ((rating[j] - rating[i]) / scale))
        # Both updates use the ratings from before this vote: the zero-sum Elo step.
        delta = k * (score_of[o] - expected)
        rating[i] += delta
        rating[j] -= delta
    return dict(zip(names, rating, strict=True))


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


# --- Verdict against the reference --------------------------------------------------------


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
