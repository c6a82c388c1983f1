"""`serve`: the web app under uvicorn, refusing settings that would be unsafe or slow there (a
default secret key off loopback, several processes on SQLite)."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated

import typer

from app.cli.common import fail, migrate
from app.config import DEFAULT_SECRET_KEY, get_settings


def serve(
    host: Annotated[str | None, typer.Option(help="Default: settings.host")] = None,
    port: Annotated[int | None, typer.Option(help="Default: settings.port")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes (PostgreSQL only: SQLite has one writer at a time).",
        ),
    ] = 1,
) -> None:
    """Serve the web app."""
    import uvicorn

    settings = get_settings()
    if workers > 1 and settings.database_url.startswith("sqlite"):
        raise fail(
            f"--workers {workers} needs PostgreSQL (FLUX_PLAYGROUND_DATABASE_URL="
            "postgresql+psycopg://...): SQLite takes one writer at a time, so more processes "
            "would only wait on each other's votes. One process serves ~1,400 votes/s here."
        )
    bind = host or settings.host
    if settings.secret_key == DEFAULT_SECRET_KEY and not _is_loopback(bind):
        raise fail(
            f"FLUX_PLAYGROUND_SECRET_KEY is the default and {bind} is not a loopback address: "
            "anyone could forge arena tokens and admin cookies. Set a long random value "
            '(python -c "import secrets; print(secrets.token_urlsafe(32))").'
        )
    migrate()
    # The processes split the in-memory limits between them (app/web/main.py).
    os.environ["FLUX_PLAYGROUND_SERVER_PROCESSES"] = str(workers)
    uvicorn.run(
        "app.web.main:create_app",
        factory=True,
        workers=workers,
        host=bind,
        # Forwarded headers are believed only from FLUX_PLAYGROUND_TRUSTED_PROXIES, by the
        # app itself (uvicorn's default would trust any local process's X-Forwarded-For).
        proxy_headers=False,
        port=port or settings.port,
        log_level="info",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return bool(ipaddress.ip_address(host).is_loopback)
    except ValueError:
        return False  # a host name: it may resolve to anything
