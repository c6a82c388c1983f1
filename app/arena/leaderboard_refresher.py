"""Keep a run's stored leaderboard fresh after votes, off the request path.

The web app pokes a `Refresher` after each stored vote; one background computation per run
at a time (and, on PostgreSQL, in one server process: an advisory lock) stores the current
view (app/arena/leaderboard_snapshots.py), so pages, polls, the API and the CLI read it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.arena.leaderboard_cache import leaderboard
from app.models import Run

log = logging.getLogger(__name__)

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
