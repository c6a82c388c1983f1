"""Vote throughput on SQLite (one server process) beside PostgreSQL with one and two server
processes, in one run: when does moving to PostgreSQL pay?

Builds the 10×-smaller scale database (benchmarks/scale.py: 12 variants × 164 prompts × 4
seeds, 100,000 votes) on SQLite and on a throwaway PostgreSQL server with its durable
defaults (fsync on), then runs benchmarks/vote_load.py against each: SQLite (one process;
SQLite takes one writer at a time), PostgreSQL with `--workers 1` and `--workers 2`. Prints
each run's table and a summary of the JSON vote phase. Client and server share the machine's
cores: on a 2-core box two server processes compete with the load generator.

    python benchmarks/processes.py [--votes 5000] [--clients 50]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres_server import new_database, postgres_server  # noqa: E402


def run(command: list[str]) -> str:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    python = sys.executable
    load = [python, "benchmarks/vote_load.py", "--votes", str(args.votes)]
    load += ["--clients", str(args.clients)]
    with (
        tempfile.TemporaryDirectory(prefix="processes-") as folder,
        postgres_server(durable=True) as socket_folder,
    ):
        media = Path(folder) / "media"
        sqlite_db = Path(folder) / "small.db"
        postgres_url = new_database(socket_folder)
        for url in (f"sqlite:///{sqlite_db}", postgres_url):
            build = ["benchmarks/scale.py", "build", "--database-url", url, "--media", str(media)]
            run([python, *build, "--scale", "small"])
        outputs = {
            "SQLite, 1 process": run([*load, "--db", str(sqlite_db), "--media", str(media)]),
        }
        for workers in (1, 2):
            several = f"{workers} process{'es' if workers > 1 else ''}"
            target = ["--database-url", postgres_url, "--media", str(media)]
            outputs[f"PostgreSQL, {several}"] = run([*load, *target, "--workers", str(workers)])
    for label, out in outputs.items():
        print(f"\n### {label}\n{out}")
    print("\n### Summary: POST /arena/vote alone, JSON answer\n")
    print("| database | votes/s | vs `/healthz` of the same server | zero lost |")
    print("|---|---:|---|---|")
    for label, out in outputs.items():
        row = next(line for line in out.splitlines() if "JSON answer" in line)
        cells = [c.strip() for c in row.strip("|").split("|")]
        lost = "yes" if re.search(r"zero lost", out) else "NO"
        print(f"| {label} | {cells[1]} | {cells[4]} | {lost} |")


if __name__ == "__main__":
    main()
