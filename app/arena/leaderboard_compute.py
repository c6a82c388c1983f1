"""Compute a run's leaderboard view from its counted votes: every ranking view of them.

On the counted votes (app/arena/counted_votes.py; DESIGN.md "Ranking conventions"):
Bradley–Terry ratings on the Elo scale with bootstrap intervals that resample raters (one
rater's votes are not independent) and ranks, online Elo (K=4), votes per variant, the
win-rate matrix, position bias, one Bradley–Terry table per prompt category, and each
optimized variant's verdict against its own reference.

The bootstrap is seeded from the run and panel, not from the key: a page shows the same
intervals on every reload, and one more vote moves them a little instead of redrawing every
resample. This is the costly part; app/arena/leaderboard_cache.py calls it once per change.
"""

from __future__ import annotations

import hashlib

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.arena.bradley_terry import fit_bradley_terry
from app.arena.counted_votes import (
    board_scope,
    run_reference,
    screen_anomalies,
    within_network_cap,
)
from app.arena.leaderboard_view import (
    CategoryBoard,
    LeaderboardKey,
    LeaderboardRow,
    LeaderboardView,
)
from app.arena.online_elo import online_elo_coded
from app.arena.verdicts import verdict
from app.arena.vote_counts import clusters_coded, count_coded
from app.arena.vote_table import vote_table
from app.arena.win_rates import position_bias_of, win_rates
from app.models import Run, Variant

ROUNDS = 1000
# One fit per category: fewer rounds keep a page with a dozen categories fast; their
# intervals are coarser (a 95% interval from 200 resamples), which the page says.
CATEGORY_ROUNDS = 200
ELO_K = 4.0
VERDICT_MARGIN = 0.05


def _seed(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def compute_view(session: Session, run: Run, key: LeaderboardKey) -> LeaderboardView:
    """The leaderboard of the key's votes, computed now (no cache)."""
    variants = list(
        session.scalars(select(Variant).where(Variant.run_id == run.id).order_by(Variant.position))
    )
    by_id = {v.id: v.name for v in variants}
    names = [v.name for v in variants]
    # Each variant's own reference (its `base`), in config order.
    own_reference = {v.name: by_id[v.reference_id] for v in variants if v.reference_id in by_id}
    reference = run_reference(variants).name
    table = vote_table(session, run.id, key.max_vote_id)
    in_scope, flagged = board_scope(session, key, table)
    screened, flags = screen_anomalies(session, run, names, reference, table, in_scope)
    counted, capped = within_network_cap(table, screened)
    left, right, outcome = table.left[counted], table.right[counted], table.outcome[counted]

    # 1. Bradley–Terry on all counted votes, with intervals that resample raters.
    counts = count_coded(names, left, right, outcome)
    ranking = fit_bradley_terry(
        counts,
        reference,
        rounds=key.rounds,
        seed=_seed(run.id, key.panel_id),
        clusters=clusters_coded(names, table.rater[counted], left, right, outcome),
    )
    # 2. The secondary views.
    elo = online_elo_coded(names, left, right, outcome, k=ELO_K)
    rows = tuple(
        LeaderboardRow(
            name=rating.name,
            reference=own_reference.get(rating.name),
            rating=rating,
            elo=elo[rating.name],
        )
        for rating in ranking.by_rank()
    )
    # 3. One fit per prompt category, in prompt order.
    category_rounds = min(key.rounds, CATEGORY_ROUNDS)
    category = table.category[counted]
    per_category = np.bincount(category, minlength=len(table.categories))
    categories = tuple(
        CategoryBoard(
            category=name,
            n_votes=int(per_category[code]),
            ranking=fit_bradley_terry(
                count_coded(
                    names,
                    left[category == code],
                    right[category == code],
                    outcome[category == code],
                ),
                reference,
                rounds=category_rounds,
                seed=_seed(run.id, key.panel_id, name),
            ),
        )
        for code, name in enumerate(table.categories)
        if per_category[code]
    )
    # 4. Each optimized variant against its own reference.
    verdicts = tuple(
        verdict(counts, name, base, margin=VERDICT_MARGIN) for name, base in own_reference.items()
    )
    return LeaderboardView(
        key=key,
        run_id=run.id,
        panel_id=key.panel_id,
        reference=reference,
        n_votes=len(counted),
        flagged_votes=flagged,
        anomaly_votes=len(in_scope) - len(screened),
        capped_votes=capped,
        flags=flags,
        ranking=ranking,
        rows=rows,
        elo=elo,
        win_rates=win_rates(counts),
        position_bias=position_bias_of(int((outcome == 0).sum()), int((outcome == 1).sum())),
        categories=categories,
        verdicts=verdicts,
        category_rounds=category_rounds,
    )
