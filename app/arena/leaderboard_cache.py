"""A run's leaderboard, served: one computation per change, however many ask at once.

The bootstrap is the costly part, so a result is kept in a small in-process LRU keyed by what
changes it (`LeaderboardKey`): a new vote changes the run's largest vote id, an admin's
decision on flags the flags version. Behind the LRU, the view stored in the database
(app/arena/leaderboard_snapshots.py) serves the other processes; only a key nobody computed
yet runs app/arena/leaderboard_compute.py, once (single flight), and a live page may be
handed the board's last view while one thread computes the new one (DESIGN.md, rule 10).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.arena.leaderboard_compute import ROUNDS, compute_view
from app.arena.leaderboard_snapshots import store_view, stored_view
from app.arena.leaderboard_view import LeaderboardKey, LeaderboardView
from app.arena.reviews import version as flags_version
from app.memory import release_freed_memory
from app.models import Run, Vote

CACHE_SIZE = 32


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
        return compute_view(session, run, key)  # the leader failed or is stuck: compute alone
    try:
        view = stored_view(session, key)
        if view is None:
            view = compute_view(session, run, key)
            store_view(session, view)
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
