"""The FastAPI app factory. The web tier reads the database and the media folder; it never
imports torch (DESIGN.md: the worker and the web talk only through the DB and media)."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.middleware.gzip import GZipMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.arena.catalog import ArenaCache
from app.arena.leaderboard_refresher import Refresher
from app.arena.matchups import ArenaError
from app.arena.network import RATE_WINDOW_S
from app.arena.write_queue import WriteQueue
from app.config import Settings, get_settings
from app.db import make_engine, session_factory
from app.memo import TTLMemo
from app.web import admin, api, arena, dashboard, gallery, hardware, leaderboard, overview, runs
from app.web.deps import memo_async
from app.web.errors import install_error_pages
from app.web.microcache import MicroCache
from app.web.sliding_window import SlidingWindowLimit
from app.web.static import CachedStaticFiles, MediaFiles
from app.web.templating import render
from app.web.visibility import hidden_run_ids, viewer_is_admin

HIDDEN_RUNS_TTL_S = 1.0
ROOT = Path(__file__).resolve().parent.parent.parent
SWAGGER_UI = "swagger-ui-5.35.0"
# Below about one TCP segment compressing saves no round trip; level 6 makes files within
# 1% of level 9's size in ~60% of its time (swagger-ui-bundle.js: 39 ms against 50 ms).
GZIP_MINIMUM_SIZE = 1024
GZIP_LEVEL = 6


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # Close the pooled connections on shutdown (a PostgreSQL server counts them).
    app.state.engine.dispose()


def per_process(limit: int, processes: int) -> int:
    """A limit's share for one of `processes` server processes (at least 1)."""
    return max(1, math.ceil(limit / processes))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=_lifespan,
        title="Flux Playground",
        version="0.1.0",
        description="Images, latency, cost and quality of text-to-image variants.",
        # The default docs pages load their JS from a CDN; ours serves vendored copies.
        docs_url=None,
        redoc_url=None,
    )
    engine = make_engine(settings.database_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    # The arena's votes are written by one thread per process, in group commits.
    app.state.writes = WriteQueue(engine, refusals=(ArenaError,))
    app.state.leaderboards = Refresher(engine, settings.leaderboard_refresh_s)
    app.state.arena_cache = ArenaCache()
    # Which pair a rater sees next: unpredictable (a rater who could foresee the draw could
    # choose when to vote). A test replays one fixed draw with a seeded random.Random here.
    app.state.matchup_rng = random.SystemRandom()
    # Limits counted in memory, each process its share: with `serve --workers N` a network
    # gets the limit in all, not N times it (a client whose connections all reach one
    # process gets that process's share: stricter, never looser).
    processes = settings.server_processes
    app.state.network_votes = SlidingWindowLimit(
        per_process(settings.arena_network_votes_per_minute, processes), RATE_WINDOW_S
    )
    app.state.admin_wrong_tokens = admin.WrongTokens(
        limit=per_process(admin.MAX_WRONG_TOKENS, processes)
    )

    settings.media_dir.mkdir(parents=True, exist_ok=True)
    # The ids of blind, unpublished runs, read at most once a second: every media request
    # asks (publishing clears it at once).
    hidden: TTLMemo[None, frozenset[int]] = TTLMemo(HIDDEN_RUNS_TTL_S)
    app.state.hidden_runs = hidden
    app.mount(
        "/media",
        MediaFiles(
            directory=settings.media_dir,
            hidden_runs=lambda request: memo_async(request, hidden, None, hidden_run_ids),
            viewer_is_admin=viewer_is_admin,
        ),
        name="media",
    )
    # App css/js URLs carry ?v=ASSET_VERSION, vendored files their version in the name.
    app.mount("/static", CachedStaticFiles(directory=ROOT / "static"), name="static")
    install_error_pages(app)
    app.add_middleware(MicroCache, ttl_s=settings.page_cache_s)
    # Outside the microcache, which keeps one plain copy for every client. Starlette's
    # middleware leaves images (PNG, WebP...) and 206 ranges alone, compresses a streamed
    # export chunk by chunk (each flushed as it comes), and adds Accept-Encoding to Vary.
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE, compresslevel=GZIP_LEVEL)
    if settings.trusted_proxies.strip():
        # Outermost, so every limit sees the forwarded client. Only for the named proxies:
        # anyone else's X-Forwarded-For is ignored (serve starts uvicorn without its own).
        trusted = [host.strip() for host in settings.trusted_proxies.split(",") if host.strip()]
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)
    for module in (overview, gallery, dashboard, hardware, runs, arena, leaderboard, admin, api):
        app.include_router(module.router)

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> Response:
        # FastAPI's own Swagger page has no lang, landmarks or way back to the app: this one
        # is a page of the app (nav, skip link, footer) with Swagger UI inside its main.
        context = {
            "nav": "docs",
            "openapi_url": app.openapi_url or "/openapi.json",
            "swagger_ui": SWAGGER_UI,
        }
        return render(request, "docs.html", context)

    @app.get("/healthz", tags=["ops"], summary="Liveness: no database, no template")
    def healthz() -> dict[str, bool]:
        # Also the trivial endpoint benchmarks/web_latency.py measures the framework's
        # ceiling with.
        return {"ok": True}

    return app
