"""Static files with cache headers.

Media URLs carry the image's content hash (`?v=<sha256 prefix>`) and vendored files carry
their version in the name, so both may be cached for a year. StaticFiles already answers 404
for any path that resolves outside its folder.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

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
