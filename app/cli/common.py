"""What the command modules share: the consoles, the one-line error exit, the repository root,
and the steps many commands begin with (migrate the database, stay offline for tiny models).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from app.config import get_settings

console = Console()
err_console = Console(stderr=True)

ROOT = Path(__file__).resolve().parents[2]


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def migrate() -> str:
    """`alembic upgrade head`: a no-op on an up-to-date database, so `run`, `worker` and
    `serve` call it too, and a first `run` on a new machine needs no separate `init`."""
    from app.migrate import upgrade

    url = get_settings().database_url
    upgrade(url)
    return url


def offline_defaults() -> None:
    # The default paths never download anything: tiny models are built locally.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
