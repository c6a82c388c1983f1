"""Do the leaderboard's 95% intervals cover when raters cast many votes each?

Votes are simulated among three variants (ref, a, b; log-strengths 0, 0.3, -0.4) by raters
who each have a taste of their own: a rater's log-strengths stray from the population's by
N(0, 1.0) for `a` and N(0, 0.6) for `b`, on every vote they cast. So one rater's votes are
correlated, as real raters' are. The truth an interval should cover is what the rating
converges to with ever more raters: Bradley–Terry fitted to the population's win
probabilities (each averaged over a million tastes), pairs equally often.

For each shape (raters × votes each), `--replications` boards are simulated and fitted with
`--rounds` bootstrap rounds twice: resampling raters (what the leaderboard does since issue
10) and resampling single votes (what it did before). Prints the share of 95% intervals for
`a` that cover the truth, with its Monte-Carlo standard error.

    python benchmarks/rater_clusters.py [--replications 2000] [--rounds 200]
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform

import numpy as np

from app.arena.bradley_terry import fit_bradley_terry
from app.arena.vote_counts import PairCounts, count_clusters, count_votes

NAMES = ("ref", "a", "b")
PAIRS = ((0, 1), (0, 2), (1, 2))
THETA = np.array([0.0, 0.3, -0.4])
TASTE = np.array([0.0, 1.0, 0.6])
SHAPES = ((60, 20), (200, 6), (20, 60), (1200, 1))
GAMES = 10**9


def population_rating_of_a() -> float:
    """What the ratings converge to with ever more raters, pairs equally often: Bradley–Terry
    fitted to the population's win probabilities (each averaged over a million tastes),
    as counts of a billion games per pair."""
    rng = np.random.default_rng(123)
    strengths = THETA + rng.normal(size=(1_000_000, 3)) * TASTE
    wins = np.zeros((3, 3), dtype=np.int64)
    for i, j in PAIRS:
        p = float(np.mean(1 / (1 + np.exp(strengths[:, j] - strengths[:, i]))))
        wins[i, j], wins[j, i] = round(GAMES * p), round(GAMES * (1 - p))
    none = np.zeros_like(wins)
    rating = fit_bradley_terry(PairCounts(NAMES, wins, none, none), "ref", rounds=0)["a"].rating
    assert rating is not None
    return rating


def simulate(rng: np.random.Generator, raters: int, each: int) -> list[tuple[int, str, str, str]]:
    """`each` votes from each of `raters` raters, pairs equally often, each rater with a
    taste of their own (THETA strayed by TASTE): (rater, left, right, outcome)."""
    votes = []
    for rater in range(raters):
        strength = THETA + rng.normal(size=3) * TASTE
        for k in rng.integers(0, 3, each):
            i, j = PAIRS[k]
            p_left = 1 / (1 + math.exp(strength[j] - strength[i]))
            votes.append((rater, NAMES[i], NAMES[j], "left" if rng.random() < p_left else "right"))
    return votes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    truth = population_rating_of_a()
    rng = np.random.default_rng(0)
    print(f"Coverage of 95% intervals for `a` (truth {truth:.1f}), {args.replications} boards")
    print(
        f"(`python benchmarks/rater_clusters.py`, {datetime.date.today()}, "
        f"{platform.machine()}, {args.rounds} bootstrap rounds)\n"
    )
    print("| raters × votes each | resampling raters | resampling votes |\n|---|---:|---:|")
    se = math.sqrt(0.95 * 0.05 / args.replications)
    for raters, each in SHAPES:
        by_rater = by_vote = 0
        for rep in range(args.replications):
            votes = simulate(rng, raters, each)
            counts = count_votes(NAMES, [v[1:] for v in votes])
            clusters = count_clusters(NAMES, votes)
            fits = (
                fit_bradley_terry(counts, "ref", rounds=args.rounds, seed=rep, clusters=clusters),
                fit_bradley_terry(counts, "ref", rounds=args.rounds, seed=rep),
            )
            low_r, high_r = fits[0]["a"].ci_low, fits[0]["a"].ci_high
            low_v, high_v = fits[1]["a"].ci_low, fits[1]["a"].ci_high
            by_rater += low_r is not None and high_r is not None and low_r <= truth <= high_r
            by_vote += low_v is not None and high_v is not None and low_v <= truth <= high_v
        n = args.replications
        print(f"| {raters} × {each} | {by_rater / n:.1%} | {by_vote / n:.1%} |")
    print(f"\nMonte-Carlo standard error at 95%: ±{se:.1%}.")


if __name__ == "__main__":
    main()
