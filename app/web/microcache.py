"""A one-second cache of whole GET responses for the read-only pages and the API.

The pages are pure functions of the database, and the database changes at most a few times
per second (one image at a time). Keeping a rendered page for `ttl_s` bounds staleness to
that (the live run page, which polls every second, is not cached) and makes a busy page cost
one render per second instead of one per request: the "microcache" of web servers.

Keys: path + query + the htmx headers that select a fragment, read as the pages read them
(the first value of a repeated header: a key built from another value than the one the page
rendered would store a bare fragment under the full page's key). Only 200 responses without
Set-Cookie are kept, so nothing personal (arena cookies) is ever cached. Memory is bounded by
entries and by bytes, and expired entries are dropped as new ones arrive, so query strings
that bust the cache cannot pin memory.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Read-only pages and API reads. Not /runs/{id} (live progress) and nothing outside this list.
CACHEABLE = re.compile(r"^(/|/dashboard|/runs|/prompts(/\d+)?|/api/v1/runs(/.*)?)$")
VARY_HEADERS = (b"hx-request", b"hx-target", b"hx-history-restore-request")


@dataclass
class _Entry:
    expires: float
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class MicroCache:
    def __init__(
        self,
        app: ASGIApp,
        *,
        ttl_s: float = 1.0,
        max_entries: int = 512,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.entries: OrderedDict[tuple[bytes, ...], _Entry] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.ttl_s <= 0
            or scope["type"] != "http"
            or scope["method"] != "GET"
            or not CACHEABLE.match(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first, as Starlette's headers.get() reads
        key = (
            scope["path"].encode(),
            scope.get("query_string", b""),
            *(headers.get(name, b"") for name in VARY_HEADERS),
        )
        now = time.monotonic()
        entry = self.entries.get(key)
        if entry is not None and entry.expires > now:
            self.entries.move_to_end(key)
            # A copy of the headers, which an outer middleware may rewrite in place (GZip).
            headers_out = list(entry.headers)
            await send(
                {"type": "http.response.start", "status": entry.status, "headers": headers_out}
            )
            await send({"type": "http.response.body", "body": entry.body})
            return

        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                # A copy: an outer middleware (GZip) rewrites the headers in place as it sends.
                start = {**message, "headers": list(message.get("headers", []))}
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        response_headers = list(start.get("headers", []))
        # Nothing personal: no Set-Cookie, nothing marked private or no-store (an admin's
        # view of a blind run's images).
        if start.get("status") == 200 and not any(
            name.lower() == b"set-cookie"
            or (name.lower() == b"cache-control" and (b"private" in value or b"no-store" in value))
            for name, value in response_headers
        ):
            self._store(key, _Entry(now + self.ttl_s, 200, response_headers, b"".join(chunks)))

    def _store(self, key: tuple[bytes, ...], entry: _Entry) -> None:
        old = self.entries.pop(key, None)
        if old is not None:
            self.bytes -= len(old.body)
        self.entries[key] = entry
        self.bytes += len(entry.body)
        now = time.monotonic()
        # Oldest first: drop what expired, then whatever exceeds the budgets.
        while self.entries:
            first_key, first = next(iter(self.entries.items()))
            expired = first.expires <= now
            if (
                not expired
                and len(self.entries) <= self.max_entries
                and (self.bytes <= self.max_bytes)
            ):
                break
            del self.entries[first_key]
            self.bytes -= len(first.body)
