"""The JSON API under /api/v1, documented at /docs: runs, variants with timing and cost,
prompts, per-image results, and CSV exports of the last two. Read-only.

One router module per group of routes; this package joins them under the prefix and tag,
in the order /docs lists them."""

from __future__ import annotations

from fastapi import APIRouter

from app.web.api import generations, leaderboard, prompts, runs, shapes

router = APIRouter(prefix="/api/v1", tags=["api"])
for group in (runs, shapes, prompts, generations, leaderboard):
    router.include_router(group.router)
