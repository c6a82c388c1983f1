"""The FastAPI app factory. The web tier reads the database and the media folder; it never
imports torch (DESIGN.md: the worker and the web talk only through the DB and media)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.config import Settings, get_settings
from app.db import make_engine, session_factory
from app.web import overview
from app.web.templating import templates

ROOT = Path(__file__).resolve().parent.parent.parent


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Flux Playground", version="0.1.0")
    engine = make_engine(settings.database_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.templates = templates

    settings.media_dir.mkdir(parents=True, exist_ok=True)
    # StaticFiles refuses paths that resolve outside its folder (404), so no traversal.
    app.mount("/media", StaticFiles(directory=settings.media_dir), name="media")
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    app.include_router(overview.router)
    return app
