"""The app as served, plus one probe for the load benchmarks: `GET /bench/noop`, an async
route that does nothing. `/healthz` is a plain `def` route, so FastAPI runs it in the thread
pool like every sync page; the no-op shows the framework's cost without that hop. Only the
benchmarks serve this factory (app.web.devserver.serve_in_subprocess(factory=...))."""

from __future__ import annotations

from fastapi import FastAPI

from app.web.main import create_app

NOOP_PATH = "/bench/noop"
FACTORY = "benchmarks.noop_app:create_app_with_noop"


def create_app_with_noop() -> FastAPI:
    app = create_app()

    @app.get(NOOP_PATH, include_in_schema=False)
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    return app
