"""The scale benchmark's HTTP client: times an answer to its first byte and its end, and reads
what benchmarks/loopback.py's client does not (no Content-Length: a 204, a chunked export).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.loopback import LoopbackClient

# Enough of a body to find a token or a version in; the rest is counted, not kept.
KEEP_BODY = 1 << 20


@dataclass(frozen=True)
class Answer:
    status: int
    first_byte_s: float
    total_s: float
    size: int
    body: bytes  # the first KEEP_BODY bytes


class TimedClient(LoopbackClient):
    """benchmarks/loopback.py's client, plus what these routes need that it does not read:
    answers without a Content-Length (204, a streamed export in chunks), and when the first
    byte of the body came."""

    def drop(self) -> None:
        """Close the connection without waiting; the next request opens a new one."""
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None

    async def fetch(self, target: str, headers: Sequence[str] = ()) -> Answer:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        head = [f"GET {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if self.cookie:
            head.append(f"Cookie: {self.cookie}")
        head += headers
        start = time.perf_counter()
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status, fields = int(lines[0].split()[1]), {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "set-cookie":
                self.cookie = value.strip().split(";")[0]
            elif name:
                fields[name.lower()] = value.strip()
        body, size, first = bytearray(), 0, None

        def take(chunk: bytes) -> None:
            nonlocal size, first
            if chunk and first is None:
                first = time.perf_counter()
            size += len(chunk)
            if len(body) < KEEP_BODY:
                body.extend(chunk[: KEEP_BODY - len(body)])

        if status in (204, 304):
            pass
        elif "content-length" in fields:
            remaining = int(fields["content-length"])
            while remaining:
                chunk = await reader.read(min(remaining, 1 << 16))
                if not chunk:
                    raise asyncio.IncompleteReadError(bytes(body), remaining)
                take(chunk)
                remaining -= len(chunk)
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            while n := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                take(await reader.readexactly(n))
                await reader.readexactly(2)
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
                pass
        else:
            while chunk := await reader.read(1 << 16):
                take(chunk)
            fields["connection"] = "close"
        if fields.get("connection", "").lower() == "close":
            self.drop()
        end = time.perf_counter()
        return Answer(status, (first or end) - start, end - start, size, bytes(body))


async def timed_fetch(
    client: TimedClient, target: str, headers: Sequence[str], timeout_s: float
) -> Answer:
    try:
        return await asyncio.wait_for(client.fetch(target, headers), timeout_s)
    except (TimeoutError, OSError, asyncio.IncompleteReadError) as err:
        # The connection is in an unknown state: the next request opens a new one.
        client.drop()
        what = f"no answer in {timeout_s:g} s" if isinstance(err, TimeoutError) else repr(err)
        return Answer(0, 0.0, 0.0, 0, what.encode())
