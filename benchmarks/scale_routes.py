"""What `scale.py measure` times: the route table (ROUTES), the exports, the vote cycle's
steps, and the app's GET routes that none of them covers.

A new GET route of the app belongs in ROUTES (or ELSEWHERE): the smoke test fails until it is.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

HTMX = "HX-Request: true"
JSON_ANSWER = "Accept: application/json"
ADMIN_TOKEN = secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Route:
    """One request the benchmark times. `target` and `headers` name values of the database
    (`{run}`, `{prompt}`, ...: see `discover`) or of an earlier answer (`{leaderboard_version}`,
    `{arena_token}`: see `DYNAMIC`) in braces; `pattern` is the app's route it exercises."""

    label: str
    target: str
    pattern: str
    headers: tuple[str, ...] = ()
    status: int = 200
    admin: bool = False


# Every page and API route, in the order measured: a cache one route fills is warm for the
# routes after it, so the leaderboard page comes before everything else that ranks.
ROUTES = [
    Route("overview", "/", "/"),
    Route("runs", "/runs", "/runs"),
    Route("run page", "/runs/{run}", "/runs/{run_id}"),
    Route(
        "run page, progress poll (htmx)",
        "/runs/{run}",
        "/runs/{run_id}",
        (HTMX, "HX-Target: run-progress"),
    ),
    Route("gallery", "/prompts?run={run}", "/prompts"),
    Route(
        "gallery, more rows (htmx, page 2)",
        "/prompts?run={run}&page={second_gallery_page}",
        "/prompts",
        (HTMX, "HX-Target: load-more"),
    ),
    Route(
        "gallery, more rows (htmx, last page)",
        "/prompts?run={run}&page={last_gallery_page}",
        "/prompts",
        (HTMX, "HX-Target: load-more"),
    ),
    # A word in about a third of PartiPrompts: the results fill the page on both sizes, so
    # the ratio compares equal pages ("dog" shows 2 rows on the small build, 24 on the full).
    Route(
        "gallery, search (htmx)",
        "/prompts?run={run}&q=the",
        "/prompts",
        (HTMX, "HX-Target: results"),
    ),
    # A search typed into the address bar or shared as a link: the whole page, not the htmx
    # fragment ("red": issue 21 measured it at 67.6 ms before the jobs index).
    Route("gallery, search (full page)", "/prompts?run={run}&q=red", "/prompts"),
    Route("prompt page", "/prompts/{prompt}?run={run}", "/prompts/{prompt_id}"),
    Route("leaderboard", "/leaderboard?run={run}", "/leaderboard"),
    Route(
        "leaderboard, 2 s poll (htmx, unchanged)",
        "/leaderboard?run={run}",
        "/leaderboard",
        (HTMX, "X-Leaderboard-Version: {leaderboard_version}"),
        status=204,
    ),
    Route("leaderboard, one panel", "/leaderboard?run={run}&panel={panel}", "/leaderboard"),
    Route("dashboard", "/dashboard", "/dashboard"),
    Route("admin", "/admin", "/admin", admin=True),
    Route("admin, last rater page", "/admin?page={last_rater_page}", "/admin", admin=True),
    Route("admin, flagged raters", "/admin?flagged=true", "/admin", admin=True),
    Route("arena", "/arena?run={run}", "/arena"),
    Route("arena image", "/arena/images/{arena_token}/left", "/arena/images/{token}/{side}"),
    Route("media file", "/media/{media_path}", "/media"),
    Route("healthz", "/healthz", "/healthz"),
    Route("API docs page", "/docs", "/docs"),
    Route("OpenAPI schema", "/openapi.json", "/openapi.json"),
    Route("API runs", "/api/v1/runs", "/api/v1/runs"),
    Route("API run", "/api/v1/runs/{run}", "/api/v1/runs/{run_id}"),
    Route("API variants", "/api/v1/runs/{run}/variants", "/api/v1/runs/{run_id}/variants"),
    Route("API prompts", "/api/v1/runs/{run}/prompts", "/api/v1/runs/{run_id}/prompts"),
    Route(
        "API generations, first page",
        "/api/v1/runs/{run}/generations",
        "/api/v1/runs/{run_id}/generations",
    ),
    Route(
        "API generations, last page (`next` cursor)",
        "/api/v1/runs/{run}/generations?{last_cursor}",
        "/api/v1/runs/{run_id}/generations",
    ),
    Route(
        "API generations, last page (`offset`)",
        "/api/v1/runs/{run}/generations?offset={last_offset}",
        "/api/v1/runs/{run_id}/generations",
    ),
    Route("API leaderboard", "/api/v1/runs/{run}/leaderboard", "/api/v1/runs/{run_id}/leaderboard"),
]


EXPORTS = [
    Route(
        "generations.csv",
        "/api/v1/runs/{run}/export/generations.csv",
        "/api/v1/runs/{run_id}/export/generations.csv",
    ),
    Route(
        "variants.csv",
        "/api/v1/runs/{run}/export/variants.csv",
        "/api/v1/runs/{run_id}/export/variants.csv",
    ),
    Route(
        "leaderboard.csv",
        "/api/v1/runs/{run}/export/leaderboard.csv",
        "/api/v1/runs/{run_id}/export/leaderboard.csv",
    ),
    Route("votes.csv, all runs", "/admin/export/votes.csv", "/admin/export/votes.csv", admin=True),
    Route(
        "votes.jsonl, all runs",
        "/admin/export/votes.jsonl",
        "/admin/export/votes.jsonl",
        admin=True,
    ),
]


# GET routes timed outside the two tables above.
ELSEWHERE = {
    "/arena/reveal/{matchup_id}": "the vote cycle",
    "/static": "a mount of fixed files, like /media",
}


VOTE_CYCLE = ("GET /arena (htmx)", "POST /arena/vote (JSON)", "GET /arena/reveal/{matchup_id}")


def unmeasured_routes() -> list[str]:
    """The app's GET routes and mounts that no table here times."""
    import tempfile

    from starlette.routing import Mount
    from starlette.routing import Route as AppRoute

    from app.config import Settings
    from app.web.main import create_app

    # The app's routes, from an app that never connects to its (file) database.
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(database_url=f"sqlite:///{folder}/none.db", media_dir=Path(folder))
        app = create_app(settings)
    paths = set()
    for route in app.routes:
        if isinstance(route, Mount) or (
            isinstance(route, AppRoute) and "GET" in (route.methods or ())
        ):
            paths.add(route.path)
    measured = {route.pattern for route in ROUTES + EXPORTS} | ELSEWHERE.keys()
    return sorted(paths - measured)
