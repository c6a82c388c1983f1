"""A run's leaderboard: which votes count, the run's reference, and every ranking view of them.

Counted votes: the run's votes that are not attention checks and not from flagged raters
(optionally one panel's only); then neither from a rater or network that the anomaly tests
flag (app/arena/integrity.py, against a first fit of those votes, unless an admin overruled
the flag), nor over a network's cap of anonymous votes. Each kind left out is counted, so the
page can say how many. On the counted votes (app.arena.ranking, DESIGN.md "Ranking
conventions"): Bradley–Terry ratings on the Elo scale with bootstrap intervals that resample
raters (one rater's votes are not independent) and ranks, online Elo (K=4),
votes per variant, the win-rate matrix, position bias, one Bradley–Terry table per prompt
category, and each optimized variant's verdict against its own reference.

The run's reference, pinned at 1000: the variant that the other variants name as their
reference (`base`) most often; a tie goes to the first in config order, and a run where no
variant names one uses its first variant. In the FLUX benchmark that is [dev] (Turbo LoRA,
compiled and quantized versions all point at it).

The bootstrap is the costly part, so a result is kept in a small in-process LRU keyed by what
changes it (`LeaderboardKey`): a new vote changes the run's largest vote id, an admin's
decision on flags the flags version. The bootstrap is seeded from the run and panel, not from
the key: a page shows the same intervals on every reload, and one more vote moves them a
little instead of redrawing every resample.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import pickle
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.arena.integrity import Flag, find_anomalies_coded
from app.arena.ranking import (
    IntArray,
    PositionBias,
    Ranking,
    VariantRating,
    Verdict,
    WinRates,
    clusters_coded,
    count_coded,
    fit_bradley_terry,
    online_elo_coded,
    position_bias_of,
    verdict,
    win_rates,
)
from app.arena.reviews import version as flags_version
from app.arena.vote_table import VoteTable, vote_table
from app.memory import release_freed_memory
from app.models import IntegrityReview, LeaderboardSnapshot, Rater, Run, Variant, Vote

log = logging.getLogger(__name__)

ROUNDS = 1000
# One fit per category: fewer rounds keep a page with a dozen categories fast; their
# intervals are coarser (a 95% interval from 200 resamples), which the page says.
CATEGORY_ROUNDS = 200
ELO_K = 4.0
VERDICT_MARGIN = 0.05
# Anonymous votes counted per network (app/arena/network.py) and run; later ones are left
# out of the ranking (imgsys down-weights repeat voters by IP; a cap is the same idea,
# simpler to read). Panel votes are never capped: their raters were invited.
ANONYMOUS_VOTES_PER_NETWORK = 100
CACHE_SIZE = 32


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


# --- which votes count --------------------------------------------------------------------


def run_reference(variants: Sequence[Variant]) -> Variant:
    """The variant named as `reference` most often; ties → first in config order; if none,
    the first variant. `variants` in config order."""
    named = Counter(v.reference_id for v in variants if v.reference_id is not None)
    if not named:
        return variants[0]
    most = max(named.values())
    return next(v for v in variants if named.get(v.id) == most)


def leaderboard_key(
    session: Session, run: Run, *, panel_id: int | None = None, rounds: int = ROUNDS
) -> LeaderboardKey:
    """Two index probes, whatever the votes: cheap enough for every poll of the live page
    (a vote raises the run's largest vote id; an admin's decision the flags version)."""
    max_id = select(func.coalesce(func.max(Vote.id), 0)).where(Vote.run_id == run.id)
    n_max = session.scalar(max_id) or 0
    return LeaderboardKey(
        session.get_bind().engine.url.render_as_string(hide_password=False),
        run.id,
        panel_id,
        rounds,
        int(n_max),
        flags_version(session),
        run.arena,
    )


def _cap(table: VoteTable, idx: IntArray) -> tuple[IntArray, int]:
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


def _screen(
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
        believed, _ = _cap(table, idx[~_excluded(table, excluded).mask(table, idx)])
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


# --- the computation ----------------------------------------------------------------------


def _seed(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


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


def _compute(session: Session, run: Run, key: LeaderboardKey) -> LeaderboardView:
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
    screened, flags = _screen(session, run, names, reference, table, in_scope)
    counted, capped = _cap(table, screened)
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


# The views by key (LRU), the newest view of each board (a run, a panel, a rounds count),
# the keys being computed and the boards being refreshed: one computation per change set,
# however many pages, polls and dashboards ask at once (DESIGN.md, rule 10).
_cache: OrderedDict[LeaderboardKey, LeaderboardView] = OrderedDict()
_newest: dict[tuple[object, ...], LeaderboardView] = {}
_flights: dict[LeaderboardKey, threading.Event] = {}
_refreshing: set[tuple[object, ...]] = set()
_cache_lock = threading.Lock()
# A follower gives up waiting for a leader after this long and computes itself.
FLIGHT_WAIT_S = 120.0


def _board(key: LeaderboardKey) -> tuple[object, ...]:
    return tuple(key[:4])  # database, run, panel, rounds: the same table over time


def cache_clear() -> None:
    with _cache_lock:
        _cache.clear()
        _newest.clear()


def leaderboard(
    session: Session,
    run: Run,
    *,
    panel_id: int | None = None,
    rounds: int = ROUNDS,
    stale_ok: bool = False,
    key: LeaderboardKey | None = None,
) -> LeaderboardView:
    """The run's leaderboard on its counted votes (one panel's, if given).

    One computation per key: concurrent callers of a key being computed wait for it (single
    flight). With `stale_ok` (the live page, its poll, the dashboard), a caller whose key
    changed since the last computation gets that last view at once while one background
    thread computes the new one (stale while revalidate): a vote costs one bootstrap, not
    one per viewer. The view's `version` says which votes it counts. A caller that already
    read the `key` (the page compares it with the poll's version) passes it instead of
    panel_id and rounds, so it is not read twice.
    """
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    if key is None:
        key = leaderboard_key(session, run, panel_id=panel_id, rounds=rounds)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
        stale = _newest.get(_board(key)) if stale_ok else None
    if stale is not None:
        _refresh_in_background(session, run.id, key)
        return stale
    return _compute_once(session, run, key)


def _compute_once(session: Session, run: Run, key: LeaderboardKey) -> LeaderboardView:
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        flight = _flights.get(key)
        leading = flight is None
        if flight is None:
            flight = _flights[key] = threading.Event()
    if not leading:
        flight.wait(FLIGHT_WAIT_S)
        with _cache_lock:
            cached = _cache.get(key)
        if cached is not None:
            return cached
        return _compute(session, run, key)  # the leader failed or is stuck: compute alone
    try:
        view = _stored(session, key)
        if view is None:
            view = _compute(session, run, key)
            _store(session, view)
            release_freed_memory()  # the computation's temporaries: hundreds of MB
        with _cache_lock:
            _cache[key] = view
            _cache.move_to_end(key)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
            newest = _newest.get(_board(key))
            if newest is None or newest.key.max_vote_id <= key.max_vote_id:
                _newest[_board(key)] = view
        return view
    finally:
        with _cache_lock:
            _flights.pop(key, None)
        flight.set()


# Bumped when LeaderboardView changes shape: older stored snapshots are then ignored.
SNAPSHOT_FORMAT = 1


def snapshot_version(key: LeaderboardKey) -> str:
    return f"{SNAPSHOT_FORMAT}:{key.version}"


def _stored(session: Session, key: LeaderboardKey) -> LeaderboardView | None:
    """The view another process (or this one, earlier) computed for this very key."""
    found = session.scalar(
        select(LeaderboardSnapshot.view).where(
            LeaderboardSnapshot.run_id == key.run_id,
            LeaderboardSnapshot.panel == (key.panel_id or 0),
            LeaderboardSnapshot.rounds == key.rounds,
            LeaderboardSnapshot.version == snapshot_version(key),
        )
    )
    if found is None:
        return None
    # Written by _store below, in this app's own database: as trusted as the votes are.
    view: LeaderboardView = pickle.loads(found)
    return dataclasses.replace(view, key=key)


def _store(session: Session, view: LeaderboardView) -> None:
    """Keep the view for every process and the CLI: the board's one row, replaced. On its
    own session and transaction, so the caller's is left as it was."""
    key = view.key
    # No database URL (it may hold a password) in the database.
    data = pickle.dumps(dataclasses.replace(view, key=key._replace(database="")))
    board = (
        LeaderboardSnapshot.run_id == key.run_id,
        LeaderboardSnapshot.panel == (key.panel_id or 0),
        LeaderboardSnapshot.rounds == key.rounds,
    )
    with Session(session.get_bind()) as own:
        try:
            own.execute(delete(LeaderboardSnapshot).where(*board))
            own.add(
                LeaderboardSnapshot(
                    run_id=key.run_id,
                    panel=key.panel_id or 0,
                    rounds=key.rounds,
                    version=snapshot_version(key),
                    view=data,
                )
            )
            own.commit()
        except IntegrityError:  # another process stored this board meanwhile: theirs stands
            own.rollback()


def _refresh_in_background(session: Session, run_id: int, key: LeaderboardKey) -> None:
    """Compute the board's current view on a thread of its own, unless one already does."""
    board = _board(key)
    with _cache_lock:
        if board in _refreshing:
            return
        _refreshing.add(board)
    bind = session.get_bind()

    def refresh() -> None:
        try:
            with Session(bind) as own:
                run = own.get_one(Run, run_id)
                # The key now: more votes may have come since the caller's.
                current = leaderboard_key(own, run, panel_id=key.panel_id, rounds=key.rounds)
                _compute_once(own, run, current)
        finally:
            with _cache_lock:
                _refreshing.discard(board)

    threading.Thread(target=refresh, name="leaderboard-refresh", daemon=True).start()


# --- the leaderboard as data (API, CSV, `leaderboard --json`) ------------------------------


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


# --- words for numbers (the page and the CLI) ----------------------------------------------

_STATUS_WORDS = {
    "above": "above all",
    "below": "below all",
    "not_connected": "not connected",
    "not_identified": "not identified",
}


def fmt_rating(rating: VariantRating) -> str:
    """The rating as a number, or in words when it is infinite or missing (never "inf").
    A variant without votes says so, the reference too (its 1000 is a convention then)."""
    if rating.games == 0:
        return "no votes yet"
    if rating.status == "ok" and rating.rating is not None and math.isfinite(rating.rating):
        return f"{rating.rating:.0f}"
    return _STATUS_WORDS.get(rating.status, rating.status.replace("_", " "))


def fmt_interval(low: float | None, high: float | None) -> str:
    """A 95% interval on the Elo scale; an infinite end reads as "≥ low" / "≤ high"."""
    if low is None or high is None:
        return ""
    low_open, high_open = not math.isfinite(low), not math.isfinite(high)
    if low_open and high_open:
        return "unbounded"
    if high_open:
        return f"≥ {low:.0f}"
    if low_open:
        return f"≤ {high:.0f}"
    return f"[{low:.0f}, {high:.0f}]"


def fmt_rank(rank: int | None) -> str:
    return "—" if rank is None else str(rank)


def fmt_share(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value * 100:.0f}%"


def fmt_verdict(v: Verdict) -> str:
    if v.games == 0:
        return "no votes yet"
    return "undecided yet" if v.verdict == "undecided" else v.verdict


# --- kept fresh after votes ----------------------------------------------------------------


# Advisory lock ids of the refreshers (one per run), away from any other lock of the app.
REFRESH_LOCK_BASE = 0x4C42_0000_0000  # "LB"


class Refresher:
    """Recomputes a run's leaderboard (the open board: every counted vote, ROUNDS rounds) in
    the background after votes, so that the page, its poll, the API and the CLI find the
    current view stored instead of computing it (a new vote shows within the interval plus
    one computation, ~2 s at a million votes). At most one computation per run at a time and
    one per `interval_s`: votes arriving meanwhile are taken by the next one."""

    def __init__(self, bind: Engine, interval_s: float) -> None:
        self._bind = bind
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._running: set[int] = set()
        self._pending: set[int] = set()

    def poke(self, run_id: int) -> None:
        """A vote of this run was stored."""
        with self._lock:
            if run_id in self._running:
                self._pending.add(run_id)
                return
            self._running.add(run_id)
        threading.Thread(
            target=self._refresh, args=(run_id,), name="leaderboard-refresher", daemon=True
        ).start()

    @contextmanager
    def _only_process(self, run_id: int) -> Iterator[bool]:
        """Whether this process is the one to compute now: on PostgreSQL with several server
        processes, the holder of an advisory lock per run (the others' pages read the view
        it stores); on SQLite, one process serves."""
        if self._bind.dialect.name != "postgresql":
            yield True
            return
        with self._bind.connect() as conn:
            key = {"key": REFRESH_LOCK_BASE + run_id}
            alone = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), key))
            try:
                yield alone
            finally:
                if alone:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), key)

    def _refresh(self, run_id: int) -> None:
        while True:
            started = time.monotonic()
            try:
                with self._only_process(run_id) as alone:
                    if alone:
                        with Session(self._bind) as session:
                            run = session.get(Run, run_id)
                            if run is not None:
                                leaderboard(session, run)
            except Exception:  # the next vote tries again; the page computes on its own
                log.exception("refreshing the leaderboard of run %s failed", run_id)
            time.sleep(max(0.0, self._interval_s - (time.monotonic() - started)))
            with self._lock:
                if run_id not in self._pending:
                    self._running.discard(run_id)
                    return
                self._pending.discard(run_id)
