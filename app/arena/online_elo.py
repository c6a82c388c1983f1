"""Online Elo over the votes in the order they were cast: a secondary view only.

Unlike Bradley–Terry it depends on the order of the votes, so the leaderboard shows it beside
the fitted ratings, never instead of them (DESIGN.md: online Elo, K=4, as a secondary view).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from app.arena.bradley_terry import ELO_BASE, ELO_SCALE
from app.arena.vote_counts import code_votes


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
    coded = code_votes(names, votes, allow_same=True)
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
