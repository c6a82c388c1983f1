"""The values the route table names in braces: from the database (`discover`: the latest run
and its rows) and from an earlier answer (`DYNAMIC`: a leaderboard version, an arena token).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import create_engine, func, select

from app.models import Generation, Panel, Prompt, Rater, Run, Vote
from app.models import Variant as VariantRow
from benchmarks.scale_client import TimedClient
from benchmarks.scale_routes import ADMIN_TOKEN, HTMX, Route

TOKEN_INPUT = re.compile(r"<input\b[^>]*\bname=\"token\"[^>]*>")
VALUE = re.compile(r"\bvalue=\"([^\"]+)\"")
BOARD_VERSION = re.compile(r"\bdata-version=\"([^\"]+)\"")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _cursor_before(conn: Any, run: int, offset: int) -> str:
    """The query that reads the generations API's page at `offset` as a client paging
    through the run does: `after=` the `next` cursor of the page before it (the API's
    order: variant position, prompt position, seed); a run of one page has no cursor."""
    if offset == 0:
        return "offset=0"
    row = conn.execute(
        select(VariantRow.position, Prompt.position, Generation.seed)
        .join(VariantRow, Generation.variant_id == VariantRow.id)
        .join(Prompt, Generation.prompt_id == Prompt.id)
        .where(Generation.run_id == run)
        .order_by(VariantRow.position, Prompt.position, Generation.seed)
        .offset(offset - 1)
        .limit(1)
    ).one()
    return "after=" + ".".join(str(part) for part in row)


def discover(url: str) -> dict[str, Any]:
    """The values the route table names: the latest run and its rows."""
    from app.web.admin import RATERS_PER_PAGE
    from app.web.gallery.grid import PER_PAGE

    engine = create_engine(url)
    with engine.connect() as conn:
        run = conn.scalar(select(func.max(Run.id)))
        if run is None:
            raise SystemExit(f"{url}: no runs; build the database first")
        prompts = list(
            conn.scalars(select(Prompt.id).where(Prompt.run_id == run).order_by(Prompt.position))
        )
        generations = (
            conn.scalar(
                select(func.count()).select_from(Generation).where(Generation.run_id == run)
            )
            or 0
        )
        raters = conn.scalar(select(func.count()).select_from(Rater)) or 0
        votes = conn.scalar(select(func.count()).select_from(Vote)) or 0
        runs = conn.scalar(select(func.count()).select_from(Run)) or 0
        panel = conn.scalar(select(Panel.code).order_by(Panel.id).limit(1))
        media_path = conn.scalar(
            select(Generation.image_path).where(Generation.run_id == run).limit(1)
        )
        last_cursor = _cursor_before(conn, run, max(0, (generations - 1) // 100 * 100))
    engine.dispose()
    return {
        "run": run,
        "prompt": prompts[len(prompts) // 2],
        "panel": panel or "no-panel",
        "media_path": media_path,
        "last_offset": max(0, (generations - 1) // 100 * 100),
        "last_cursor": last_cursor,
        "last_gallery_page": max(1, -(-len(prompts) // PER_PAGE)),
        # A database of one page has no page 2: its only page stands in.
        "second_gallery_page": min(2, max(1, -(-len(prompts) // PER_PAGE))),
        "last_rater_page": max(0, (raters - 1) // RATERS_PER_PAGE),
        "counts": f"{runs} runs, {len(prompts):,} prompts and {generations:,} generations "
        f"in the latest (run {run}), {raters:,} raters, {votes:,} votes",
    }


async def fetch_version(client: TimedClient, values: dict[str, Any]) -> str:
    page = await client.fetch(f"/leaderboard?run={values['run']}")
    found = BOARD_VERSION.search(page.body.decode("utf-8", "replace"))
    return found.group(1) if found else "none"


async def fetch_token(client: TimedClient, values: dict[str, Any]) -> str:
    page = await client.fetch(f"/arena?run={values['run']}", (HTMX,))
    tag = TOKEN_INPUT.search(page.body.decode("utf-8", "replace"))
    token = VALUE.search(tag.group(0)) if tag else None
    return token.group(1) if token else "none"


# Values read from an earlier answer, fetched (untimed) just before the route that needs them.
DYNAMIC: dict[str, Callable[[TimedClient, dict[str, Any]], Awaitable[str]]] = {
    "leaderboard_version": fetch_version,
    "arena_token": fetch_token,
}


async def resolve(
    route: Route, values: dict[str, Any], client: TimedClient
) -> tuple[str, tuple[str, ...]]:
    needed = set(PLACEHOLDER.findall(route.target + "".join(route.headers)))
    for name in sorted(needed & DYNAMIC.keys()):
        values[name] = await DYNAMIC[name](client, values)
    headers = tuple(h.format(**values) for h in route.headers)
    if route.admin:
        headers += (f"Authorization: Bearer {ADMIN_TOKEN}",)
    return route.target.format(**values), headers
