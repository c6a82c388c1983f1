"""Alembic environment: the URL comes from the caller (app.migrate) or from Settings."""

from __future__ import annotations

from alembic import context

from app.db import make_engine
from app.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or None
if url is None:
    from app.config import get_settings

    url = get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        # Batch mode lets later migrations alter SQLite tables (copy-and-move).
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
