"""`POST /arena/vote`: a vote checked on the event loop, stored by the process's database
writer, answered with the reveal (a redirect to it, its fragment, or JSON), or refused in the
frame of the run it came from."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from app.arena.matchups import ArenaError
from app.arena.votes import check_ballot, store_ballot
from app.arena.write_queue import WriteQueue
from app.config import Settings
from app.models import Run
from app.web.arena.rater_cookie import rater_id_from_cookie
from app.web.arena.stage import arena_url, reveal_context, run_catalog_async, stage_message
from app.web.arena.vote_form import read_vote_form
from app.web.deps import INT64_MAX, client_network
from app.web.templating import render

router = APIRouter()


def _refusal(request: Request, refused: ArenaError, run_id: int | None) -> Response:
    """A refused vote, shown in the frame of the run it came from."""
    with request.app.state.sessions() as session:
        run = session.get(Run, run_id) if run_id is not None else None
        return stage_message(
            request, refused.status_code, refused.reason, run=run, next_url=arena_url(run_id)
        )


async def _take_vote(request: Request, run_id: int | None) -> Response:
    """The vote's hot path: the form and token checks run here, on the event loop (no I/O);
    the write runs on the process's database writer (app/arena/write_queue.py), which commits the
    votes that arrive together in one transaction and answers each after that commit."""
    settings: Settings = request.app.state.settings
    form = await read_vote_form(request)
    ballot = check_ballot(
        token=form.token,
        rater_id=rater_id_from_cookie(request),
        outcome=form.outcome,
        secret_key=settings.secret_key,
        max_age_s=settings.arena_token_ttl_s,
    )
    # A network of people votes only so fast, whatever cookies it takes (app/arena/network.py).
    network = client_network(request)
    if not request.app.state.network_votes.allow(network):
        limit = settings.arena_network_votes_per_minute
        raise ArenaError(429, f"too many votes from your network: at most {limit} a minute")
    writes: WriteQueue = request.app.state.writes
    # DESIGN.md rule 5: a vote that got a 2xx is in the database (run() returns after COMMIT).
    vote = await writes.run(
        partial(
            store_ballot,
            ballot=ballot,
            votes_per_minute=settings.arena_votes_per_minute,
            network=network,
            new_raters_per_hour=settings.arena_network_new_raters_per_hour,
        )
    )
    request.app.state.leaderboards.poke(vote.run_id)
    # Post/redirect/get for a plain form: reloading the reveal page does not post it again.
    see_reveal = RedirectResponse(f"/arena/reveal/{vote.matchup_id}", status_code=303)
    wants_json = "application/json" in request.headers.get("accept", "")
    if request.headers.get("HX-Request") != "true" and not wants_json:
        return see_reveal
    try:
        revealed = reveal_context(
            await run_catalog_async(request, vote.run_id), vote, vote.rater_votes
        )
    except LookupError:
        # Stored, but a side is no longer a finished variant's image (a run being redone):
        # the vote stands, and the reveal page says what is missing.
        return see_reveal
    if wants_json:
        return JSONResponse(
            {
                "vote_id": vote.id,
                "matchup_id": vote.matchup_id,
                "outcome": vote.outcome.value,
                "attention_check": vote.attention_check,
                **{
                    side: {"variant": shown.variant_name, "latency_s": shown.image.latency_s}
                    for side, shown in (("left", revealed["left"]), ("right", revealed["right"]))
                },
            },
            status_code=201,
        )
    # The reveal fragment, rendered here: the catalog made it a template and no query.
    return render(request, "arena.html", {"nav": "arena", **revealed}, block="stage")


@router.post(
    "/arena/vote",
    summary="Vote on a matchup (form fields: token, outcome)",
    responses={
        201: {"description": "Stored (JSON)."},
        303: {"description": "Stored; see the reveal page."},
        400: {"description": "Invalid token, or a body that is not a form."},
        403: {"description": "Another rater's token, or a cross-origin request."},
        409: {"description": "Already answered."},
        410: {"description": "The token expired."},
        413: {"description": "Body over 4 KiB."},
        415: {"description": "Not application/x-www-form-urlencoded."},
        422: {"description": "A field missing, or an unknown outcome."},
        429: {"description": "Over the per-rater vote rate limit."},
    },
)
async def vote(
    request: Request,
    run: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="Run the next matchup comes from.")
    ] = None,
) -> Response:
    try:
        return await _take_vote(request, run)
    except ArenaError as refused:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"detail": refused.reason}, status_code=refused.status_code)
        return await run_in_threadpool(_refusal, request, refused, run)
