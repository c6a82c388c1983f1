"""A minimal HTTP/1.1 client on asyncio streams, for the load benchmarks on loopback.

Not httpx: on this 2-core machine, where client and server share the cores, httpx spent more
CPU per request than the server's `/healthz`, so the load generator, not the server, set the
measured rates (`/healthz` 1058 req/s through httpx against 1640 with this client, same
server, same minute; docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode, urlsplit

FORM = "application/x-www-form-urlencoded"


class LoopbackClient:
    """One client (a rater, say): one keep-alive HTTP/1.1 connection and its one cookie.

    Just enough HTTP for this app on loopback: requests with a Content-Length body, answers
    with a Content-Length (every route the benchmarks measure sends one)."""

    def __init__(self, base: str) -> None:
        url = urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.cookie: str | None = None
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self,
        method: str,
        target: str,
        *,
        form: dict[str, str] | None = None,
        headers: tuple[str, ...] = (),
    ) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        body = urlencode(form).encode() if form is not None else b""
        head = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if self.cookie:
            head.append(f"Cookie: {self.cookie}")
        head += headers
        if form is not None:
            head += [f"Content-Type: {FORM}", f"Content-Length: {len(body)}"]
        writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status, length = int(lines[0].split()[1]), None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "set-cookie":
                self.cookie = value.strip().split(";")[0]
        if length is None:
            raise SystemExit(f"{method} {target}: an answer without Content-Length")
        return status, await reader.readexactly(length)

    async def aclose(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            await self._streams[1].wait_closed()
