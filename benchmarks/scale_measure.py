"""`scale.py measure` on one database: start the app on it, run the timing loops, wait for the
stored leaderboard to count the new votes, then time the CLI with the server stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psutil
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db import make_engine
from app.migrate import upgrade
from app.web.devserver import serve_in_subprocess
from benchmarks.scale_build import database_size
from benchmarks.scale_report import note
from benchmarks.scale_results import CliResult, Report
from benchmarks.scale_routes import ADMIN_TOKEN, unmeasured_routes
from benchmarks.scale_shape import ROOT
from benchmarks.scale_timing import arena_load, time_exports, time_routes, vote_cycle
from benchmarks.scale_values import discover


def time_cli(url: str, run: int, *, cold: bool = False) -> CliResult:
    """`flux-playground leaderboard RUN`: wall time and the child's own peak RSS (wait4).
    `cold`: with the stored leaderboards deleted first, so the CLI computes it."""
    if cold:
        from app.models import LeaderboardSnapshot

        engine = make_engine(url)
        with Session(engine) as session:
            session.execute(delete(LeaderboardSnapshot))
            session.commit()
        engine.dispose()
    script = Path(sys.executable).with_name("flux-playground")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]
    command += ["leaderboard", str(run)]
    log = io.BytesIO()
    start = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        child = subprocess.Popen(
            command,
            stdout=devnull,
            stderr=subprocess.PIPE,
            env=os.environ | {"FLUX_PLAYGROUND_DATABASE_URL": url},
            cwd=ROOT,
        )
        assert child.stderr is not None
        log.write(child.stderr.read())
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    shown = f"flux-playground leaderboard {run}" + (" (nothing stored: computes)" if cold else "")
    tail = log.getvalue().decode("utf-8", "replace").strip()[-500:]
    # ru_maxrss is in KiB on Linux.
    return CliResult(shown, wall, usage.ru_maxrss / 1024, child.returncode, tail)


def server_settings(url: str, media: Path) -> dict[str, str]:
    return {
        "FLUX_PLAYGROUND_DATABASE_URL": url,
        "FLUX_PLAYGROUND_MEDIA_DIR": str(media.resolve()),
        # Every request does its work: a cached page would time the cache, not the route.
        "FLUX_PLAYGROUND_PAGE_CACHE_S": "0",
        "FLUX_PLAYGROUND_ADMIN_TOKEN": ADMIN_TOKEN,
        "FLUX_PLAYGROUND_SECRET_KEY": secrets.token_urlsafe(32),
        # Machine clients on one address, not people: no arena limit may shape the load.
        "FLUX_PLAYGROUND_ARENA_VOTES_PER_MINUTE": str(10**9),
        "FLUX_PLAYGROUND_ARENA_NETWORK_VOTES_PER_MINUTE": str(10**9),
        "FLUX_PLAYGROUND_ARENA_NETWORK_NEW_RATERS_PER_HOUR": str(10**9),
    }


def server_process(base: str) -> psutil.Process:
    port = str(urlsplit(base).port)
    for child in psutil.Process().children():
        if port in child.cmdline():
            return child
    raise RuntimeError(f"no server process listening on {base}")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {memory:.0f} GiB"


def measure(url: str, media: Path, args: argparse.Namespace) -> Report:
    # As `flux-playground serve` does: a database built before the app's latest migration is
    # brought up to date (new tables, new indexes) rather than measured without them.
    upgrade(url)
    values = discover(url)
    header = [
        f"command: `{' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}`",
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {machine()}",
        f"database: {database_size(url)} ({values['counts']})",
        f"{args.requests} requests per route after the first hit (fewer past "
        f"{args.route_budget_s:g} s), one client, keep-alive, page cache off",
    ]
    note(f"measuring {url}: {values['counts']}")
    with serve_in_subprocess(server_settings(url, media), timeout_s=60) as base:
        server = server_process(base)
        routes = asyncio.run(
            time_routes(base, values, args.requests, args.route_budget_s, args.timeout_s, server)
        )
        exports = asyncio.run(time_exports(base, values, server, args.timeout_s))
        arena = [
            asyncio.run(arena_load(base, values["run"], clients, args.arena_seconds, server))
            for clients in (1, args.arena_clients)
        ]
        votes = asyncio.run(vote_cycle(base, values["run"], args.requests, args.timeout_s))
        # The server recomputes and stores the leaderboard after votes, off the request
        # path: how long until the vote cycle's last vote is in the stored one.
        refresh_s = wait_for_stored_leaderboard(url, values["run"], args.timeout_s)
    header.append(
        "after the vote cycle's last vote, the stored leaderboard counted it within "
        + (f"{refresh_s:.1f} s" if refresh_s is not None else "the timeout: NOT reached")
    )
    # With the server stopped: the CLI has the cores to itself, as on a CI runner. First as
    # a user finds it (the server's stored result is current), then cold (none stored).
    cli = [time_cli(url, values["run"]), time_cli(url, values["run"], cold=True)]
    return Report(url, header, routes, exports, arena, votes, cli, unmeasured_routes())


def wait_for_stored_leaderboard(url: str, run_id: int, timeout_s: float) -> float | None:
    """Seconds until the stored leaderboard of the run's open board is the current one."""
    from app.arena.leaderboard_cache import leaderboard_key
    from app.arena.leaderboard_snapshots import snapshot_version
    from app.models import LeaderboardSnapshot, Run

    engine = make_engine(url)
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < timeout_s:
            with Session(engine) as session:
                key = leaderboard_key(session, session.get_one(Run, run_id))
                stored = session.scalar(
                    select(LeaderboardSnapshot.version).where(
                        LeaderboardSnapshot.run_id == run_id,
                        LeaderboardSnapshot.panel == 0,
                        LeaderboardSnapshot.rounds == key.rounds,
                    )
                )
            if stored == snapshot_version(key):
                return time.perf_counter() - start
            time.sleep(0.1)
        return None
    finally:
        engine.dispose()
