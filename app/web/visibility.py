"""Blind runs: whose images the public may not see yet (DESIGN.md, rule 11).

A run with `blind = true` in its config keeps its images — the gallery, the prompt pages,
the API's generations (image URLs and hashes) and the media files — behind the admin token
until an admin publishes it. Names, timings, costs and the leaderboard stay public: they do
not link an arena image to its variant. Responses that an admin gets for a hidden run are
`private, no-store`, so neither the page cache nor a shared proxy hands them to others.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Run
from app.web.admin import is_admin

PRIVATE = "private, no-store"


def viewer_is_admin(request: Request) -> bool:
    settings = request.app.state.settings
    return bool(settings.admin_token) and is_admin(request, settings)


def check_images_visible(request: Request, run: Run) -> bool:
    """Raise 403 if the run's images are hidden from this viewer; True if they are hidden
    but the viewer is an admin (the response must then be private)."""
    if not run.images_hidden:
        return False
    if viewer_is_admin(request):
        return True
    raise HTTPException(
        status_code=403,
        detail=f"run {run.id}'s images are hidden until an admin publishes its results "
        "(a blind run: its arena is open)",
    )


def mark_private(response: Response, private: bool = True) -> Response:
    """An admin's view of a blind run's images: for this browser only, never a cache."""
    if private:
        response.headers["Cache-Control"] = PRIVATE
    return response


def hidden_run_ids(session: Session) -> frozenset[int]:
    return frozenset(
        session.scalars(select(Run.id).where(Run.blind.is_(True), Run.published_at.is_(None)))
    )
