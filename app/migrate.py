"""Schema creation and upgrades, only through Alembic (`flux-playground init`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

# The repository root: migrations/ lives beside app/ (the package is installed editable).
ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    # ConfigParser treats % as interpolation; URL-encoded passwords contain it.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
