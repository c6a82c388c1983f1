"""Static files with cache headers.

Media URLs carry the image's content hash (`?v=<sha256 prefix>`) and vendored files carry
their version in the name, so both may be cached for a year. StaticFiles already answers 404
for any path that resolves outside its folder.
"""

from __future__ import annotations

import posixpath
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.web.visibility import mark_private

IMMUTABLE = "public, max-age=31536000, immutable"


class CachedStaticFiles(StaticFiles):
    def __init__(self, *args: Any, cache_control: str = IMMUTABLE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache_control = cache_control

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = self.cache_control
        return response


class MediaFiles(CachedStaticFiles):
    """The media folder, except a blind run's files (`runs/<id>/...`) for anyone but an
    admin: 404, as if absent; an admin gets them `private, no-store`."""

    def __init__(
        self,
        *args: Any,
        hidden_runs: Callable[[Request], Awaitable[frozenset[int]]],
        viewer_is_admin: Callable[[Request], bool],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.hidden_runs = hidden_runs
        self.viewer_is_admin = viewer_is_admin

    async def get_response(self, path: str, scope: Scope) -> Response:
        # Normalized first: "runs/x/../7/a.png" is run 7's file to the file system too.
        parts = posixpath.normpath(path.replace("\\", "/")).split("/")
        blind = (
            len(parts) > 2
            and parts[0] == "runs"
            and parts[1].isdigit()
            and int(parts[1]) in await self.hidden_runs(Request(scope))
        )
        if not blind:
            return await super().get_response(path, scope)
        if not self.viewer_is_admin(Request(scope)):
            return PlainTextResponse("Not Found", status_code=404)
        return mark_private(await super().get_response(path, scope))
