"""The arena's rater: an anonymous id in a signed cookie, given at the first visit. A missing
or tampered cookie makes the visitor a new rater, never an error."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from itsdangerous import BadData, URLSafeSerializer

from app.config import Settings

RATER_COOKIE = "fp_rater"
RATER_SALT = "flux-playground.rater"
RATER_COOKIE_MAX_AGE_S = 365 * 24 * 3600


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


def set_rater_cookie(request: Request, response: Response, rater_id: str) -> None:
    response.set_cookie(
        RATER_COOKIE,
        _rater_serializer(request.app.state.settings).dumps(rater_id),
        max_age=RATER_COOKIE_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
