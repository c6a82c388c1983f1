"""The arena's vote form, read with care before anything else is: a same-origin POST, a form
body of at most MAX_VOTE_BODY_BYTES (counted as it arrives, whatever Content-Length says),
and exactly the two fields, token and outcome. Each refusal is an ArenaError with its status."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from fastapi import Request
from starlette.requests import ClientDisconnect

from app.arena.matchups import ArenaError

# A vote form is a token (~100 bytes) and an outcome: anything near this size is not one.
MAX_VOTE_BODY_BYTES = 4096
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class VoteForm:
    token: str
    outcome: str


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
