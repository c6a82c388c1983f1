"""What a run's leaderboard is: its key, its rows and tables, the view the page renders.

Plain frozen dataclasses, computed by app/arena/leaderboard_compute.py and kept by
app/arena/leaderboard_cache.py (in process) and app/arena/leaderboard_snapshots.py (in the
database, pickled: a change of shape here bumps SNAPSHOT_FORMAT there). `LeaderboardKey` is
everything a view depends on, so equal keys give the same view.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from app.arena.bradley_terry import Ranking, VariantRating
from app.arena.integrity import Flag
from app.arena.verdicts import Verdict
from app.arena.win_rates import PositionBias, WinRates


class LeaderboardKey(NamedTuple):
    """Everything a leaderboard depends on; equal keys give the same leaderboard."""

    database: str
    run_id: int
    panel_id: int | None
    rounds: int
    max_vote_id: int  # the run's largest vote id: a new vote changes it
    flags_version: int  # raised by every admin decision on flags (app/arena/reviews.py)
    arena: str  # "panels": only panel raters' votes count

    @property
    def version(self) -> str:
        """A short fingerprint of the key for the page to send back (no database URL in it)."""
        return hashlib.sha256(repr(self[1:]).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LeaderboardRow:
    """One variant in the main table."""

    name: str
    reference: str | None  # the variant's own reference (its `base`), if any
    rating: VariantRating  # Bradley–Terry, Elo scale; games/wins/ties/both_bad live here
    elo: float  # online Elo, K=4, over the counted votes in the order they were cast

    @property
    def votes(self) -> int:
        return self.rating.games


@dataclass(frozen=True)
class CategoryBoard:
    """The Bradley–Terry table on one prompt category's votes (CATEGORY_ROUNDS resamples)."""

    category: str
    n_votes: int
    ranking: Ranking

    @property
    def rows(self) -> list[VariantRating]:
        """Best first; only the variants with votes in this category."""
        return [v for v in self.ranking.by_rank() if v.games]


@dataclass(frozen=True)
class WinRateCell:
    """Row variant against column variant: its share of their votes (ties half)."""

    rate: float
    games: int
    wins: int
    losses: int
    ties: int  # including both_bad


@dataclass(frozen=True)
class FlagState:
    """An anomaly flag on this board and what became of it."""

    flag: Flag
    overruled: bool  # an admin decided the votes count
    votes_left_out: int  # 0 when overruled


@dataclass(frozen=True, eq=False)
class LeaderboardView:
    key: LeaderboardKey
    run_id: int
    panel_id: int | None
    reference: str  # pinned at 1000
    n_votes: int  # counted votes
    flagged_votes: int  # votes left out because their rater is flagged
    anomaly_votes: int  # votes left out by anomaly flags (app/arena/integrity.py)
    capped_votes: int  # anonymous votes left out: over their network's cap
    flags: tuple[FlagState, ...]  # the anomaly flags, overruled ones too, strongest first
    ranking: Ranking
    rows: tuple[LeaderboardRow, ...]  # best first (Ranking.by_rank)
    elo: Mapping[str, float]
    win_rates: WinRates  # variants in config order
    position_bias: PositionBias
    categories: tuple[CategoryBoard, ...]  # in prompt order; only categories with votes
    verdicts: tuple[Verdict, ...]  # each variant with a reference, in config order
    category_rounds: int

    @property
    def version(self) -> str:
        return self.key.version

    def matrix(self) -> tuple[list[str], list[list[WinRateCell | None]]]:
        """The win-rate matrix over the variants with votes, in config order; None where two
        variants have no votes between them (and on the diagonal)."""
        w = self.win_rates
        keep = [i for i in range(len(w.names)) if w.games[i].sum() > 0]
        cells = [
            [
                WinRateCell(
                    rate=float(w.rate[i, j]),
                    games=int(w.games[i, j]),
                    wins=int(w.wins[i, j]),
                    losses=int(w.wins[j, i]),
                    ties=int(w.ties[i, j]),
                )
                if w.games[i, j] > 0
                else None
                for j in keep
            ]
            for i in keep
        ]
        return [w.names[i] for i in keep], cells
