from __future__ import annotations

from sqlalchemy import Engine, text

from app.models import Base


def test_db_sqlite_pragmas_on_every_connection(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10000


def test_db_migrations_match_the_models(engine: Engine) -> None:
    """Alembic is the only way the schema changes: the models must not drift from it."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_db_foreign_keys_enforced(engine: Engine) -> None:
    import pytest
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO prompts (run_id, position, text, category, challenge, note)"
                " VALUES (999, 0, 't', 'c', 'x', '')"
            )
        )


def test_db_serialized_writes_locks_only_sqlite(engine: Engine) -> None:
    import threading

    from sqlalchemy.orm import Session

    from app.db import serialized_writes

    with Session(engine) as session:
        guard = serialized_writes(session)
        assert isinstance(guard, type(threading.Lock()))
        with guard:
            assert guard.locked()
        assert not guard.locked()
