"""Leaderboard `/leaderboard`: a run's Bradley–Terry ratings from the arena's votes, live.

`?run=ID` (default the latest run) and `?panel=CODE` (only that panel's votes; unknown → 404).
The `board` block polls its own URL with htmx every 2 s and swaps itself, so a new vote shows
within 2 s for everyone watching. Each poll sends the version it shows
(`X-Leaderboard-Version`, from the cache key); while no vote has changed it gets 204 No
Content, which htmx does not swap: an idle page costs one aggregate query per poll and never
redraws under the reader (an open per-category table stays open, a scrolled table stays put).

Panel codes are invitations (`/arena?panel=CODE` joins the panel), so the page never lists
them: the filter takes a code the reader already knows, and says so in a line under it.

References, named as the ranking uses them: one Bradley–Terry fit puts every variant on one
scale with the run's reference (app.arena.counted_votes.run_reference) pinned at 1000; another
reference (schnell, when dev is pinned) is rated on that scale like any variant, and each
variant's verdict is against its own reference. A new poll that brings votes says so in one
sentence in a polite live region outside the board (the template's script), not the table.

Below the ratings, "can a metric stand in for votes?" (app.arena.agreement): each metric's agreement
with the decided votes and its correlation with the ratings.
"""

from __future__ import annotations

import math
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.arena.agreement import page_agreement
from app.arena.counted_votes import ANONYMOUS_VOTES_PER_NETWORK
from app.arena.leaderboard_cache import leaderboard, leaderboard_key
from app.arena.leaderboard_view import LeaderboardView
from app.arena.leaderboard_words import (
    fmt_interval,
    fmt_rank,
    fmt_rating,
    fmt_share,
    fmt_verdict,
)
from app.web.deps import RunQuery, SessionDep
from app.web.selection import select_panel, select_run
from app.web.templating import render, templates

# A page, not the API: kept out of the OpenAPI schema (/docs documents the API only).
router = APIRouter(include_in_schema=False)

BOARD_ID = "leaderboard"
POLL = "every 2s"
VERSION_HEADER = "X-Leaderboard-Version"

templates.env.tests["finite"] = lambda value: value is not None and math.isfinite(value)
templates.env.filters["rating_words"] = fmt_rating
templates.env.filters["rating_interval"] = fmt_interval
templates.env.filters["rank"] = fmt_rank
templates.env.filters["share"] = fmt_share
templates.env.filters["verdict_words"] = fmt_verdict


def reference_families(view: LeaderboardView) -> list[tuple[str, list[str]]]:
    """Each reference with the variants that name it (`base`), in config order."""
    families: dict[str, list[str]] = {}
    for d in view.verdicts:
        families.setdefault(d.reference, []).append(d.variant)
    return list(families.items())


def _is_fragment(request: Request) -> bool:
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


@router.get("/leaderboard", response_class=HTMLResponse, summary="Leaderboard page")
def leaderboard_page(
    request: Request,
    session: SessionDep,
    run: RunQuery = None,
    panel: Annotated[
        str | None,
        Query(max_length=64, description="Only the votes of this panel (its invitation code)."),
    ] = None,
) -> Response:
    selected = select_run(session, run)
    panel_row = select_panel(session, panel)
    context: dict[str, Any] = {
        "nav": "leaderboard",
        "run": selected,
        "panel": panel_row,
        "board_id": BOARD_ID,
    }
    if selected is not None:
        panel_id = panel_row.id if panel_row else None
        key = leaderboard_key(session, selected, panel_id=panel_id)
        if _is_fragment(request) and request.headers.get(VERSION_HEADER) == key.version:
            return Response(status_code=204, headers={"Vary": "HX-Request"})
        query = {"run": selected.id} | ({"panel": panel_row.code} if panel_row else {})
        # The newest computed view at once; a newer one is computed in the background and
        # reaches the page at a later poll (one bootstrap per vote, not per viewer).
        view = leaderboard(session, selected, key=key, stale_ok=True)
        if _is_fragment(request) and request.headers.get(VERSION_HEADER) == view.version:
            return Response(status_code=204, headers={"Vary": "HX-Request"})
        context |= {
            "view": view,
            "families": reference_families(view),
            # Computed in the background, at most every 30 s while votes come in.
            "agreement": page_agreement(session, view),
            "self_url": f"/leaderboard?{urlencode(query)}",
            "poll": POLL,
            "version_header": VERSION_HEADER,
            "preliminary_votes": request.app.state.settings.arena_preliminary_votes,
            "network_cap": ANONYMOUS_VOTES_PER_NETWORK,
        }
    return render(request, "leaderboard.html", context, block="board")
