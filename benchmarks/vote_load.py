"""Arena vote throughput under many concurrent raters on loopback, and no vote lost.

Starts the app (uvicorn, one process) on a fresh, migrated copy of a database, with a per-rater
vote limit far above a person's (the load is many machine clients, not one rater), and
measures four phases on that one server, each with `--clients` concurrent clients that each
keep their own connection and rater cookie:

1. cycle: each client loops GET `/arena` and POST `/arena/vote` (a random outcome) as the
   arena page's htmx does (HX-Request: the stage fragment, then the reveal fragment), until
   `--votes` votes were sent in all (or `--max-seconds` passed). What raters do.
2. vote alone, JSON: each client first takes its share of `--votes` matchups (untimed), then
   all POST their votes at once asking for JSON (201 with the vote's id): the vote
   endpoint's own throughput, the figure the goal below is about.
3. vote alone, reveal fragment: the same, answered with the reveal fragment the page shows
   (names, latencies, images), which is rendered from the ORM after the vote is committed.
4. `--votes` GET `/healthz` requests, and as many of an async no-op route the benchmark adds
   to the app it serves (benchmarks/noop_app.py): the trivial endpoints. `/healthz` is a sync
   route, so it pays the thread-pool hop every sync page pays; the no-op is the framework's
   own floor (uvicorn with h11, FastAPI, the app's middleware).

Phases 2-4 run in `--rounds` rounds (2, 3, 4, 2, 3, 4, ...), each with its share of the
requests, and each round's ratio compares phases measured seconds apart: this machine is
shared, and one block of /healthz measured a minute after the votes moved the ratio by ±20%.

Afterwards the script asserts that no vote was lost: every vote id a 2xx answer returned
(JSON `vote_id`, or the fragment's `data-vote-id`) is in the database, and the database
gained exactly the 2xx votes. Client and server share the machine's cores.

The clients speak HTTP/1.1 over asyncio streams directly (benchmarks/loopback.py), not through
httpx: on this 2-core machine httpx spent more CPU per request than the server's `/healthz`,
so the load generator, not the server, set both rates (`/healthz` 1058 req/s through httpx
against 1640 with this client, same server, same minute).

    python benchmarks/vote_load.py [--db data/flux-playground.db] [--media media]
                                   [--clients 50] [--votes 5000] [--max-seconds 300]
                                   [--rounds 5]

Goal (issue 4): vote throughput at least 50% of the trivial endpoint's requests/s on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select, text  # noqa: E402

from app.db import make_engine  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import Vote  # noqa: E402
from app.web.devserver import serve_in_subprocess  # noqa: E402
from benchmarks.loopback import LoopbackClient  # noqa: E402
from benchmarks.noop_app import FACTORY, NOOP_PATH  # noqa: E402

TOKEN_INPUT = re.compile(r"<input\b[^>]*\bname=\"token\"[^>]*>")
VALUE = re.compile(r"\bvalue=\"([^\"]+)\"")
OUTCOMES = ("left", "right", "tie", "both_bad")
JSON = "Accept: application/json"
HTMX = "HX-Request: true"
# The trivial endpoints votes are compared with: the app's /healthz (a sync route, through
# the thread pool) and an async no-op (benchmarks/noop_app.py), in that order.
TRIVIAL = ("/healthz", NOOP_PATH)
VOTE_ID = re.compile(r"\bdata-vote-id=\"(\d+)\"")
Answer = Literal["json", "htmx"]


@dataclass
class Tally:
    sent: int = 0
    vote_ids: list[int] = field(default_factory=list)
    vote_latencies: list[float] = field(default_factory=list)
    arena_latencies: list[float] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    # A POST that got no answer may or may not have stored its vote.
    unanswered: int = 0
    wall_s: float = 0.0

    @property
    def votes_per_s(self) -> float:
        return len(self.vote_ids) / self.wall_s

    def absorb(self, other: Tally) -> None:
        """Add another round's counts, latencies and time to this one."""
        self.sent += other.sent
        self.vote_ids += other.vote_ids
        self.vote_latencies += other.vote_latencies
        self.arena_latencies += other.arena_latencies
        self.refused += other.refused
        self.unanswered += other.unanswered
        self.wall_s += other.wall_s


@dataclass
class Trivial:
    requests: int = 0
    seconds: float = 0.0
    json_ratios: list[float] = field(default_factory=list)
    htmx_ratios: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass
class Results:
    cycle: Tally
    post_json: Tally
    post_htmx: Tally
    # Per trivial endpoint: all rounds' requests over all rounds' time, and per round the
    # votes/s of each vote phase over that endpoint's requests/s in the same round.
    trivial: dict[str, Trivial]

    @property
    def phases(self) -> tuple[Tally, ...]:
        return self.cycle, self.post_json, self.post_htmx


def fresh_copy(source: Path, folder: Path) -> Path:
    """A consistent copy of the database (the backup API), migrated to the current schema."""
    target = folder / "vote-load.db"
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    upgrade(f"sqlite:///{target}")
    return target


def count_votes(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM votes")).scalar_one())
    finally:
        engine.dispose()


def missing_votes(url: str, ids: list[int]) -> int:
    """How many of the vote ids answered 2xx are not in the database."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            found: set[int] = set()
            for start in range(0, len(ids), 10_000):
                chunk = ids[start : start + 10_000]
                found |= set(
                    conn.execute(select(Vote.id).where(Vote.id.in_(chunk))).scalars().all()
                )
            return len(set(ids) - found)
    finally:
        engine.dispose()


async def fetch_token(http: LoopbackClient, run_id: int, tally: Tally) -> str | None:
    """GET the next matchup as the arena page's htmx does (the stage fragment)."""
    start = time.perf_counter()
    status, page = await http.request("GET", f"/arena?run={run_id}", headers=(HTMX,))
    tally.arena_latencies.append(time.perf_counter() - start)
    tag = TOKEN_INPUT.search(page.decode())
    token = VALUE.search(tag.group(0)) if tag else None
    if status != 200 or token is None:
        tally.refused[f"GET /arena {status}"] += 1
        return None
    return token.group(1)


async def post_vote(
    http: LoopbackClient, run_id: int, token: str, tally: Tally, rng: random.Random, answer: Answer
) -> None:
    """POST one vote, asking for JSON (an API client) or the reveal fragment (the page)."""
    start = time.perf_counter()
    form = {"token": token, "outcome": rng.choice(OUTCOMES)}
    headers = (JSON,) if answer == "json" else (HTMX,)
    try:
        status, body = await http.request(
            "POST", f"/arena/vote?run={run_id}", form=form, headers=headers
        )
    except (OSError, asyncio.IncompleteReadError):
        tally.unanswered += 1
        return
    tally.vote_latencies.append(time.perf_counter() - start)
    if 200 <= status < 300:
        tally.vote_ids.append(vote_id(body, answer))
    else:
        tally.refused[f"POST /arena/vote {status}"] += 1


def vote_id(body: bytes, answer: Answer) -> int:
    if answer == "json":
        return int(json.loads(body)["vote_id"])
    found = VOTE_ID.search(body.decode())
    if found is None:
        raise SystemExit("a 2xx reveal fragment without data-vote-id")
    return int(found.group(1))


async def cycle_load(
    base: str, run_id: int, clients: int, votes: int, max_seconds: float, seed: int
) -> Tally:
    """Each rater: GET /arena, POST its vote, again, until `votes` were sent in all."""
    tally = Tally()
    deadline = time.monotonic() + max_seconds

    async def rater(rng: random.Random) -> None:
        http = LoopbackClient(base)
        try:
            while tally.sent < votes and time.monotonic() < deadline:
                tally.sent += 1
                token = await fetch_token(http, run_id, tally)
                if token is not None:
                    await post_vote(http, run_id, token, tally, rng, "htmx")
        finally:
            await http.aclose()

    start = time.perf_counter()
    await asyncio.gather(*(rater(random.Random(seed + i)) for i in range(clients)))
    tally.wall_s = time.perf_counter() - start
    return tally


async def post_only_load(
    base: str, run_id: int, clients: int, votes: int, seed: int, answer: Answer
) -> Tally:
    """The vote endpoint alone: every rater first takes its share of matchups (untimed),
    then all of them POST their votes at once (timed)."""
    tally = Tally()
    raters = [LoopbackClient(base) for _ in range(clients)]
    try:
        shares = [votes // clients + (i < votes % clients) for i in range(clients)]

        async def take(http: LoopbackClient, n: int) -> list[str]:
            tokens = [await fetch_token(http, run_id, tally) for _ in range(n)]
            return [token for token in tokens if token is not None]

        tokens = await asyncio.gather(*(take(h, n) for h, n in zip(raters, shares, strict=True)))
        tally.sent = sum(map(len, tokens))

        async def vote_all(http: LoopbackClient, mine: list[str], rng: random.Random) -> None:
            for token in mine:
                await post_vote(http, run_id, token, tally, rng, answer)

        start = time.perf_counter()
        await asyncio.gather(
            *(
                vote_all(http, mine, random.Random(seed + 10_000 + i))
                for i, (http, mine) in enumerate(zip(raters, tokens, strict=True))
            )
        )
        tally.wall_s = time.perf_counter() - start
    finally:
        for http in raters:
            await http.aclose()
    return tally


async def trivial_load(base: str, clients: int, requests: int, path: str) -> tuple[int, float]:
    """GET `path` `requests` times over as many connections as there were raters: how many
    were sent and in how many seconds."""
    remaining = requests

    async def one(http: LoopbackClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            if (await http.request("GET", path))[0] != 200:
                raise SystemExit(f"{path}: not 200")

    raters = [LoopbackClient(base) for _ in range(clients)]
    start = time.perf_counter()
    await asyncio.gather(*(one(http) for http in raters))
    seconds = time.perf_counter() - start
    for http in raters:
        await http.aclose()
    return requests, seconds


async def measure(args: argparse.Namespace, base: str, run_id: int) -> Results:
    """The cycle in one go; then `--rounds` rounds of (votes alone as JSON, as fragments,
    /healthz, the async no-op), each a share of `--votes`: on a shared, noisy machine each
    ratio compares phases measured seconds apart, and the report gives the rounds' median
    and range."""
    cycle = await cycle_load(base, run_id, args.clients, args.votes, args.max_seconds, args.seed)
    post_json, post_htmx = Tally(), Tally()
    trivial = {path: Trivial() for path in TRIVIAL}
    for n in range(args.rounds):
        share = args.votes // args.rounds + (n < args.votes % args.rounds)
        seed = args.seed + 100_000 * (n + 1)
        json_round = await post_only_load(base, run_id, args.clients, share, seed, "json")
        htmx_round = await post_only_load(base, run_id, args.clients, share, seed + 1, "htmx")
        for path, baseline in trivial.items():
            requests, seconds = await trivial_load(base, args.clients, share, path)
            baseline.json_ratios.append(json_round.votes_per_s * seconds / requests)
            baseline.htmx_ratios.append(htmx_round.votes_per_s * seconds / requests)
            baseline.requests += requests
            baseline.seconds += seconds
        post_json.absorb(json_round)
        post_htmx.absorb(htmx_round)
    return Results(cycle, post_json, post_htmx, trivial)


def server_settings(url: str, media: Path) -> dict[str, str]:
    return {
        "FLUX_PLAYGROUND_DATABASE_URL": url,
        "FLUX_PLAYGROUND_MEDIA_DIR": str(media.resolve()),
        "FLUX_PLAYGROUND_SECRET_KEY": secrets.token_urlsafe(32),
        # Many machine clients, not a person: the per-rater limit must not shape the load.
        "FLUX_PLAYGROUND_ARENA_VOTES_PER_MINUTE": str(10**9),
        # ...nor the per-network ones: every client here is 127.0.0.1.
        "FLUX_PLAYGROUND_ARENA_NETWORK_VOTES_PER_MINUTE": str(10**9),
        "FLUX_PLAYGROUND_ARENA_NETWORK_NEW_RATERS_PER_HOUR": str(10**9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "flux-playground.db")
    parser.add_argument("--media", type=Path, default=ROOT / "media")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--votes", type=int, default=5000, help="votes to send in all")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop sending after")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random outcomes")
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternations of vote and /healthz phases"
    )
    parser.add_argument(
        "--database-url",
        help="measure on this database (e.g. PostgreSQL) instead of a copy of --db; "
        "its votes are added to it",
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL only)")
    args = parser.parse_args()
    args.media.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="vote-load-") as folder:
        if args.database_url:
            url = args.database_url
            upgrade(url)
        else:
            if not args.db.exists():
                raise SystemExit(f"{args.db}: no database; run `make demo` first")
            url = f"sqlite:///{fresh_copy(args.db, Path(folder))}"
        if args.workers > 1 and url.startswith("sqlite"):
            raise SystemExit("--workers > 1 needs PostgreSQL (--database-url)")
        engine = make_engine(url)
        with engine.connect() as conn:
            run_id = conn.execute(text("SELECT MAX(id) FROM runs")).scalar_one()
        engine.dispose()
        with serve_in_subprocess(
            server_settings(url, args.media), factory=FACTORY, workers=args.workers, timeout_s=60
        ) as base:
            # Warm up (templates, database pages) with a few votes that are not measured.
            warm = asyncio.run(cycle_load(base, run_id, 2, 10, 30, args.seed - 1000))
            if not warm.vote_ids:
                raise SystemExit(f"warm-up votes refused: {dict(warm.refused)}")
            before = count_votes(url)
            results = asyncio.run(measure(args, base, run_id))
        stored = count_votes(url) - before
        ids = [i for tally in results.phases for i in tally.vote_ids]
        missing = missing_votes(url, ids)
    report(args, run_id, results, stored, missing)


def ms(latencies: list[float]) -> str:
    p50, p99 = np.percentile(np.asarray(latencies), [50, 99]) * 1000
    return f"{p50:.1f} ms / {p99:.1f} ms"


def spread(ratios: list[float]) -> str:
    return f"**{statistics.median(ratios):.0%}** ({min(ratios):.0%}–{max(ratios):.0%})"


def report(
    args: argparse.Namespace, run_id: int, results: Results, stored: int, missing: int
) -> None:
    healthz, noop = (results.trivial[path] for path in TRIVIAL)
    where = (
        f"{args.database_url.split('@')[-1]} ({args.workers} server process"
        f"{'es' if args.workers > 1 else ''})"
        if args.database_url
        else f"a migrated copy of {args.db}"
    )
    print(
        f"\n{args.clients} concurrent raters, {args.votes} votes per phase, run {run_id} "
        f"of {where}\n"
    )
    print(
        "| phase | votes/s | vote POST p50 / p99 | arena GET p50 / p99 "
        "| vs `/healthz` | vs async no-op |"
    )
    print("|---|---|---|---|---|---|")
    cycle = results.cycle
    print(
        f"| GET /arena + POST /arena/vote (htmx fragments) | {cycle.votes_per_s:.0f} | "
        f"{ms(cycle.vote_latencies)} | {ms(cycle.arena_latencies)} | "
        f"{cycle.votes_per_s / healthz.rps:.0%} (all rounds) | "
        f"{cycle.votes_per_s / noop.rps:.0%} (all rounds) |"
    )
    for label, tally, answer in (
        ("POST /arena/vote alone, JSON answer", results.post_json, "json"),
        ("POST /arena/vote alone, reveal fragment", results.post_htmx, "htmx"),
    ):
        versus = [
            spread(baseline.json_ratios if answer == "json" else baseline.htmx_ratios)
            for baseline in (healthz, noop)
        ]
        print(
            f"| {label} | {tally.votes_per_s:.0f} | {ms(tally.vote_latencies)} | — | "
            f"{versus[0]} | {versus[1]} |"
        )
    print(f"| trivial `/healthz`, sync (requests/s) | {healthz.rps:.0f} | | | 100% | |")
    print(f"| async no-op `{NOOP_PATH}` (requests/s) | {noop.rps:.0f} | | | | 100% |")
    print("\nratios: median of the rounds (range); the cycle's over all rounds' trivial requests/s")
    ok = sum(len(tally.vote_ids) for tally in results.phases)
    unanswered = sum(tally.unanswered for tally in results.phases)
    refused = sum((tally.refused for tally in results.phases), Counter[str]())
    print("goal: votes/s ≥ 50% of the trivial endpoint's requests/s (see docs/benchmarks.md)")
    print(f"votes answered 2xx: {ok}; votes stored in the database: {stored}")
    print(f"refused: {dict(refused) or 'none'}; POSTs without an answer: {unanswered}")
    # DESIGN.md rule 5: a vote that got a 2xx is in the database (and a refused one is not).
    assert missing == 0, f"{missing} votes answered 2xx are not in the database"
    assert ok <= stored <= ok + unanswered, f"{ok} votes answered 2xx but {stored} stored"
    print(f"zero lost: every one of the {ok} votes answered 2xx is in the database")


if __name__ == "__main__":
    main()
