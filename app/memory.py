"""Hand memory the allocator kept after a free back to the system."""

from __future__ import annotations

import contextlib
import ctypes
import gc


def release_freed_memory() -> None:
    """glibc keeps freed blocks for reuse, so a process's RSS stays at its peak after a big
    computation (a million-vote leaderboard left the server at 470 MB, issue 11; on the
    worker, loading's float32 weights inflated the next phase's peak). `malloc_trim` returns
    them; elsewhere (musl, macOS) nothing happens and the RSS stays conservative."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
