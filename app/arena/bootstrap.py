"""Bootstrap resamples of the votes, for Bradley–Terry's intervals (DESIGN.md, "Ranking
conventions").

Each resample is a whole new set of vote counts, drawn at once for all rounds as (rounds,
n, n) wins and ties, so that the fit can take every resample in one batch. Without raters a
multinomial bootstrap of the vote counts; with the votes grouped by rater (`Clusters`) a
cluster bootstrap, since one rater's votes are not independent of each other.
"""

from __future__ import annotations

import numpy as np

from app.arena.vote_counts import Clusters, FloatArray, PairCounts, flatten, unflatten


def resample_votes(
    counts: PairCounts, rounds: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Multinomial bootstrap: ``rounds`` draws of n_votes votes from the observed cells."""
    cells = flatten(counts)
    total = int(cells.sum())
    used = np.flatnonzero(cells)
    draws = rng.multinomial(total, cells[used] / total, size=rounds)
    flat = np.zeros((rounds, cells.size))
    flat[:, used] = draws
    return unflatten(flat, len(counts.names))


CLUSTER_CHUNK = 50


def resample_clusters(
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
    return unflatten(flat, len(clusters.names))
