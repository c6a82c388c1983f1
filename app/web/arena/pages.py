"""The arena's pages: `/arena` (the next blind matchup, sealed into the vote form),
`/arena/images/{offer}/{side}` (one side's image, in bytes of its own) and
`/arena/reveal/{id}` (after a vote, which variants the two sides were)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.arena.catalog import ArenaCache, RunInfo
from app.arena.matchups import (
    RATER_VOTES,
    ArenaError,
    Offer,
    Standing,
    choose_matchup,
    new_rater_id,
    open_offer,
    rater_standing,
    seal_offer,
)
from app.config import Settings
from app.models import Run, Vote
from app.web.arena.rater_cookie import rater_id_from_cookie, set_rater_cookie
from app.web.arena.stage import (
    GONE,
    reveal_context,
    run_catalog,
    run_catalog_async,
    sides,
    stage_message,
)
from app.web.arena.vote_form import MAX_VOTE_BODY_BYTES
from app.web.blind import blind_png
from app.web.deps import IdPath, RunQuery, SessionDep, memo_async
from app.web.selection import select_run
from app.web.templating import render

router = APIRouter()

Side = Literal["left", "right"]

# The long side of an arena image's small version (as the gallery's thumbnails): the browser
# picks it (srcset) where the image is shown that small, a phone mostly.
SMALL_SIDE = 384


def _run_info(session: Session, run_id: int | None) -> RunInfo | None:
    run = select_run(session, run_id)  # 404 for an unknown id
    return None if run is None else RunInfo(id=run.id, name=run.name, arena=run.arena)


def _votes_by(session: Session, rater_id: str) -> int:
    return session.execute(select(RATER_VOTES), {"rater": rater_id}).scalar_one()


def _small_width(width: int, height: int) -> int | None:
    """The small version's width, or None when the image is no larger than it."""
    if max(width, height) <= SMALL_SIDE:
        return None
    return round(width * SMALL_SIDE / max(width, height))


@router.get("/arena", response_class=HTMLResponse, summary="Arena: the next blind matchup")
async def arena(
    request: Request,
    run: RunQuery = None,
    panel: Annotated[
        str | None, Query(max_length=64, description="Join the panel with this code.")
    ] = None,
) -> Response:
    """The raters' hot path, like the vote: the run, its catalog and pair counts come from
    the app's ArenaCache (a worker thread loads them on a miss), the pair is chosen here, and
    nothing is written: the matchup goes out as a sealed offer, stored only if voted on."""
    settings: Settings = request.app.state.settings
    cache: ArenaCache = request.app.state.arena_cache
    shown = await memo_async(request, cache.runs, run, partial(_run_info, run_id=run))
    if shown is None:
        return stage_message(request, 200, "Nothing to compare yet.", title="No runs yet")
    run_id = shown.id
    catalog = await run_catalog_async(request, run_id)
    pair_counts = await memo_async(
        request, cache.pair_counts, run_id, partial(cache.tally_pairs, run_id=run_id)
    )
    try:
        pick = choose_matchup(catalog, pair_counts, request.app.state.matchup_rng)
    except ArenaError as exc:
        return stage_message(
            request, exc.status_code, exc.reason, run=shown, title="Nothing to compare yet"
        )
    cookie_rater = rater_id_from_cookie(request)
    panels_only = shown.arena == "panels"
    if cookie_rater is None and panel is None and not panels_only:
        standing = Standing(None, None, 0)  # a first visit: nothing to read
    else:
        try:
            standing = await run_in_threadpool(_standing, request, cookie_rater, panel, panels_only)
        except ArenaError as exc:
            # An unknown panel code, a panel study without an invitation: the error page
            # with the reason, not a matchup the rater did not ask for.
            raise HTTPException(exc.status_code, exc.reason) from None
    rater_id = cookie_rater or new_rater_id()
    token = seal_offer(settings.secret_key, Offer.of(pick, run_id, rater_id, standing.panel_id))
    size = catalog.images[pick.left.id][(pick.prompt_id, pick.seed)]
    context = {
        "nav": "arena",
        "run": shown,
        "state": "matchup",
        "token": token,
        "prompt_text": catalog.prompts[pick.prompt_id],
        "width": size.width,
        "height": size.height,
        "small_width": _small_width(size.width, size.height),
        "vote_url": f"/arena/vote?run={run_id}",
        "votes_by_rater": standing.rater_votes,
        "panel_name": standing.panel_name,
    }
    response = render(request, "arena.html", context, block="stage")
    # Personal: a shared cache must never hand one rater's token to another.
    response.headers["Cache-Control"] = "no-store"
    if rater_id != cookie_rater:
        set_rater_cookie(request, response, rater_id)
    return response


def _standing(
    request: Request, rater_id: str | None, panel_code: str | None, panels_only: bool
) -> Standing:
    with request.app.state.engine.connect() as conn:
        return rater_standing(
            conn, rater_id=rater_id, panel_code=panel_code, panels_only=panels_only
        )


@router.get(
    "/arena/images/{token}/{side}",
    summary="One side's image of an open matchup (no variant name in the URL)",
    response_class=Response,
)
def arena_image(
    request: Request,
    session: SessionDep,
    token: Annotated[str, Path(max_length=MAX_VOTE_BODY_BYTES)],
    side: Side,
    size: Annotated[
        Literal["small"] | None,
        Query(description=f"small: scaled down to fit {SMALL_SIDE} px (never up)."),
    ] = None,
) -> Response:
    settings: Settings = request.app.state.settings
    try:
        offer = open_offer(settings.secret_key, token, settings.arena_token_ttl_s)
    except ArenaError as exc:
        raise HTTPException(exc.status_code, exc.reason) from None
    if offer.rater_id != rater_id_from_cookie(request):
        raise HTTPException(404, "no matchup of yours")
    try:
        left, right = sides(run_catalog(request, offer.run_id), offer)
    except LookupError:
        raise HTTPException(410, GONE) from None
    shown = left if side == "left" else right
    path = settings.media_dir / shown.image.path
    if not path.is_file():
        raise HTTPException(404, "the image of this matchup is missing")
    # Blind means blind: the same pixels in new bytes, so neither a hash, a size nor an ETag
    # links the image to the public file (and so to its variant), and the two sides of an
    # attention check differ byte for byte.
    return Response(
        blind_png(path, max_side=SMALL_SIDE if size == "small" else None),
        media_type="image/png",
        headers={"Cache-Control": "private, no-store"},
    )


@router.get(
    "/arena/reveal/{matchup_id}",
    response_class=HTMLResponse,
    summary="After a vote: which variants the two sides were",
)
def reveal(
    request: Request,
    session: SessionDep,
    matchup_id: IdPath,
) -> Response:
    vote = session.scalars(select(Vote).where(Vote.matchup_id == matchup_id)).first()
    if vote is None or vote.rater_id != rater_id_from_cookie(request):
        raise HTTPException(404, f"no answered matchup {matchup_id} of yours")
    catalog = run_catalog(request, vote.run_id)
    try:
        revealed = reveal_context(catalog, vote, _votes_by(session, vote.rater_id))
    except LookupError:
        raise HTTPException(410, GONE) from None
    run = session.get(Run, vote.run_id)
    context = {"nav": "arena", "run": run, **revealed}
    response = render(request, "arena.html", context, block="stage")
    response.headers["Cache-Control"] = "no-store"
    return response
