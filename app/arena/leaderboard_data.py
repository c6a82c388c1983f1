"""The leaderboard as plain JSON values: one shape for the API, its CSV and the CLI.

Infinite ratings and interval ends become null beside the rating's status, so a release gate
reads what the page shows without having to parse "inf".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from app.arena.leaderboard_view import LeaderboardView


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def leaderboard_data(
    view: LeaderboardView, *, panel: str | None, preliminary_votes: int
) -> dict[str, Any]:
    """The view as plain JSON values (infinities as null plus a status): one shape for the
    API, its CSV and the CLI, so a release gate reads what the page shows."""
    return {
        "run_id": view.run_id,
        "panel": panel,
        "reference": view.reference,
        "votes_counted": view.n_votes,
        "votes_left_out": view.flagged_votes,
        "votes_left_out_by_anomaly_flags": view.anomaly_votes,
        "votes_over_network_cap": view.capped_votes,
        "bootstrap_rounds": view.ranking.rounds,
        "confidence": view.ranking.confidence,
        "version": view.version,
        "rows": [
            {
                "name": row.name,
                "reference": row.reference,
                "rank": row.rating.rank,
                "rating": _finite(row.rating.rating),
                "rating_status": row.rating.status,
                "ci_low": _finite(row.rating.ci_low),
                "ci_high": _finite(row.rating.ci_high),
                "elo": row.elo,
                "votes": row.votes,
                "wins": row.rating.wins,
                "ties": row.rating.ties,
                "losses": row.rating.losses,
                "both_bad": row.rating.both_bad,
                "preliminary": row.votes < preliminary_votes,
            }
            for row in view.rows
        ],
        "verdicts": [dataclasses.asdict(verdict) for verdict in view.verdicts],
    }
