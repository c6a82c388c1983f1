"""Latency and throughput of the pages under a bounded concurrent load on loopback.

Starts the app (uvicorn, one process) on a database, then for each endpoint sends
`--requests` GET requests from `--clients` concurrent clients (benchmarks/loopback.py, one
keep-alive connection each) and reports
p50/p99 latency and requests/s, next to `/healthz` of the same server measured in the same
run: the framework's ceiling on this machine. Client and server share the machine's cores,
so compare the ratios, not the absolute figures.

    python benchmarks/web_latency.py [--db data/flux-playground.db] [--media media]
                                     [--clients 8] [--requests 400]

Goal (issue 3): every page within 3x the trivial endpoint's p50 and under 50 ms p50 with the
demo data (`make demo` first).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.web.devserver import serve_in_subprocess  # noqa: E402
from benchmarks.loopback import LoopbackClient  # noqa: E402


async def load(base: str, path: str, clients: int, requests: int) -> tuple[np.ndarray, float]:
    latencies: list[float] = []
    remaining = requests

    async def client(http: LoopbackClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            status, _ = await http.request("GET", path)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                raise SystemExit(f"{path}: HTTP {status}")

    connections = [LoopbackClient(base) for _ in range(clients)]
    await connections[0].request("GET", path)  # warm caches (templates, SQLite pages)
    start = time.perf_counter()
    await asyncio.gather(*(client(http) for http in connections))
    wall = time.perf_counter() - start
    for http in connections:
        await http.aclose()
    return np.asarray(latencies), len(latencies) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "flux-playground.db")
    parser.add_argument("--media", type=Path, default=ROOT / "media")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument(
        "--page-cache-s",
        type=float,
        nargs="+",
        default=[1.0, 0.0],
        help="server page cache settings to measure, one server each (default: 1 and off)",
    )
    args = parser.parse_args()
    if not args.db.exists():
        raise SystemExit(f"{args.db}: no database; run `make demo` first")

    with sqlite3.connect(args.db) as conn:
        run_id, prompt_id = conn.execute(
            "SELECT runs.id, MIN(prompts.id) FROM runs JOIN prompts ON prompts.run_id = runs.id"
            " GROUP BY runs.id ORDER BY runs.id DESC LIMIT 1"
        ).fetchone()
    for cache_s in args.page_cache_s:
        measure(args, run_id, prompt_id, cache_s)


def measure(args: argparse.Namespace, run_id: int, prompt_id: int, cache_s: float) -> None:
    settings = {
        "FLUX_PLAYGROUND_DATABASE_URL": f"sqlite:///{args.db.resolve()}",
        "FLUX_PLAYGROUND_MEDIA_DIR": str(args.media.resolve()),
        "FLUX_PLAYGROUND_PAGE_CACHE_S": str(cache_s),
    }
    with serve_in_subprocess(settings) as base:
        endpoints = {
            "trivial `/healthz`": "/healthz",
            "overview `/`": f"/?run={run_id}",
            "gallery `/prompts`": f"/prompts?run={run_id}",
            "prompt `/prompts/{id}`": f"/prompts/{prompt_id}",
            "dashboard `/dashboard`": f"/dashboard?run={run_id}",
            "API variants": f"/api/v1/runs/{run_id}/variants",
        }
        results = {}
        for label, path in endpoints.items():
            latencies, rps = asyncio.run(load(base, path, args.clients, args.requests))
            results[label] = (np.percentile(latencies, 50), np.percentile(latencies, 99), rps)

    trivial_p50 = results["trivial `/healthz`"][0]
    print(
        f"\npage cache {cache_s:g} s: {args.clients} concurrent clients, "
        f"{args.requests} requests per endpoint, run {run_id} of {args.db}\n"
    )
    print("| endpoint | p50 | p99 | requests/s | p50 vs trivial |")
    print("|---|---|---|---|---|")
    for label, (p50, p99, rps) in results.items():
        print(
            f"| {label} | {p50 * 1000:.1f} ms | {p99 * 1000:.1f} ms | {rps:.0f} | "
            f"{p50 / trivial_p50:.1f}× |"
        )


if __name__ == "__main__":
    main()
