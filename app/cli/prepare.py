"""Getting a machine ready: the database schema (`init`) and the tiny offline models
(`build-tiny`)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import console, migrate, offline_defaults
from app.config import get_settings


def init() -> None:
    """Create or upgrade the database schema (alembic upgrade head)."""
    url = migrate()
    console.print(f"database ready: {url}", highlight=False)


def build_tiny(
    force: Annotated[bool, typer.Option(help="Rebuild even if the models exist.")] = False,
) -> None:
    """Build the tiny offline FLUX pipelines (demo and tests) into the models folder."""
    offline_defaults()
    from app.worker.tiny import build_tiny_models

    built = build_tiny_models(get_settings().models_dir, force=force)
    for name, path in built.items():
        console.print(f"{name}: {path}", highlight=False)
