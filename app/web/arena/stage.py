"""What the arena's stage shows after a vote, or instead of a matchup: the two sides named
(the reveal), and a refusal or an empty state in the arena's own frame, as JSON, as the
htmx fragment or as the whole page."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from app.arena.catalog import ArenaCache, CatalogImage, RunCatalog, RunInfo
from app.arena.votes import ATTENTION_ANSWERS, RecordedVote
from app.models import Run, Vote, VoteOutcome
from app.web.deps import memo_async
from app.web.templating import render

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

GONE = "the images of this matchup are no longer among the run's finished variants"


@dataclass(frozen=True)
class Shown:
    """One side of a matchup after the vote: the variant's name and its image."""

    variant_name: str
    image: CatalogImage


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


def sides(catalog: RunCatalog, pairing: Pairing) -> tuple[Shown, Shown]:
    """Both sides of a matchup (for an attention check, the same image twice). Raises
    LookupError when a side is no longer among the run's finished variants' images."""
    key = (pairing.prompt_id, pairing.seed)
    left, right = (
        Shown(catalog.contender(variant_id).name, catalog.images[variant_id][key])
        for variant_id in (pairing.left_variant_id, pairing.right_variant_id)
    )
    return left, right


def run_catalog(request: Request, run_id: int) -> RunCatalog:
    cache: ArenaCache = request.app.state.arena_cache

    def load() -> RunCatalog:  # its own session: a stale catalog reloads after the request
        with request.app.state.sessions() as session:
            return cache.load_catalog(session, run_id)

    return cache.catalogs.get(run_id, load)


def run_catalog_async(request: Request, run_id: int) -> Awaitable[RunCatalog]:
    cache: ArenaCache = request.app.state.arena_cache
    return memo_async(request, cache.catalogs, run_id, partial(cache.load_catalog, run_id=run_id))


def arena_url(run_id: int | None) -> str:
    return f"/arena?run={run_id}" if run_id is not None else "/arena"


def reveal_context(
    catalog: RunCatalog, vote: Vote | RecordedVote, votes_by_rater: int
) -> dict[str, Any]:
    """What the reveal shows (raises LookupError, see sides)."""
    left, right = sides(catalog, vote)
    return {
        "state": "reveal",
        "vote": vote,
        "outcome_label": OUTCOME_LABELS[vote.outcome],
        "attention_passed": vote.outcome in ATTENTION_ANSWERS,
        "prompt_text": catalog.prompts[vote.prompt_id],
        "left": left,
        "right": right,
        "next_url": arena_url(vote.run_id),
        "votes_by_rater": votes_by_rater,
    }


def stage_message(
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
