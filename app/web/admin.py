"""Admin `/admin`: panel invite codes, raters (flag/unflag), and the vote exports.

Auth: the admin token of the settings, sent as `Authorization: Bearer <token>`, or typed once
into the login form, which sets `fp_admin`: a signed (itsdangerous), expiring, HttpOnly,
SameSite=Strict cookie scoped to /admin. The cookie carries a keyed fingerprint of the token,
so changing the token logs every browser out. An empty token disables admin (404).

Guessing: after MAX_WRONG_TOKENS wrong tokens (form or bearer) from one client address within
WRONG_TOKEN_WINDOW_S, that address's token attempts get 429 with Retry-After, right token or
not, until its oldest miss ages out (counted per server process).

CSRF: a browser does not send a SameSite=Strict cookie with a request another site starts,
and every state-changing POST also refuses a cross-origin `Origin` header (403), which covers
browsers that send it but mishandle SameSite.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.arena.leaderboard_cache import leaderboard
from app.arena.reviews import set_rater_flag, set_review
from app.arena.vote_export import VoteFilter, csv_chunks, jsonl_chunks, vote_rows
from app.config import Settings
from app.models import Panel, Rater, Run, Vote, utcnow
from app.web.deps import SessionDep, SettingsDep, client_network
from app.web.selection import all_runs
from app.web.sliding_window import SlidingWindowLimit
from app.web.templating import render

COOKIE = "fp_admin"
COOKIE_SALT = "flux-playground.admin"
SESSION_MAX_AGE_S = 8 * 3600
RATERS_PER_PAGE = 100
INT64_MAX = 2**63 - 1
MAX_WRONG_TOKENS = 10
WRONG_TOKEN_WINDOW_S = 600.0
MAX_TRACKED_CLIENTS = 10_000


class WrongTokens(SlidingWindowLimit):
    """Wrong admin tokens per client network over a sliding window, in this process."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, limit: int = MAX_WRONG_TOKENS
    ) -> None:
        super().__init__(limit, WRONG_TOKEN_WINDOW_S, clock=clock, max_keys=MAX_TRACKED_CLIENTS)


def _checked_token(request: Request, candidate: str, settings: Settings) -> bool:
    """Whether `candidate` is the admin token; 429 while this client is locked out."""
    wrong: WrongTokens = request.app.state.admin_wrong_tokens
    # By network, and through trusted proxies only: a rotating X-Forwarded-For from an
    # untrusted peer changes nothing.
    client = client_network(request)
    wait_s = wrong.retry_after_s(client)
    if wait_s is not None:
        raise HTTPException(
            status_code=429,
            detail=f"too many wrong admin tokens; try again in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
        )
    if _token_matches(candidate, settings):
        return True
    wrong.record(client)
    return False


class AdminAuthError(Exception):
    """No valid admin token or cookie: answered with the login page, 401."""


class AdminRoute(APIRoute):
    """Admin's own error and header rules, kept here rather than in the app-wide handlers:
    an auth failure renders the login form, and no admin response is cached or framed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except AdminAuthError as exc:
                response = login_page(request, str(exc), status_code=401)
                response.headers["WWW-Authenticate"] = 'Bearer realm="flux-playground admin"'
            response.headers["Cache-Control"] = "no-store"
            response.headers["X-Frame-Options"] = "DENY"
            return response

        return route


router = APIRouter(prefix="/admin", route_class=AdminRoute, tags=["admin"])

# What an export can answer besides 200 and 422 (FastAPI documents those itself).
EXPORT_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No admin session or bearer token, or a wrong one."},
    404: {"description": "Admin pages are disabled (no token set), or no such run."},
    429: {"description": "Too many wrong tokens from this network: wait (Retry-After)."},
}


# Auth


def enabled_settings(settings: SettingsDep) -> Settings:
    if not settings.admin_token:
        raise HTTPException(
            status_code=404,
            detail="admin pages are disabled: set FLUX_PLAYGROUND_ADMIN_TOKEN to enable them",
        )
    return settings


AdminSettings = Annotated[Settings, Depends(enabled_settings)]


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=COOKIE_SALT)


def _token_fingerprint(settings: Settings) -> str:
    # Keyed with the secret: the cookie is signed, not encrypted, and a plain hash of the
    # token would be something to guess against offline.
    return hmac.new(
        settings.secret_key.encode(), settings.admin_token.encode(), hashlib.sha256
    ).hexdigest()


def _token_matches(candidate: str, settings: Settings) -> bool:
    return hmac.compare_digest(candidate.encode(), settings.admin_token.encode())


def is_admin(request: Request, settings: Settings) -> bool:
    """A matching bearer token, else a valid, unexpired cookie for the current token."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return _checked_token(request, credentials.strip(), settings)
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return False
    try:
        payload = _serializer(settings).loads(cookie, max_age=SESSION_MAX_AGE_S)
    except BadSignature:  # also SignatureExpired
        return False
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("t"), str)
        and hmac.compare_digest(payload["t"].encode(), _token_fingerprint(settings).encode())
    )


def require_admin(request: Request, settings: AdminSettings) -> None:
    if not is_admin(request, settings):
        raise AdminAuthError("admin token required")


def same_origin(request: Request, _: AdminSettings) -> None:
    """Refuse a state-changing request whose Origin names another site (or is "null")."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    # Host only, not the scheme: behind a TLS-terminating proxy the app sees http.
    if urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        raise HTTPException(status_code=403, detail="cross-origin request refused")


ADMIN_POST = [Depends(same_origin), Depends(require_admin)]


def login_page(request: Request, reason: str | None, *, status_code: int) -> Response:
    return render(request, "admin.html", {"login": True, "reason": reason}, status_code=status_code)


@router.post(
    "/login",
    response_class=HTMLResponse,
    dependencies=[Depends(same_origin)],
    include_in_schema=False,
)
def login(
    request: Request,
    settings: AdminSettings,
    token: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    if not _checked_token(request, token.strip(), settings):
        return login_page(request, "wrong admin token", status_code=401)
    response = RedirectResponse("/admin", status_code=303)
    response.set_cookie(
        COOKIE,
        _serializer(settings).dumps({"t": _token_fingerprint(settings)}),
        max_age=SESSION_MAX_AGE_S,
        path="/admin",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout", dependencies=[Depends(same_origin)], include_in_schema=False)
def logout() -> Response:
    response = RedirectResponse("/admin", status_code=303)
    response.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="strict")
    return response


# Pages


def _panels(session: Session) -> list[dict[str, Any]]:
    """Each panel with its raters and votes: counted per panel through the indexes on
    raters.panel_id and votes(panel_id, id), so the cost is the panels' own rows, not every
    anonymous vote (a GROUP BY over the votes read a million rows per view)."""
    panels = session.scalars(select(Panel).order_by(Panel.created_at.desc(), Panel.id)).all()
    return [
        {
            "panel": panel,
            "raters": session.scalar(
                select(func.count()).select_from(Rater).where(Rater.panel_id == panel.id)
            ),
            "votes": session.scalar(
                select(func.count()).select_from(Vote).where(Vote.panel_id == panel.id)
            ),
        }
        for panel in panels
    ]


def _raters(session: Session, *, flagged_only: bool, page: int) -> list[dict[str, Any]]:
    """One page of raters, flagged first, newest first; their votes counted for this page's
    raters only (index range counts on votes(rater_id, created_at)). The page's ids come
    from the index on (flagged, created_at, id) alone, read backwards, so a deep page skips
    index entries rather than sorting and skipping whole rows."""
    order = (Rater.flagged.desc(), Rater.created_at.desc(), Rater.id.desc())
    ids = select(Rater.id).order_by(*order).limit(RATERS_PER_PAGE)
    if flagged_only:
        ids = ids.where(Rater.flagged.is_(True))
    page_ids = list(session.scalars(ids.offset(page * RATERS_PER_PAGE)))
    rows = session.execute(
        select(Rater, Panel.name)
        .outerjoin(Panel, Panel.id == Rater.panel_id)
        .where(Rater.id.in_(page_ids))
        .order_by(*order)
    ).all()
    votes = dict(
        session.execute(
            select(Vote.rater_id, func.count())
            .where(Vote.rater_id.in_(page_ids))
            .group_by(Vote.rater_id)
        ).all()
    )
    return [
        {"rater": rater, "panel": panel, "votes": votes.get(rater.id, 0)} for rater, panel in rows
    ]


@router.get(
    "",
    response_class=HTMLResponse,
    dependencies=[Depends(require_admin)],
    include_in_schema=False,
)
def admin_page(
    request: Request,
    session: SessionDep,
    page: Annotated[int, Query(ge=0, le=1_000_000, description="Page of the rater list.")] = 0,
    flagged: Annotated[bool, Query(description="List flagged raters only.")] = False,
    created: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    flags_run: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="Run whose anomaly flags to list.")
    ] = None,
) -> Response:
    flagged_total = session.scalar(
        select(func.count()).select_from(Rater).where(Rater.flagged.is_(True))
    )
    raters_total = flagged_total if flagged else session.scalar(select(func.count(Rater.id)))
    context = {
        "login": False,
        "base_url": str(request.base_url).rstrip("/"),
        "panels": _panels(session),
        "created": created,
        "raters": _raters(session, flagged_only=flagged, page=page),
        "raters_total": raters_total or 0,
        "flagged_total": flagged_total or 0,
        "flagged_only": flagged,
        "page": page,
        "per_page": RATERS_PER_PAGE,
        "runs": all_runs(session),
        **_flags(session, flags_run),
    }
    return render(request, "admin.html", context)


def _flags(session: Session, run_id: int | None) -> dict[str, Any]:
    """The anomaly flags of one run's open board (the latest run by default), computed with
    its leaderboard (app/arena/leaderboard_cache.py): fresh, so a decision shows at once."""
    run = session.get(Run, run_id) if run_id is not None else None
    if run_id is not None and run is None:
        raise HTTPException(status_code=404, detail=f"run {run_id} not found")
    run = run or session.scalars(select(Run).order_by(Run.id.desc()).limit(1)).first()
    if run is None:
        return {"flags_run": None, "flags": ()}
    return {"flags_run": run, "flags": leaderboard(session, run).flags}


@router.post("/runs/{run_id}/flags", dependencies=ADMIN_POST, include_in_schema=False)
def review_flag(
    session: SessionDep,
    run_id: Annotated[int, Path(ge=1, le=INT64_MAX)],
    kind: Annotated[Literal["rater", "network"], Form()],
    subject: Annotated[str, Form(min_length=1, max_length=64)],
    count: Annotated[bool, Form(description="true: count the votes; false: undo that")],
) -> Response:
    """Overrule an anomaly flag (the subject's votes count on this run's board) or undo it."""
    if session.get(Run, run_id) is None:
        raise HTTPException(status_code=404, detail=f"run {run_id} not found")
    set_review(session, run_id, kind, subject, count)
    return RedirectResponse(f"/admin?flags_run={run_id}#flags", status_code=303)


@router.post("/panels", dependencies=ADMIN_POST, include_in_schema=False)
def create_panel(
    session: SessionDep, name: Annotated[str, Form(min_length=1, max_length=128)]
) -> Response:
    name = name.strip()
    if not name:
        raise HTTPException(status_code=422, detail="a panel needs a name")
    # 8 random bytes: 11 URL-safe characters, not guessable by someone without the link.
    panel = Panel(code=secrets.token_urlsafe(8), name=name)
    session.add(panel)
    session.commit()
    return RedirectResponse(f"/admin?created={panel.id}#panels", status_code=303)


@router.post("/runs/{run_id}/publish", dependencies=ADMIN_POST, include_in_schema=False)
def publish_run(
    request: Request,
    session: SessionDep,
    run_id: Annotated[int, Path(ge=1, le=INT64_MAX)],
) -> Response:
    """Publish a blind run's results: its images become public (once; not undone here)."""
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(status_code=404, detail=f"run {run_id} not found")
    if run.published_at is None:
        run.published_at = utcnow()
        session.commit()
    request.app.state.hidden_runs.clear()
    return RedirectResponse("/admin#blind", status_code=303)


@router.post("/raters/{rater_id}/flag", dependencies=ADMIN_POST, include_in_schema=False)
def flag_rater(
    session: SessionDep,
    rater_id: Annotated[str, Path(max_length=36)],
    flagged: Annotated[bool, Form(description="true to flag, false to unflag")],
    page: Annotated[int, Form(ge=0, le=1_000_000)] = 0,
) -> Response:
    if not set_rater_flag(session, rater_id, flagged):
        raise HTTPException(status_code=404, detail=f"rater {rater_id} not found")
    return RedirectResponse(f"/admin?page={page}#rater-{rater_id}", status_code=303)


# Exports

RunFilter = Annotated[
    int | None, Query(ge=1, le=INT64_MAX, description="Only this run's votes; all runs if absent.")
]
IncludeFlagged = Annotated[bool, Query(description="Include votes of flagged raters.")]
IncludeAttention = Annotated[bool, Query(description="Include attention-check votes.")]


def _export(
    request: Request,
    session: Session,
    run: int | None,
    where: VoteFilter,
    encode: Callable[[Iterator[dict[str, Any]]], Iterator[str]],
    extension: str,
    media_type: str,
) -> StreamingResponse:
    run_row = session.get(Run, run) if run is not None else None
    if run is not None and run_row is None:
        raise HTTPException(status_code=404, detail=f"run {run} not found")
    # The request's session closes when the handler returns; the stream reads with its own.
    sessions = request.app.state.sessions

    def body() -> Iterator[str]:
        with sessions() as stream_session:
            yield from encode(vote_rows(stream_session, where))

    scope = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', run_row.name)}-run{run}" if run_row else "all-runs"
    return StreamingResponse(
        body(),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="votes-{scope}.{extension}"'},
    )


@router.get(
    "/export/votes.csv",
    dependencies=[Depends(require_admin)],
    responses=EXPORT_ERRORS,
    summary="Votes as CSV (schema: docs/votes-export.md)",
    response_class=StreamingResponse,
)
def export_votes_csv(
    request: Request,
    session: SessionDep,
    run: RunFilter = None,
    include_flagged: IncludeFlagged = False,
    include_attention: IncludeAttention = False,
) -> StreamingResponse:
    where = VoteFilter(run, include_flagged, include_attention)
    return _export(request, session, run, where, csv_chunks, "csv", "text/csv; charset=utf-8")


@router.get(
    "/export/votes.jsonl",
    dependencies=[Depends(require_admin)],
    responses=EXPORT_ERRORS,
    summary="Votes as JSON Lines (schema: docs/votes-export.md)",
    response_class=StreamingResponse,
)
def export_votes_jsonl(
    request: Request,
    session: SessionDep,
    run: RunFilter = None,
    include_flagged: IncludeFlagged = False,
    include_attention: IncludeAttention = False,
) -> StreamingResponse:
    where = VoteFilter(run, include_flagged, include_attention)
    return _export(request, session, run, where, jsonl_chunks, "jsonl", "application/x-ndjson")
