"""`scale.py build`: migrate a database, refuse one that has runs, fill it with the older runs,
the latest run and its arena, and report its size (which `measure` reports too).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import Connection, create_engine, func, select, text
from sqlalchemy.engine import make_url

from app.bench.prompts import load_prompts
from app.migrate import upgrade
from app.models import Run
from benchmarks.scale_arena import build_arena
from benchmarks.scale_builder import Builder, Ids
from benchmarks.scale_runs import build_run
from benchmarks.scale_shape import PARTI, PARTI_64, SCALES, VOTING_DAYS


def build(url: str, media: Path, scale_name: str, seed: int, replace: bool) -> None:
    scale = SCALES[scale_name]
    started = time.perf_counter()
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if replace and sqlite and parsed.database:
        for suffix in ("", "-wal", "-shm"):
            Path(parsed.database + suffix).unlink(missing_ok=True)
    upgrade(url)
    media.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    with engine.connect() as conn:
        if conn.scalar(select(func.count()).select_from(Run.__table__)):
            raise SystemExit(f"{url}: the database has runs already; build needs an empty one")
        if sqlite:
            # This connection only: WAL as the app has it, no fsync (a crash means a rebuild),
            # a big page cache for the index inserts.
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            conn.exec_driver_sql("PRAGMA cache_size=-262144")
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()
        now = datetime.now(UTC).replace(microsecond=0)
        b = Builder(conn, media.resolve(), scale, np.random.default_rng(seed), now)
        parti = load_prompts(PARTI)
        old_prompts = load_prompts(PARTI_64)[: scale.old_prompts]
        # Spread over the file: every category and challenge is in the smaller sets too.
        picks = np.unique(np.linspace(0, len(parti) - 1, scale.prompts).round().astype(int))
        latest_prompts = [parti[i] for i in picks.tolist()]
        latest_created = now - timedelta(days=VOTING_DAYS + 10)
        for k in range(scale.runs - 1):
            build_run(
                b,
                f"scale-weekly-{k + 1:02d}",
                old_prompts,
                PARTI_64,
                scale.old_variants,
                list(range(scale.old_seeds)),
                latest_created - timedelta(days=7 * (scale.runs - 1 - k)),
            )
        latest = build_run(
            b,
            "scale-parti",
            latest_prompts,
            PARTI,
            scale.variants,
            list(range(scale.seeds)),
            latest_created,
        )
        build_arena(b, latest)
        finish(conn, sqlite, b.ids)
    engine.dispose()
    seconds = time.perf_counter() - started
    print(
        f"built {scale_name}: {b.rows_total:,} rows in {seconds:.0f} s "
        f"({b.rows_total / seconds:,.0f} rows/s), {database_size(url)}; media in {media}",
        flush=True,
    )


def finish(conn: Connection, sqlite: bool, ids: Ids) -> None:
    if sqlite:
        # Fold the WAL into the file, so its size is the database's.
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    # Rows went in with explicit ids: move each sequence past them, or the app's next
    # insert (a vote) would collide.
    for table in ids.next:
        conn.execute(
            text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), MAX(id)) FROM {table}")
        )
    conn.commit()
    # What autovacuum would soon do on a live server.
    with conn.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as auto:
        auto.exec_driver_sql("ANALYZE")


def database_size(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
        return f"SQLite {size / 2**20:,.0f} MiB"
    engine = create_engine(url)
    with engine.connect() as conn:
        size = conn.scalar(text("SELECT pg_database_size(current_database())")) or 0
    engine.dispose()
    return f"PostgreSQL {size / 2**20:,.0f} MiB"
