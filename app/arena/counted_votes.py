"""Which of a run's votes a leaderboard counts, and the run's reference.

Counted votes: the run's votes that are not attention checks and not from flagged raters
(optionally one panel's only); then neither from a rater or network that the anomaly tests
flag (app/arena/integrity.py, against a first fit of those votes, unless an admin overruled
the flag), nor over a network's cap of anonymous votes. Each kind left out is counted, so the
page can say how many.

The run's reference, pinned at 1000: the variant that the other variants name as their
reference (`base`) most often; a tie goes to the first in config order, and a run where no
variant names one uses its first variant. In the FLUX benchmark that is [dev] (Turbo LoRA,
compiled and quantized versions all point at it).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.arena.bradley_terry import Ranking, fit_bradley_terry
from app.arena.integrity import Flag, find_anomalies_coded
from app.arena.leaderboard_view import FlagState, LeaderboardKey
from app.arena.vote_counts import IntArray, count_coded
from app.arena.vote_table import VoteTable
from app.models import IntegrityReview, Rater, Run, Variant

# Anonymous votes counted per network (app/arena/network.py) and run; later ones are left
# out of the ranking (imgsys down-weights repeat voters by IP; a cap is the same idea,
# simpler to read). Panel votes are never capped: their raters were invited.
ANONYMOUS_VOTES_PER_NETWORK = 100


def run_reference(variants: Sequence[Variant]) -> Variant:
    """The variant named as `reference` most often; ties → first in config order; if none,
    the first variant. `variants` in config order."""
    named = Counter(v.reference_id for v in variants if v.reference_id is not None)
    if not named:
        return variants[0]
    most = max(named.values())
    return next(v for v in variants if named.get(v.id) == most)


def within_network_cap(table: VoteTable, idx: IntArray) -> tuple[IntArray, int]:
    """The votes `idx` (indices into the table, in vote order) within their network's cap
    of anonymous votes (ANONYMOUS_VOTES_PER_NETWORK, the first ones cast), and the number
    over it."""
    network = table.network[idx]
    anonymous = np.flatnonzero(network >= 0)
    if len(anonymous) == 0:
        return idx, 0
    # Each anonymous vote's place among its network's votes: a stable sort by network keeps
    # the vote order inside each network, and the place is the distance to its group start.
    order = np.argsort(network[anonymous], kind="stable")
    grouped = network[anonymous][order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    sizes = np.diff(np.r_[starts, len(grouped)])
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(grouped)) - np.repeat(starts, sizes)
    over = np.zeros(len(idx), dtype=bool)
    over[anonymous] = place >= ANONYMOUS_VOTES_PER_NETWORK
    return idx[~over], int(over.sum())


def _log_strengths(ranking: Ranking) -> list[float]:
    """Natural log-strengths from a ranking's Elo ratings (nan where there is none)."""
    return [
        math.nan if v.rating is None else (v.rating - 1000.0) * math.log(10.0) / 400.0
        for v in ranking.variants
    ]


# Screening passes at most: each judges every subject against the consensus of the votes
# the pass before believed. Converges in two or three on every board we tried.
SCREEN_PASSES = 5


class _Excluded(NamedTuple):
    raters: IntArray  # rater codes
    networks: IntArray  # network codes

    def mask(self, table: VoteTable, idx: IntArray) -> NDArray[np.bool_]:
        """Which of the votes `idx` an excluded rater or network cast."""
        return np.isin(table.rater[idx], self.raters) | np.isin(table.network[idx], self.networks)


def _excluded(table: VoteTable, subjects: set[tuple[str, str]]) -> _Excluded:
    raters = [table.rater_codes[s] for kind, s in subjects if kind == "rater"]
    networks = [table.network_codes[s] for kind, s in subjects if kind == "network"]
    return _Excluded(np.asarray(raters, dtype=np.int64), np.asarray(networks, dtype=np.int64))


def screen_anomalies(
    session: Session,
    run: Run,
    names: Sequence[str],
    reference: str,
    table: VoteTable,
    idx: IntArray,
) -> tuple[IntArray, tuple[FlagState, ...]]:
    """The votes `idx` left after the anomaly flags (app/arena/integrity.py) that no admin
    overruled; the flags, each with what became of it.

    The consensus a subject is judged against is a fit on the votes believed so far (within
    the network caps): first all of them, then those of the subjects not flagged by the pass
    before, until the flags stop changing. Many bots voting alike pull a one-pass consensus
    towards themselves and hide each other; the second pass no longer counts the ones found.
    """
    overruled = set(
        session.execute(
            select(IntegrityReview.kind, IntegrityReview.subject).where(
                IntegrityReview.run_id == run.id
            )
        ).all()
    )
    decisive = idx[table.outcome[idx] < 2]
    excluded: set[tuple[str, str]] = set()
    flags: list[Flag] = []
    for _ in range(SCREEN_PASSES):
        believed, _ = within_network_cap(table, idx[~_excluded(table, excluded).mask(table, idx)])
        consensus = fit_bradley_terry(
            count_coded(
                names, table.left[believed], table.right[believed], table.outcome[believed]
            ),
            reference,
            rounds=0,
        )
        flags = find_anomalies_coded(
            names,
            left=table.left[decisive].astype(np.int64),
            right=table.right[decisive].astype(np.int64),
            left_won=table.outcome[decisive] == 0,
            rater=table.rater[decisive].astype(np.int64),
            network=table.network[decisive].astype(np.int64),
            rater_names=table.raters,
            network_names=table.networks,
            log_strength=_log_strengths(consensus),
        )
        now = {(str(f.kind), f.subject) for f in flags} - overruled
        if now == excluded:
            break
        excluded = now
    out = _excluded(table, excluded)
    by_rater = np.isin(table.rater[idx], out.raters)
    by_network = ~by_rater & np.isin(table.network[idx], out.networks)
    left_out = Counter(
        [("rater", table.raters[c]) for c in table.rater[idx][by_rater].tolist()]
        + [("network", table.networks[c]) for c in table.network[idx][by_network].tolist()]
    )
    states = tuple(
        FlagState(
            flag=f,
            overruled=(f.kind, f.subject) in overruled,
            votes_left_out=left_out[(f.kind, f.subject)],
        )
        for f in flags
    )
    return idx[~(by_rater | by_network)], states


def board_scope(session: Session, key: LeaderboardKey, table: VoteTable) -> tuple[IntArray, int]:
    """The votes the board is about (the key's, its panel's), minus those of raters flagged
    by attention checks or an admin; and how many of those there were."""
    scope = table.upto(key.max_vote_id)
    if key.panel_id is not None:
        scope &= table.panel == key.panel_id
    elif key.arena == "panels":  # a panel study: anonymous votes never count
        scope &= table.panel != 0
    flagged_ids = session.scalars(select(Rater.id).where(Rater.flagged.is_(True))).all()
    codes = [table.rater_codes[r] for r in flagged_ids if r in table.rater_codes]
    by_flagged = scope & np.isin(table.rater, np.asarray(codes, dtype=np.int64))
    return np.flatnonzero(scope & ~by_flagged), int(by_flagged.sum())
