"""Variant children on the CPU, forked from a process that has imported torch, diffusers and
the worker's modules and done nothing else: multiprocessing's forkserver, those modules
preloaded.

Why: a fresh interpreter per variant (isolate.py) spends ~8 s importing on a 2-core CPU,
more than a tiny variant's whole run; a fork of the preloaded server starts in ~0.3 s, from
the state an import leaves: no op run, no thread pool started, no Inductor setting changed,
no dynamo cache, no peak counter. The server never loads or runs a variant, so nothing of
one variant reaches the next (DESIGN.md, rule 9) — the isolation tests check it as they
did for fresh interpreters. One server per worker process, started by its first variant; it
exits when the worker does, and its children die with it (PR_SET_PDEATHSIG in the child).

Only on the CPU. CUDA's state does not survive a fork, and bitsandbytes probes CUDA when it
is imported, so a variant on a GPU always gets a fresh interpreter — where the imports are
seconds against a load of minutes. `FRESH_INTERPRETER_ENV=1` gives CPU variants fresh
interpreters too (the tests run that path on the CPU).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from typing import IO, Any

FRESH_INTERPRETER_ENV = "FLUX_PLAYGROUND_FRESH_INTERPRETER"
PRELOAD = ["app.worker.child", "app.worker.pipelines"]

_context: ForkServerContext | None = None


def use_fork(device: str) -> bool:
    """Whether a variant on `device` is forked from the preloaded server."""
    return device == "cpu" and os.environ.get(FRESH_INTERPRETER_ENV, "") in ("", "0")


def _forkserver() -> ForkServerContext:
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _context = context
    return _context


class ForkedChild:
    """A forked variant child with the part of `subprocess.Popen`'s interface the parent
    uses: pid, poll, wait (raising TimeoutExpired), kill; exit codes as Popen's (a negative
    signal number for a child killed by a signal)."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired("variant child", timeout or 0.0)
        return code

    def kill(self) -> None:
        self._process.kill()


def start(child_end: Connection, env: dict[str, str]) -> tuple[ForkedChild, IO[bytes]]:
    """Fork a child that serves `child_end` (app.worker.child.forked_main) with `env` as its
    environment; returns it and the read end of its stderr."""
    from app.worker.child import forked_main

    read_fd, write_fd = os.pipe()
    stderr_end = Connection(write_fd, readable=False)
    args: tuple[Any, ...] = (child_end, stderr_end, env)
    process = _forkserver().Process(target=forked_main, args=args, name="variant")
    try:
        process.start()
    finally:
        stderr_end.close()
    return ForkedChild(process), os.fdopen(read_fd, "rb")
