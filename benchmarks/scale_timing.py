"""The scale benchmark's timing loops against a running server: every route on one keep-alive
connection, the exports with the server's RSS, the arena under concurrent clients, and one
rater's vote cycle.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import psutil

from benchmarks.loopback import LoopbackClient
from benchmarks.scale_client import Answer, TimedClient, timed_fetch
from benchmarks.scale_report import ms, note
from benchmarks.scale_results import ExportResult, LoadResult, Timed
from benchmarks.scale_routes import EXPORTS, JSON_ANSWER, ROUTES, VOTE_CYCLE
from benchmarks.scale_values import DYNAMIC, fetch_token, resolve


def wait_until_idle(
    server: psutil.Process, *, below: float = 0.05, window_s: float = 0.5, limit_s: float = 60.0
) -> float:
    """Wait until the server uses under `below` of a core over `window_s` (at most
    `limit_s`); the seconds waited. Some pages start work in the background (the dashboard
    its metric agreement, a panel's board its ranking): that work would otherwise be timed
    as part of whichever route comes next."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        before = server.cpu_times()
        time.sleep(window_s)
        after = server.cpu_times()
        if (after.user + after.system - before.user - before.system) / window_s < below:
            break
    return time.perf_counter() - started


async def time_routes(
    base: str,
    values: dict[str, Any],
    requests: int,
    budget_s: float,
    timeout_s: float,
    server: psutil.Process,
) -> list[Timed]:
    """Each route from one client on one keep-alive connection: a first hit, then up to
    `requests` more, sequentially, while the route has used under `budget_s` seconds. Each
    route starts on an idle server (wait_until_idle)."""
    client, out = TimedClient(base), []
    for route in ROUTES:
        waited = wait_until_idle(server)
        if waited > 1:
            note(f"waited {waited:.1f} s for the server's background work before {route.label}")
            # uvicorn closes a keep-alive connection idle for 5 s: start a fresh one.
            client.drop()
        target, headers = await resolve(route, values, client)
        # A token in the table would be 200 characters of noise: it shows as its name.
        shown = route.target.format(**(values | {name: f"{{{name}}}" for name in DYNAMIC}))
        timed = Timed(route.label, shown, route.status)
        started = time.perf_counter()
        for _ in range(requests + 1):
            answer = await timed_fetch(client, target, headers, timeout_s)
            timed.add(answer)
            if answer.status >= 500:
                # uvicorn drops the connection after an unhandled error, without saying so.
                client.drop()
            if answer.status == 0 or time.perf_counter() - started > budget_s:
                break
        note(f"{route.label}: first {ms(timed.first_s)} ms, p50 {ms(timed.percentile(50))} ms")
        out.append(timed)
    await client.aclose()
    return out


class RssPeak:
    """The server's RSS before, at its peak during (sampled every 10 ms), and after a block."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.before = self.peak = self.after = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def rss(self) -> float:
        return float(self.process.memory_info().rss) / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> RssPeak:
        self.before = self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = self.rss()
        self.peak = max(self.peak, self.after)


async def time_exports(
    base: str, values: dict[str, Any], server: psutil.Process, timeout_s: float
) -> list[ExportResult]:
    out = []
    for route in EXPORTS:
        client = TimedClient(base)
        target, headers = await resolve(route, values, client)
        with RssPeak(server) as rss:
            answer = await timed_fetch(client, target, headers, timeout_s)
        await client.aclose()
        problem = None
        if answer.status != route.status:
            problem = f"HTTP {answer.status}: {answer.body[:300].decode('utf-8', 'replace')}"
        note(f"export {route.label}: {answer.total_s:.2f} s, {answer.size / 2**20:.1f} MiB")
        out.append(
            ExportResult(route.label, target, answer, (rss.before, rss.peak, rss.after), problem)
        )
    return out


async def arena_load(
    base: str, run: int, clients: int, seconds: float, server: psutil.Process
) -> LoadResult:
    """GET /arena?run= from `clients` keep-alive clients (each its own rater cookie) for
    `seconds`: what many raters opening matchups at once cost."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connections = [LoopbackClient(base) for _ in range(clients)]
    deadline = time.perf_counter() + seconds

    async def rater(http: LoopbackClient) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            status, _ = await http.request("GET", f"/arena?run={run}")
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(rater(http) for http in connections))
    wall = time.perf_counter() - start
    for http in connections:
        await http.aclose()
    rss = float(server.memory_info().rss) / 2**20
    bad = {s: n for s, n in statuses.items() if s != 200}
    note(f"arena, {clients} clients: {len(latencies) / wall:.0f} requests/s")
    return LoadResult(
        clients, len(latencies), wall, latencies, rss, f"statuses {bad}" if bad else None
    )


async def vote_cycle(base: str, run: int, votes: int, timeout_s: float) -> list[Timed]:
    """One rater: GET a matchup, POST a vote on it (JSON answer), GET its reveal page."""
    client = TimedClient(base)
    values: dict[str, Any] = {"run": run}
    arena, post, reveal = (
        Timed(VOTE_CYCLE[0], f"/arena?run={run}", 200),
        Timed(VOTE_CYCLE[1], f"/arena/vote?run={run}", 201),
        Timed(VOTE_CYCLE[2], "/arena/reveal/{matchup_id}", 200),
    )
    outcomes = ("left", "right", "tie", "both_bad")
    for i in range(votes):
        start = time.perf_counter()
        token = await fetch_token(client, values)
        arena.add(Answer(200 if token != "none" else 0, 0, time.perf_counter() - start, 0, b""))
        start = time.perf_counter()
        status, body = await asyncio.wait_for(
            client.request(
                "POST",
                f"/arena/vote?run={run}",
                form={"token": token, "outcome": outcomes[i % 4]},
                headers=(JSON_ANSWER,),
            ),
            timeout_s,
        )
        post.add(Answer(status, 0, time.perf_counter() - start, len(body), body))
        if status != 201:
            break
        matchup = json.loads(body)["matchup_id"]
        reveal.add(await timed_fetch(client, f"/arena/reveal/{matchup}", (), timeout_s))
    await client.aclose()
    return [arena, post, reveal]
