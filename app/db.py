"""Engine and session factory.

SQLite gets WAL, a busy timeout and foreign keys on every connection.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # As many pooled connections as the web server has worker threads (anyio's default
    # is 40): an overflow connection is closed on return and the next one re-runs the
    # PRAGMAs below. SQLite connections are only file handles.
    engine = create_engine(
        url, connect_args={"check_same_thread": False}, pool_size=40, max_overflow=10
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL: readers (the web app) never block the one writer (the worker).
        cursor.execute("PRAGMA journal_mode=WAL")
        # A writer waits for another instead of failing with "database is locked".
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Safe with WAL (a power cut may lose the last commits, never corrupt the file).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


@lru_cache
def get_engine(url: str | None = None) -> Engine:
    return make_engine(url or get_settings().database_url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One short transaction: commit on success, roll back on error."""
    with session_factory(engine)() as session, session.begin():
        yield session


# SQLite has one writer at a time. When many threads of this process write at once, the losers
# wait in SQLite's busy handler, which sleeps in 1-100 ms steps: throughput drops and p99
# explodes. Queueing them on a lock in the process hands the write lock over without sleeps.
_SQLITE_WRITER = threading.Lock()


def serialized_writes(bind: Session | Engine) -> threading.Lock | nullcontext[None]:
    """Wrap a short read-then-write transaction (up to its commit) with this on hot paths."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    if engine.dialect.name == "sqlite":
        return _SQLITE_WRITER
    return nullcontext()
