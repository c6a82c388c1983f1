"""Arena `/arena`: blind pairwise votes. One matchup at a time (two images of one prompt and
seed, names hidden), a vote, then the reveal (names and latencies) and the next matchup.

The rules (which pair, which votes count) live in app/arena/matchups.py; this module is the
HTTP side: the rater cookie, the vote form's body limits and origin check, and the three
renderings of every answer (whole page, htmx fragment, JSON).

The rater is an anonymous id in a signed cookie, given at the first visit; the rater row is
written at their first vote. A page view writes nothing: the matchup travels as an
encrypted offer (app/arena/matchups.py) in the vote form. A vote must carry an offer made
to that same id, so a cross-site form cannot produce a valid (cookie, token) pair; a POST
whose Origin names another host is refused before anything else.

While a matchup is open its images are served from `/arena/images/{offer}/{side}`, not from
/media: media paths carry the variant's name, and the two sides of an attention check would
share one URL.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import ClientDisconnect

from app.arena.catalog import (
    ArenaCache,
    CatalogImage,
    RunCatalog,
    RunInfo,
)
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
from app.arena.votes import ATTENTION_ANSWERS, RecordedVote, check_ballot, store_ballot
from app.arena.write_queue import WriteQueue
from app.config import Settings
from app.models import Run, Vote, VoteOutcome
from app.web.blind import blind_png
from app.web.deps import INT64_MAX, IdPath, RunQuery, SessionDep, client_network, memo_async
from app.web.selection import select_run
from app.web.templating import render

# A page, not the API: kept out of the OpenAPI schema (/docs documents the API only).
router = APIRouter(include_in_schema=False)

RATER_COOKIE = "fp_rater"
RATER_SALT = "flux-playground.rater"
RATER_COOKIE_MAX_AGE_S = 365 * 24 * 3600
# A vote form is a token (~100 bytes) and an outcome: anything near this size is not one.
MAX_VOTE_BODY_BYTES = 4096
FORM_TYPE = "application/x-www-form-urlencoded"

OUTCOME_LABELS = {
    VoteOutcome.left: "left is better",
    VoteOutcome.right: "right is better",
    VoteOutcome.tie: "tie",
    VoteOutcome.both_bad: "both bad",
}

TITLES = {
    403: "Vote refused",
    409: "Already answered",
    410: "This matchup expired",
    413: "Vote too large",
    429: "Slow down",
}

Side = Literal["left", "right"]

# The long side of an arena image's small version (as the gallery's thumbnails): the browser
# picks it (srcset) where the image is shown that small, a phone mostly.
SMALL_SIDE = 384


@dataclass(frozen=True)
class Shown:
    """One side of a matchup after the vote: the variant's name and its image."""

    variant_name: str
    image: CatalogImage


@dataclass(frozen=True)
class VoteForm:
    token: str
    outcome: str


# 1. The rater cookie.


def _rater_serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret_key, salt=RATER_SALT)


def rater_id_from_cookie(request: Request) -> str | None:
    """The cookie's rater id when its signature holds; a missing or tampered cookie is None
    (the visitor becomes a new rater), never an error."""
    value = request.cookies.get(RATER_COOKIE)
    if not value:
        return None
    try:
        rater_id = _rater_serializer(request.app.state.settings).loads(value)
    except BadData:
        return None
    return rater_id if isinstance(rater_id, str) else None


def _set_rater_cookie(request: Request, response: Response, rater_id: str) -> None:
    response.set_cookie(
        RATER_COOKIE,
        _rater_serializer(request.app.state.settings).dumps(rater_id),
        max_age=RATER_COOKIE_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


# 2. What a matchup and a vote show.


class Pairing(Protocol):
    """What names a matchup's two images: an Offer, a Vote or a RecordedVote."""

    @property
    def prompt_id(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def left_variant_id(self) -> int: ...
    @property
    def right_variant_id(self) -> int: ...


def _sides(catalog: RunCatalog, pairing: Pairing) -> tuple[Shown, Shown]:
    """Both sides of a matchup (for an attention check, the same image twice). Raises
    LookupError when a side is no longer among the run's finished variants' images."""
    key = (pairing.prompt_id, pairing.seed)
    left, right = (
        Shown(catalog.contender(variant_id).name, catalog.images[variant_id][key])
        for variant_id in (pairing.left_variant_id, pairing.right_variant_id)
    )
    return left, right


def _catalog(request: Request, run_id: int) -> RunCatalog:
    cache: ArenaCache = request.app.state.arena_cache

    def load() -> RunCatalog:  # its own session: a stale catalog reloads after the request
        with request.app.state.sessions() as session:
            return cache.load_catalog(session, run_id)

    return cache.catalogs.get(run_id, load)


def _catalog_async(request: Request, run_id: int) -> Awaitable[RunCatalog]:
    cache: ArenaCache = request.app.state.arena_cache
    return memo_async(request, cache.catalogs, run_id, partial(cache.load_catalog, run_id=run_id))


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


def _arena_url(run_id: int | None) -> str:
    return f"/arena?run={run_id}" if run_id is not None else "/arena"


def _reveal_context(
    catalog: RunCatalog, vote: Vote | RecordedVote, votes_by_rater: int
) -> dict[str, Any]:
    """What the reveal shows (raises LookupError, see _sides)."""
    left, right = _sides(catalog, vote)
    return {
        "state": "reveal",
        "vote": vote,
        "outcome_label": OUTCOME_LABELS[vote.outcome],
        "attention_passed": vote.outcome in ATTENTION_ANSWERS,
        "prompt_text": catalog.prompts[vote.prompt_id],
        "left": left,
        "right": right,
        "next_url": _arena_url(vote.run_id),
        "votes_by_rater": votes_by_rater,
    }


GONE = "the images of this matchup are no longer among the run's finished variants"


def _message(
    request: Request,
    status: int,
    reason: str,
    *,
    run: Run | RunInfo | None = None,
    next_url: str | None = None,
    title: str | None = None,
) -> Response:
    """A refusal or an empty state, in the arena's own frame: as JSON when asked for it, as
    the stage fragment for htmx (arena.js swaps 4xx fragments in), else as the whole page."""
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"detail": reason}, status_code=status)
    context = {
        "nav": "arena",
        "run": run,
        "state": "message",
        "status": status,
        "reason": reason,
        "title": title or TITLES.get(status, "Vote not accepted"),
        "next_url": next_url,
    }
    return render(request, "arena.html", context, block="stage", status_code=status)


# 3. The pages.


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
        return _message(request, 200, "Nothing to compare yet.", title="No runs yet")
    run_id = shown.id
    catalog = await _catalog_async(request, run_id)
    pair_counts = await memo_async(
        request, cache.pair_counts, run_id, partial(cache.tally_pairs, run_id=run_id)
    )
    try:
        pick = choose_matchup(catalog, pair_counts, random.SystemRandom())
    except ArenaError as exc:
        return _message(
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
        _set_rater_cookie(request, response, rater_id)
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
        left, right = _sides(_catalog(request, offer.run_id), offer)
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
    catalog = _catalog(request, vote.run_id)
    try:
        revealed = _reveal_context(catalog, vote, _votes_by(session, vote.rater_id))
    except LookupError:
        raise HTTPException(410, GONE) from None
    run = session.get(Run, vote.run_id)
    context = {"nav": "arena", "run": run, **revealed}
    response = render(request, "arena.html", context, block="stage")
    response.headers["Cache-Control"] = "no-store"
    return response


# 4. The vote.


def _cross_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return False
    # Behind a proxy that rewrites Host, X-Forwarded-Host names the public host. A cross-site
    # form cannot set either header (a custom header needs CORS, which this app never grants).
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
    return urlsplit(origin).netloc not in hosts


async def read_vote_form(request: Request) -> VoteForm:
    """The form's two fields, from at most MAX_VOTE_BODY_BYTES of body. Raises ArenaError."""
    if _cross_origin(request):
        raise ArenaError(403, "cross-origin vote refused")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_VOTE_BODY_BYTES):
        raise ArenaError(413, f"a vote is at most {MAX_VOTE_BODY_BYTES} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise ArenaError(415, f"a vote is a form ({FORM_TYPE}), not {content_type or 'nothing'}")
    body = bytearray()
    # Content-Length may be absent (chunked) or lie: count what actually arrives.
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_VOTE_BODY_BYTES:
                raise ArenaError(413, f"a vote is at most {MAX_VOTE_BODY_BYTES} bytes")
    except ClientDisconnect:
        # Nobody reads the answer, but a 500 and a logged traceback would cry wolf.
        raise ArenaError(400, "the client went away before its vote arrived") from None
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=8
        )
    except ValueError:  # UnicodeDecodeError included
        raise ArenaError(400, "the vote form could not be parsed") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise ArenaError(422, f"{name}: given more than once")
        fields[name] = value
    missing = [name for name in ("token", "outcome") if not fields.get(name)]
    if missing:
        raise ArenaError(422, "; ".join(f"{name}: field required" for name in missing))
    return VoteForm(token=fields["token"], outcome=fields["outcome"])


def _refusal(request: Request, refused: ArenaError, run_id: int | None) -> Response:
    """A refused vote, shown in the frame of the run it came from."""
    with request.app.state.sessions() as session:
        run = session.get(Run, run_id) if run_id is not None else None
        return _message(
            request, refused.status_code, refused.reason, run=run, next_url=_arena_url(run_id)
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
        revealed = _reveal_context(
            await _catalog_async(request, vote.run_id), vote, vote.rater_votes
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
