"""Scale benchmark (issue 11): every request costs what its page shows, not what the database
holds.

A page that reads every image or vote looks fine on the demo (5 variants × 64 prompts, no
votes) and falls over on a real deployment. This script builds a database of a real
deployment's size and times every route on it, so a cost that grows with the database shows
as a ratio between two sizes.

    python benchmarks/scale.py build --database-url URL --media DIR [--scale full|small|tiny]
    python benchmarks/scale.py measure --database-url URL --media DIR [--requests 20]
    python benchmarks/scale.py compare --small URL --full URL --media DIR [--requests 20]

`build` runs the app's migrations on URL (SQLite `sqlite:////abs/path.db` or PostgreSQL
`postgresql+psycopg://...`), then bulk-inserts, with SQLAlchemy Core, a synthetic database
shaped like what the worker and the arena write. `--scale full`: 10 runs; the latest has 12
variants × the 1,632 PartiPrompts × 4 seeds (78,336 done jobs and generations, ~274k
generation_metrics rows, two timing summaries per variant), the 9 older ones 4 variants × 64
prompts × 2 seeds; on the latest run's arena 20,000 raters from ~5,000 IPv4 networks (5% of
them in 4 panels, a few hundred flagged) cast 1,000,000 votes over 30 days, each with its
answered matchup, outcomes from a Bradley–Terry model with ~10% ties and ~3% attention checks,
and a heavy-tailed number of votes per rater. `--scale small` is 10× smaller everywhere,
`--scale tiny` is for the smoke test. Media: one small PNG (and its thumbnail) per run and
variant, which every generation of that variant points at: only `/media` and the arena's
re-encoded images read files. The pixels depend only on the run id and the variant, so builds
of every scale share one media folder. On the 2-core dev box the full build takes ~45 s on
SQLite (680 MiB) and ~2 min on PostgreSQL; `--replace` deletes an SQLite file first, and a
database that has runs already is refused.

`measure` starts the app (uvicorn, one process, page cache off, arena limits raised) on the
database and reports, as Markdown tables:

1. every page and API route (the ROUTES table of scale_routes.py) from one client on one
   keep-alive connection: the first hit, then `--requests` sequential requests (at most
   `--route-budget-s` seconds of them), p50 and p90;
2. the exports: time to the first byte, total time, bytes, and the server's RSS before,
   at its peak during, and after;
3. GET `/arena` from 16 concurrent keep-alive clients against 1, `--arena-seconds` each:
   requests/s, p50 and p99, the server's RSS at the end; and one rater's cycle of GET
   `/arena`, POST `/arena/vote` and GET `/arena/reveal/{id}` (this writes `--requests` votes
   into the database);
4. `flux-playground leaderboard RUN` against the same database, the server stopped: wall
   time and peak RSS.

A status other than the route's own (200, or 204 for the leaderboard's unchanged poll) fails
the run: the tables are printed, then the failures, and the exit status is 1. The output
also lists the app's GET routes that no table here times (a new route belongs in ROUTES).

Client and server share this machine's cores: compare sizes and routes with each other, not
with figures from another machine. `compare` measures both databases, one after the other,
and adds a growth table (full p50 / small p50 per route).

Goal (issue 11): no route's p50 grows with the database (a ratio near 1× between the small
and the full build) but for the exports, which are as big as what they export and must
stream it in flat memory.

This file is the command line; the work is in the `benchmarks/scale_*.py` modules: the shape
of the deployment (scale_shape), the build (scale_build: scale_builder, scale_runs,
scale_arena), and the measurement (scale_measure: scale_routes, scale_values, scale_client,
scale_timing, scale_results, scale_report).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.scale_build import build
from benchmarks.scale_measure import measure
from benchmarks.scale_report import fail_on_problems, print_growth, print_report
from benchmarks.scale_shape import SCALES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="migrate URL and fill it with a synthetic deployment")
    b.add_argument("--database-url", required=True)
    b.add_argument("--media", type=Path, required=True)
    b.add_argument("--scale", choices=sorted(SCALES), default="full")
    b.add_argument("--seed", type=int, default=0, help="seeds every random draw")
    b.add_argument("--replace", action="store_true", help="SQLite: delete the database file first")
    for name in ("measure", "compare"):
        m = commands.add_parser(
            name, help="time every route" if name == "measure" else "measure two sizes"
        )
        if name == "measure":
            m.add_argument("--database-url", required=True)
        else:
            m.add_argument("--small", required=True, help="database URL of the small build")
            m.add_argument("--full", required=True, help="database URL of the full build")
        m.add_argument("--media", type=Path, required=True)
        m.add_argument("--requests", type=int, default=20, help="per route, after the first hit")
        m.add_argument(
            "--route-budget-s", type=float, default=30.0, help="stop repeating a route after this"
        )
        m.add_argument("--timeout-s", type=float, default=600.0, help="for any one request")
        m.add_argument("--arena-clients", type=int, default=16)
        m.add_argument("--arena-seconds", type=float, default=10.0, help="per arena load")
    args = parser.parse_args()
    if args.command == "build":
        build(args.database_url, args.media, args.scale, args.seed, args.replace)
    elif args.command == "measure":
        report = measure(args.database_url, args.media, args)
        print_report(report)
        fail_on_problems([report])
    else:
        small = measure(args.small, args.media, args)
        full = measure(args.full, args.media, args)
        print_report(small)
        print_report(full)
        print_growth(small, full)
        fail_on_problems([small, full])


if __name__ == "__main__":
    main()
