"""One writer thread per process for hot, short write transactions: group commit.

SQLite has one writer at a time. When every request thread takes its own turn (a lock, or
SQLite's sleeping busy handler), each transaction costs a thread hand-off, and on a busy
process the statements of the lock holder wait for the GIL behind forty other threads.
Here one thread runs the work of every request, one item after another on one connection,
and commits all the items that queued up meanwhile in one transaction: under load a batch
of votes costs one BEGIN and one COMMIT, and no thread waits on another's lock.

The caller awaits its item's result, which is handed over only after the COMMIT that holds
its writes (DESIGN.md rule 5: a vote that got a 2xx is in the database).

Failure never leaks between items: an item that raises rolls the batch back; its exception
goes to its caller, and the items that had run before it in the batch run again in a new
transaction. (A work item must therefore be safe to run again after a rollback: a function
of the connection and its arguments, like app.arena.votes.store_ballot.) Expected refusals
that a work item raises before writing anything (a replayed vote, say) are declared with
`refusals`: they go to their caller without rolling anything back.

The thread starts on the first item and ends after `idle_exit_s` without work, so an app
that is created and dropped (tests) leaves no thread behind for long. It takes
app.db.serialized_writes for each batch, so that the writers of several apps in one process
(the tests again) queue for SQLite's write lock on a lock instead of its sleeping busy handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from app.db import serialized_writes

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Item:
    work: Callable[[Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class _RollBack(Exception):
    """Internal: one item failed, roll the batch back."""


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    # The caller may have gone (a client that hung up cancels its request's task).
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class WriteQueue:
    def __init__(
        self,
        engine: Engine,
        *,
        refusals: tuple[type[Exception], ...] = (),
        max_batch: int = 128,
        idle_exit_s: float = 10.0,
    ):
        """`refusals`: exception types a work item raises only before it writes anything
        (app.arena.matchups.ArenaError for the arena's work). One goes to its caller and the batch
        goes on: a flood of refused votes must not roll back and re-run everyone else's."""
        self._engine = engine
        self._refusals = refusals
        self._max_batch = max_batch
        self._idle_exit_s = idle_exit_s
        self._items: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    async def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work(connection)` inside a write transaction; return its result once that
        transaction has committed, or raise what it raised (then nothing of it is kept)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._items.put(_Item(work, loop, future))
        self._ensure_writer()
        return await future

    def _ensure_writer(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="flux-playground-writer", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        try:
            self._serve_until_idle()
        finally:
            # However this thread ends, the next run() must be able to start another.
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _serve_until_idle(self) -> None:
        while True:
            try:
                first = self._items.get(timeout=self._idle_exit_s)
            except queue.Empty:
                with self._lock:
                    # An item put after the get() timed out is seen here, under the lock
                    # that run() takes to start a writer, so none is left without one.
                    if self._items.empty():
                        self._thread = None
                        return
                continue
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._items.get_nowait())
                except queue.Empty:
                    break
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Item]) -> None:
        pending = batch
        while pending:
            done: list[tuple[_Item, Any, Exception | None]] = []
            failed: tuple[_Item, BaseException] | None = None
            try:
                with (
                    serialized_writes(self._engine),
                    self._engine.connect() as conn,
                    conn.begin(),
                ):
                    for item in pending:
                        try:
                            done.append((item, item.work(conn), None))
                        except self._refusals as refused:  # nothing written: nothing to undo
                            done.append((item, None, refused))
                        # BaseException too: a work item raising SystemExit must not take
                        # the writer thread (and every later caller) down with it.
                        except BaseException as exc:  # it goes to its caller
                            failed = (item, exc)
                            raise _RollBack from exc
            except _RollBack:
                pass
            except Exception as exc:  # the COMMIT (or BEGIN) itself failed
                log.exception("a write batch of %d items failed", len(pending))
                for item in pending:
                    self._hand_over(item, None, exc)
                return
            if failed is None:
                for item, result, refusal in done:
                    self._hand_over(item, result, refusal)
                return
            item, error = failed
            self._hand_over(item, None, error)
            # Those that ran before it were rolled back with it: run them again.
            ran_before = [earlier for earlier, _, _ in done]
            pending = ran_before + pending[len(done) + 1 :]

    @staticmethod
    def _hand_over(item: _Item, result: Any, error: BaseException | None) -> None:
        # RuntimeError: its event loop has closed, nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            item.loop.call_soon_threadsafe(_settle, item.future, result, error)
