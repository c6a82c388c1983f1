"""app/arena/write_queue.py on a real SQLite file: group commit, failure isolation, the idle writer
thread, callers that leave. Each test drives the queue from run_in_own_thread(); the writer is held
on a threading.Event (never a sleep) where a test needs items to land in one batch."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import IntegrityError

from app.arena.write_queue import WriteQueue
from app.db import make_engine

T = TypeVar("T")

WRITER_NAME = "flux-playground-writer"
# Small, so the writer threads of these tests do not outlive them for long.
IDLE_EXIT_S = 0.2
WAIT_S = 5.0  # an upper bound on waits that only time out when a test already failed

# A writer thread that dies of an exception fails the test it happened in.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


@dataclass(frozen=True)
class Db:
    engine: Engine
    path: Path


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Db]:
    path = tmp_path / "q.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    yield Db(engine, path)
    engine.dispose()


def stored(path: Path) -> list[str]:
    """The values in t, in insertion order, read by a plain sqlite3 connection of its own."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [v for (v,) in conn.execute("SELECT v FROM t ORDER BY id")]


def insert(v: str) -> Callable[[Connection], int]:
    def work(conn: Connection) -> int:
        row_id = conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": v}).lastrowid
        assert isinstance(row_id, int)
        return row_id

    return work


def count_events(engine: Engine, name: str) -> list[int]:
    """A list that grows by one on each `name` event ("commit", "rollback") of the engine."""
    seen: list[int] = []

    def listener(*_args: Any) -> None:
        seen.append(1)

    event.listen(engine, name, listener)
    return seen


@dataclass
class Gate:
    """A work item that holds the writer thread until the test releases it, so that the items
    queued meanwhile are all waiting when the next batch is taken."""

    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def work(self, _conn: Connection) -> str:
        self.started.set()
        assert self.release.wait(WAIT_S), "the test never released the writer"
        return "gate"

    async def hold(self, q: WriteQueue) -> asyncio.Task[str]:
        """Submit the gate and return once the writer thread is inside it."""
        task = asyncio.create_task(q.run(self.work))
        assert await asyncio.to_thread(self.started.wait, WAIT_S), "the writer never started"
        return task


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.release.set()  # never leave a writer thread blocked (holding serialized_writes)


def run_in_own_thread(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run() on a thread of its own: the browser tests' session-scoped Playwright keeps
    an event loop running on the main thread, where asyncio.run() refuses to start."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def within(awaitable: Awaitable[T]) -> T:
    """Await with an upper bound: a writer that is gone fails the test instead of hanging it."""
    return await asyncio.wait_for(awaitable, WAIT_S)


def loop_errors() -> list[dict[str, Any]]:
    """What the running loop's exception handler gets (a callback that raised, say)."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


async def queue_all(q: WriteQueue, works: list[Callable[[Connection], T]]) -> list[asyncio.Task[T]]:
    """Start one task per work item and return once every item is in the queue.

    run() puts its item in the queue before its first await, and the tasks created here run
    their first step, in order, before this coroutine resumes from sleep(0)."""
    tasks = [asyncio.create_task(q.run(work)) for work in works]
    await asyncio.sleep(0)
    return tasks


async def one_batch(
    q: WriteQueue, gate: Gate, works: list[Callable[[Connection], Any]]
) -> list[Any]:
    """Run `works` as one batch (queued behind the gate): each result, or its exception."""
    held = await gate.hold(q)
    tasks = await queue_all(q, works)
    gate.release.set()
    await held
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_write_queue_returns_the_result_after_its_write_is_committed(db: Db) -> None:
    q = WriteQueue(db.engine, idle_exit_s=IDLE_EXIT_S)

    async def main() -> tuple[int, list[str]]:
        row_id = await q.run(insert("x"))
        # Read by another connection at once, on the caller's side: the COMMIT came first.
        return row_id, stored(db.path)

    row_id, seen_by_caller = run_in_own_thread(within(main()))
    assert seen_by_caller == ["x"]
    with contextlib.closing(sqlite3.connect(db.path)) as conn:
        assert conn.execute("SELECT id, v FROM t").fetchall() == [(row_id, "x")]


def test_write_queue_commits_queued_items_together(db: Db, gate: Gate) -> None:
    """199 items that queue while the writer is busy take 2 COMMITs (max_batch 128), not 199,
    are stored in the order they were submitted, and every caller sees its own row on return."""
    q = WriteQueue(db.engine, idle_exit_s=IDLE_EXIT_S)
    commits = count_events(db.engine, "commit")
    values = [f"v{i:03d}" for i in range(199)]

    async def await_and_read(task: asyncio.Task[int], v: str) -> bool:
        await task
        return v in stored(db.path)

    async def main() -> list[bool]:
        held = await gate.hold(q)
        tasks = await queue_all(q, [insert(v) for v in values])
        assert commits == []  # nothing committed while the writer is held
        gate.release.set()
        assert await held == "gate"
        return await asyncio.gather(
            *(await_and_read(t, v) for t, v in zip(tasks, values, strict=True))
        )

    visible_on_return = run_in_own_thread(within(main()))
    assert all(visible_on_return)
    assert stored(db.path) == values
    # The gate's own batch, then 128 + 71.
    assert len(commits) == 3


def test_write_queue_batches_at_most_max_batch_items(db: Db, gate: Gate) -> None:
    q = WriteQueue(db.engine, max_batch=50, idle_exit_s=IDLE_EXIT_S)
    ran: list[str] = []
    batch_sizes: list[int] = []

    @event.listens_for(db.engine, "commit")
    def _on_commit(_conn: Connection) -> None:
        batch_sizes.append(len(ran) - sum(batch_sizes))

    def work(v: str) -> Callable[[Connection], int]:
        def run(conn: Connection) -> int:
            ran.append(v)
            return insert(v)(conn)

        return run

    async def main() -> None:
        held = await gate.hold(q)
        tasks = await queue_all(q, [work(f"v{i}") for i in range(199)])
        gate.release.set()
        await asyncio.gather(held, *tasks)

    run_in_own_thread(within(main()))
    assert batch_sizes == [0, 50, 50, 50, 49]  # the gate inserts nothing
    assert len(stored(db.path)) == 199


def test_write_queue_failing_item_is_rolled_back_alone(db: Db, gate: Gate) -> None:
    """In one batch A, B, C: B writes and then raises. B's caller gets the error and nothing
    of B is kept; A, which ran before B and was rolled back with it, runs again and is kept
    once; C is kept."""
    q = WriteQueue(db.engine, idle_exit_s=IDLE_EXIT_S)
    rollbacks = count_events(db.engine, "rollback")
    commits = count_events(db.engine, "commit")
    runs = {"a": 0, "b": 0, "c": 0}

    def a(conn: Connection) -> str:
        runs["a"] += 1
        insert("a")(conn)
        return "A"

    def b(conn: Connection) -> str:
        runs["b"] += 1
        insert("b")(conn)
        raise ValueError("b failed")

    def c(conn: Connection) -> str:
        runs["c"] += 1
        insert("c")(conn)
        return "C"

    async def main() -> list[Any]:
        return await one_batch(q, gate, [a, b, c])

    result_a, error_b, result_c = run_in_own_thread(within(main()))
    assert result_a == "A"
    assert result_c == "C"
    assert isinstance(error_b, ValueError)
    assert str(error_b) == "b failed"
    assert stored(db.path) == ["a", "c"]
    assert runs == {"a": 2, "b": 1, "c": 1}
    assert len(rollbacks) == 1
    assert len(commits) == 2  # the gate's batch, then A (again) and C


class Refused(Exception):
    """Raised by the test's work items only before they write anything."""


def test_write_queue_declared_refusal_goes_to_its_caller_without_a_rollback(
    db: Db, gate: Gate
) -> None:
    """In one batch A, B, C, where B raises a declared refusal before writing: B's caller gets
    it, A and C are kept, and nothing is rolled back or run twice (a flood of refused votes
    must not make the writer redo everyone else's)."""
    q = WriteQueue(db.engine, refusals=(Refused,), idle_exit_s=IDLE_EXIT_S)
    rollbacks = count_events(db.engine, "rollback")
    commits = count_events(db.engine, "commit")
    runs = {"a": 0, "b": 0, "c": 0}

    def a(conn: Connection) -> int:
        runs["a"] += 1
        return insert("a")(conn)

    def b(_conn: Connection) -> int:
        runs["b"] += 1
        raise Refused("b refused")

    def c(conn: Connection) -> int:
        runs["c"] += 1
        return insert("c")(conn)

    async def main() -> list[Any]:
        return await one_batch(q, gate, [a, b, c])

    id_a, error_b, id_c = run_in_own_thread(within(main()))
    assert isinstance(id_a, int) and isinstance(id_c, int)
    assert isinstance(error_b, Refused) and str(error_b) == "b refused"
    assert stored(db.path) == ["a", "c"]
    assert runs == {"a": 1, "b": 1, "c": 1}
    assert len(rollbacks) == 0
    assert len(commits) == 2  # the gate's batch, then A, B's refusal and C together


def test_write_queue_several_failures_in_one_batch(db: Db, gate: Gate) -> None:
    q = WriteQueue(db.engine, idle_exit_s=IDLE_EXIT_S)

    def failing(v: str) -> Callable[[Connection], int]:
        def work(conn: Connection) -> int:
            insert(v)(conn)
            raise ValueError(v)

        return work

    names = ["ok1", "bad1", "bad2", "ok2", "ok3", "bad3", "ok4"]
    works = [failing(v) if v.startswith("bad") else insert(v) for v in names]

    async def main() -> list[Any]:
        return await one_batch(q, gate, works)

    results = run_in_own_thread(within(main()))
    for v, result in zip(names, results, strict=True):
        if v.startswith("bad"):
            assert isinstance(result, ValueError)
            assert str(result) == v
        else:
            assert isinstance(result, int)
    assert stored(db.path) == ["ok1", "ok2", "ok3", "ok4"]
    with contextlib.closing(sqlite3.connect(db.path)) as conn:
        ids = dict(conn.execute("SELECT v, id FROM t").fetchall())
    assert {v: r for v, r in zip(names, results, strict=True) if isinstance(r, int)} == ids


def test_write_queue_constraint_violation_goes_to_its_caller(db: Db, gate: Gate) -> None:
    with contextlib.closing(sqlite3.connect(db.path)) as conn, conn:
        conn.execute("INSERT INTO t (v) VALUES ('dup')")
    q = WriteQueue(db.engine, idle_exit_s=IDLE_EXIT_S)

    async def main() -> list[Any]:
        return await one_batch(q, gate, [insert("x"), insert("dup"), insert("y")])

    x, dup, y = run_in_own_thread(within(main()))
    assert isinstance(dup, IntegrityError)
    assert "UNIQUE" in str(dup)
    assert isinstance(x, int)
    assert isinstance(y, int)
    assert stored(db.path) == ["dup", "x", "y"]


def test_write_queue_failed_commit_fails_its_batch_and_the_queue_goes_on(
    db: Db, gate: Gate
) -> None:
    """A deferred foreign key fails only at COMMIT, where no single item can be blamed: every
    item of that batch gets the error and none of their writes is kept. Later items work."""
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        conn.execute(
            text(
                "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER"
                " REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    q = WriteQueue(db.engine, idle_exit_s=IDLE_EXIT_S)

    def orphan(conn: Connection) -> str:
        conn.execute(text("INSERT INTO child (parent_id) VALUES (999)"))
        return "orphan"

    async def main() -> tuple[list[Any], int]:
        held = await gate.hold(q)
        tasks = await queue_all(q, [insert("a"), orphan, insert("c")])
        gate.release.set()
        await held
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return results, await q.run(insert("later"))

    results, later_id = run_in_own_thread(within(main()))
    assert all(isinstance(r, IntegrityError) for r in results), results
    assert "FOREIGN KEY" in str(results[1])
    assert stored(db.path) == ["later"]
    assert isinstance(later_id, int)
    with contextlib.closing(sqlite3.connect(db.path)) as plain:
        assert plain.execute("SELECT count(*) FROM child").fetchone() == (0,)


def test_write_queue_hands_each_result_to_its_own_caller(db: Db) -> None:
    q = WriteQueue(db.engine, max_batch=16, idle_exit_s=IDLE_EXIT_S)

    def echo(i: int) -> Callable[[Connection], int]:
        def work(conn: Connection) -> int:
            if i % 7 == 3:
                raise ValueError(i)
            value = conn.execute(text("SELECT :i"), {"i": i}).scalar_one()
            assert isinstance(value, int)
            return value

        return work

    async def main() -> list[Any]:
        return await asyncio.gather(*(q.run(echo(i)) for i in range(300)), return_exceptions=True)

    results = run_in_own_thread(within(main()))
    for i, result in enumerate(results):
        if i % 7 == 3:
            assert isinstance(result, ValueError)
            assert result.args == (i,)
        else:
            assert result == i


def test_write_queue_writer_thread_exits_when_idle_and_restarts(db: Db) -> None:
    q = WriteQueue(db.engine, idle_exit_s=IDLE_EXIT_S)
    writers: list[threading.Thread] = []

    def work(v: str) -> Callable[[Connection], int]:
        def run(conn: Connection) -> int:
            writers.append(threading.current_thread())
            return insert(v)(conn)

        return run

    run_in_own_thread(within(q.run(work("first"))))
    first = writers[0]
    assert first.name == WRITER_NAME
    assert first.daemon
    assert first is not threading.current_thread()

    first.join(timeout=WAIT_S)  # it leaves after IDLE_EXIT_S without work
    assert not first.is_alive()
    assert first not in threading.enumerate()

    run_in_own_thread(within(q.run(work("second"))))
    second = writers[1]
    assert second is not first
    assert second.name == WRITER_NAME
    assert stored(db.path) == ["first", "second"]
    second.join(timeout=WAIT_S)
    assert not second.is_alive()


def test_write_queue_writer_thread_is_reused_while_busy(db: Db) -> None:
    """Within idle_exit_s the next item, even from another event loop, is served by the same
    thread."""
    q = WriteQueue(db.engine, idle_exit_s=30.0)
    writers: list[threading.Thread] = []

    def work(conn: Connection) -> None:
        writers.append(threading.current_thread())

    run_in_own_thread(within(q.run(work)))
    run_in_own_thread(within(q.run(work)))
    assert len(writers) == 2
    assert writers[0] is writers[1]
    assert writers[0].name == WRITER_NAME


def test_write_queue_cancelled_caller_still_gets_its_write_committed(db: Db, gate: Gate) -> None:
    """A caller that gives up (a client that hung up) does not undo its write: the item still
    runs and commits, and the queue serves later items."""
    q = WriteQueue(db.engine, idle_exit_s=IDLE_EXIT_S)

    async def main() -> tuple[int, list[dict[str, Any]]]:
        errors = loop_errors()  # settling a future whose caller left must not raise
        held = await gate.hold(q)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(q.run(insert("gone")), timeout=0.01)
        # The same, cancelled by hand, for an item whose work fails.
        failing = asyncio.create_task(q.run(lambda conn: 1 / 0))
        await asyncio.sleep(0)
        failing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await failing
        gate.release.set()
        await held
        return await within(q.run(insert("later"))), errors

    later_id, errors = run_in_own_thread(within(main()))
    assert errors == []
    assert isinstance(later_id, int)
    assert stored(db.path) == ["gone", "later"]


def test_write_queue_survives_a_caller_whose_event_loop_closed(db: Db, gate: Gate) -> None:
    """run_in_own_thread() returns (cancelling the caller and closing its loop) while the writer
    holds its item: the item is still committed, and the next loop's items are served."""
    q = WriteQueue(db.engine, idle_exit_s=IDLE_EXIT_S)
    orphan_ran = threading.Event()

    def orphan(conn: Connection) -> int:
        row_id = insert("orphan")(conn)
        orphan_ran.set()
        return row_id

    async def leave_early() -> None:
        await gate.hold(q)
        asyncio.create_task(q.run(orphan))  # noqa: RUF006  (left behind on purpose)
        await asyncio.sleep(0)

    run_in_own_thread(leave_early())
    gate.release.set()
    assert orphan_ran.wait(WAIT_S)
    run_in_own_thread(within(q.run(insert("next"))))
    assert stored(db.path) == ["orphan", "next"]


class _Abort(BaseException):
    """Not an Exception, like SystemExit, GeneratorExit or asyncio.CancelledError."""


def test_write_queue_survives_a_work_item_raising_base_exception(db: Db) -> None:
    q = WriteQueue(db.engine, idle_exit_s=IDLE_EXIT_S)

    def abort(_conn: Connection) -> None:
        raise _Abort

    async def main() -> int:
        with pytest.raises(_Abort):
            await asyncio.wait_for(q.run(abort), 1.0)
        return await asyncio.wait_for(q.run(insert("after")), 1.0)

    assert isinstance(run_in_own_thread(within(main())), int)
    assert stored(db.path) == ["after"]
