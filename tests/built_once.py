"""Session data built once per test run, not once per xdist worker.

The precomputed runs many tests only read (the tiny models, the web test run, the sized
run, the hardware runs) take 20-30 s each on one core: made by whichever worker needs one
first, under a file lock in the folder all workers' temp folders share, then read by the
others from there. Without xdist the folder is the session's own, and nothing changes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from filelock import FileLock

T = TypeVar("T")


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temp folder every worker of this run sees (pytest-of-user/pytest-N under xdist,
    whose popen-gwN folders are the workers' own)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    build: Callable[[Path], T],
    encode: Callable[[T], dict[str, Any]],
    decode: Callable[[dict[str, Any]], T],
) -> T:
    """`build(folder)` once per run; the others get `decode(encode(result))`. A build that
    raised leaves no result, so the next worker to ask tries again (and fails the same way,
    with its own traceback)."""
    folder = shared_root(tmp_path_factory) / f"built-{name}"
    done = folder / "result.json"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if done.exists():
            return decode(json.loads(done.read_text()))
        shutil.rmtree(folder, ignore_errors=True)  # what a build that raised left
        folder.mkdir()
        result = build(folder)
        done.write_text(json.dumps(encode(result)))
        return result
