"""The database side of a vote alone: store_ballot through the WriteQueue, no HTTP.

On a fresh, migrated copy of a database, one rater is issued `--votes` matchups; then their
checked ballots are stored through app.arena.write_queue.WriteQueue twice, side by side in one
run: with `--in-flight` callers at once (what a loaded server does: the writer commits what
queued up meanwhile as one transaction) and one caller at a time (a commit per vote). It
prints votes/s and the mean batch size of each, and checks that every vote is stored.

This is the ceiling the web app's vote endpoint sits under; benchmarks/vote_load.py
measures the endpoint itself.

    python benchmarks/vote_writer.py [--db data/flux-playground.db] [--votes 3000]
                                     [--in-flight 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, func, select  # noqa: E402

from app.arena.matchups import issue_matchup  # noqa: E402
from app.arena.votes import Ballot, check_ballot, store_ballot  # noqa: E402
from app.arena.write_queue import WriteQueue  # noqa: E402
from app.db import make_engine, session_scope  # noqa: E402
from app.models import Run  # noqa: E402
from benchmarks.vote_load import count_votes, fresh_copy  # noqa: E402

SECRET = "benchmark-secret"


class CountingQueue(WriteQueue):
    """A WriteQueue that remembers its batch sizes."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.batches: list[int] = []

    def _run_batch(self, batch: list[Any]) -> None:
        self.batches.append(len(batch))
        super()._run_batch(batch)


def ballots(database_url: str, n: int) -> list[Ballot]:
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        run = session.get_one(Run, session.scalar(select(func.max(Run.id))))
        rater_id = issue_matchup(session, run, None, SECRET).rater_id
        tokens = [issue_matchup(session, run, rater_id, SECRET).token for _ in range(n)]
    engine.dispose()
    return [
        check_ballot(token=t, rater_id=rater_id, outcome="tie", secret_key=SECRET, max_age_s=3600)
        for t in tokens
    ]


async def store(queue: WriteQueue, todo: list[Ballot], in_flight: int) -> float:
    gate = asyncio.Semaphore(in_flight)

    async def one(ballot: Ballot) -> None:
        async with gate:
            await queue.run(partial(store_ballot, ballot=ballot, votes_per_minute=10**9))

    start = time.perf_counter()
    await asyncio.gather(*(one(ballot) for ballot in todo))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "flux-playground.db")
    parser.add_argument("--votes", type=int, default=3000, help="votes per way of storing")
    parser.add_argument("--in-flight", type=int, default=50)
    args = parser.parse_args()
    if not args.db.exists():
        raise SystemExit(f"{args.db}: no database; run `make demo` first")
    with tempfile.TemporaryDirectory(prefix="vote-writer-") as folder:
        db = fresh_copy(args.db, Path(folder))
        url = f"sqlite:///{db}"
        todo = ballots(url, 2 * args.votes)
        before = count_votes(url)
        engine = make_engine(url)
        rows = []
        for label, part, in_flight in (
            (f"{args.in_flight} in flight (group commit)", todo[: args.votes], args.in_flight),
            ("one at a time", todo[args.votes :], 1),
        ):
            queue = CountingQueue(engine)
            seconds = asyncio.run(store(queue, part, in_flight))
            mean_batch = sum(queue.batches) / len(queue.batches)
            rows.append((label, args.votes / seconds, mean_batch))
        engine.dispose()
        stored = count_votes(url) - before
    print(f"\n{args.votes} votes each way, one rater, a migrated copy of {args.db}\n")
    print("| storing | votes/s | mean batch |")
    print("|---|---:|---:|")
    for label, rate, mean_batch in rows:
        print(f"| {label} | {rate:.0f} | {mean_batch:.1f} |")
    assert stored == 2 * args.votes, f"{stored} votes stored, {2 * args.votes} sent"
    print(f"\nall {2 * args.votes} votes stored")


if __name__ == "__main__":
    main()
