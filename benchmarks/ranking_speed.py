"""How long does a leaderboard take: Bradley–Terry plus a 1000-round bootstrap, 100k votes?

Votes among 10 variants are simulated from known ratings (ties taken half from each side,
as the "a tie counts half" likelihood assumes). Timed, each as the median of --repeats:

1. ``count_votes``: 100,000 (left, right, outcome) tuples into pair counts.
2. ``fit_bradley_terry`` with ``rounds=1000``: the point fit and all 1000 resamples fitted at
   once by batched MM iterations. Goal: under 0.5 s.
3. The same with the votes grouped by ``--raters`` raters (the leaderboard's case since
   issue 10): ``count_clusters``, then ``fit_bradley_terry(..., clusters=...)``, whose
   bootstrap resamples raters. Goal: under 0.5 s too.
4. ``find_anomalies``: one screening pass of the anomaly tests over every rater and network
   (the leaderboard runs two or three).
5. For comparison, the naive way: resample, then one ``scipy.optimize.minimize`` (BFGS with
   the analytic gradient) per round, 20 rounds, extrapolated to 1000. The same 20 resamples
   are also fitted by ``fit_bradley_terry(..., rounds=0)`` to check both find the same
   maximum.

    python benchmarks/ranking_speed.py [--votes 100000] [--variants 10] [--rounds 1000]
                                       [--raters 2000]

Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy
from numpy.typing import NDArray
from scipy.optimize import minimize

from app.arena.bradley_terry import fit_bradley_terry
from app.arena.integrity import CastVote, find_anomalies
from app.arena.vote_counts import PairCounts, Vote, count_clusters, count_votes

NAIVE_ROUNDS = 20


def simulate(
    n_variants: int, n_votes: int, rng: np.random.Generator
) -> tuple[list[str], list[Vote]]:
    names = ["ref"] + [f"v{i}" for i in range(1, n_variants)]
    elo = np.concatenate([[1000.0], rng.normal(1000.0, 150.0, n_variants - 1)])
    strength = 10 ** ((elo - 1000.0) / 400.0)
    left = rng.integers(0, n_variants, n_votes)
    right = (left + rng.integers(1, n_variants, n_votes)) % n_variants
    p_left = strength[left] / (strength[left] + strength[right])
    tie = 0.4 * np.minimum(p_left, 1 - p_left)
    u = rng.random(n_votes)
    outcome = np.where(u < p_left - tie / 2, "left", np.where(u < 1 - tie, "right", "tie"))
    votes = [Vote(names[i], names[j], str(o)) for i, j, o in zip(left, right, outcome, strict=True)]
    return names, votes


def resample(counts: PairCounts, rng: np.random.Generator) -> PairCounts:
    """One multinomial bootstrap draw of the vote counts, as the naive loop makes it."""
    n = len(counts.names)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    off = ~np.eye(n, dtype=bool)
    cells = np.concatenate([counts.wins[off], counts.ties[upper]])
    draw = rng.multinomial(int(cells.sum()), cells / cells.sum())
    wins = np.zeros((n, n), dtype=np.int64)
    wins[off] = draw[: off.sum()]
    ties = np.zeros((n, n), dtype=np.int64)
    ties[upper] = draw[off.sum() :]
    ties += ties.T
    return PairCounts(counts.names, wins, ties, np.zeros_like(ties))


def scipy_fit(counts: PairCounts, reference: int) -> NDArray[np.float64]:
    """Elo ratings by BFGS on the negative log-likelihood (ties half), reference pinned."""
    score = counts.wins + 0.5 * counts.ties
    games = score + score.T
    free = np.arange(len(counts.names)) != reference

    def nll(x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        theta = np.zeros(len(counts.names))
        theta[free] = x
        diff = theta[:, None] - theta[None, :]
        value = (score * np.logaddexp(0.0, -diff)).sum()
        grad = -(score - games / (1.0 + np.exp(-diff))).sum(axis=1)
        return float(value), grad[free]

    result = minimize(
        nll, np.zeros(int(free.sum())), jac=True, method="BFGS", options={"gtol": 1e-8}
    )
    theta = np.zeros(len(counts.names))
    theta[free] = result.x
    return 1000.0 + 400.0 * theta / math.log(10.0)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=100_000)
    parser.add_argument("--variants", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--raters", type=int, default=2000, help="who cast the votes")
    args = parser.parse_args()

    names, votes = simulate(args.variants, args.votes, np.random.default_rng(0))
    counts = count_votes(names, votes)
    count_s = median_time(lambda: count_votes(names, votes), args.repeats)
    fit_bradley_terry(counts, "ref", rounds=args.rounds)  # warm-up: first-call imports, caches
    batched_s = median_time(
        lambda: fit_bradley_terry(counts, "ref", rounds=args.rounds), args.repeats
    )

    rater_of = np.random.default_rng(2).integers(0, args.raters, len(votes))
    labelled = [(int(r), *vote) for r, vote in zip(rater_of, votes, strict=True)]
    clusters = count_clusters(names, labelled)
    cluster_count_s = median_time(lambda: count_clusters(names, labelled), args.repeats)
    clustered_s = median_time(
        lambda: fit_bradley_terry(counts, "ref", rounds=args.rounds, clusters=clusters),
        args.repeats,
    )
    point = fit_bradley_terry(counts, "ref", rounds=0)
    theta = [(v.rating - 1000.0) * math.log(10.0) / 400.0 for v in point.variants]
    index = {name: i for i, name in enumerate(names)}
    cast = [
        CastVote(index[v.left], index[v.right], v.outcome, str(r), f"net{r % 500}")
        for r, v in zip(rater_of, votes, strict=True)
    ]
    screen_s = median_time(lambda: find_anomalies(names, cast, theta), args.repeats)

    rng = np.random.default_rng(1)
    samples = [resample(counts, rng) for _ in range(NAIVE_ROUNDS)]

    def naive() -> list[NDArray[np.float64]]:
        loop_rng = np.random.default_rng(1)
        return [scipy_fit(resample(counts, loop_rng), 0) for _ in range(NAIVE_ROUNDS)]

    naive_s = median_time(naive, args.repeats) * args.rounds / NAIVE_ROUNDS
    disagreement = max(
        float(
            np.abs(
                scipy_fit(s, 0) - [v.rating for v in fit_bradley_terry(s, "ref", rounds=0).variants]
            ).max()
        )
        for s in samples
    )

    machine = platform.processor() or platform.machine()
    versions = (
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}"
    )
    rows = [
        (f"count_votes ({args.votes:,} tuples)", count_s),
        (f"fit_bradley_terry, batched MM, {args.rounds} rounds", batched_s),
        (f"count_clusters ({args.raters:,} raters)", cluster_count_s),
        (f"fit_bradley_terry, {args.rounds} rounds resampling raters", clustered_s),
        ("find_anomalies, one pass (raters and 500 networks)", screen_s),
        (
            f"naive: {NAIVE_ROUNDS} scipy BFGS fits, ×{args.rounds // NAIVE_ROUNDS} (extrapolated)",
            naive_s,
        ),
    ]
    size = f"{args.votes:,} votes, {args.variants} variants"
    print(f"Bradley–Terry + {args.rounds}-round bootstrap, {size}")
    print(f"(`python benchmarks/ranking_speed.py`, {datetime.date.today()}, {machine},")
    print(f"{os.cpu_count()} CPUs, {versions}; median of {args.repeats})\n")
    print("| step | time_s |\n|---|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.3f} |")
    verdict = "met" if max(batched_s, clustered_s) < 0.5 else "NOT met"
    print(f"\nSpeed-up: {naive_s / batched_s:.0f}×; goal < 0.5 s: {verdict}.")
    print(f"Batched MM vs scipy on {NAIVE_ROUNDS} resamples: within {disagreement:.1e} Elo.")


if __name__ == "__main__":
    main()
