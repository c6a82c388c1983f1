"""Events per key over a sliding window, counted in this process: the arena's per-network
vote limit and the admin's wrong-token lockout.

In memory, O(1) per event: counting a network's votes of the last minute in the database
cost a third of the vote throughput under load (docs/benchmarks.md), since a busy network's
count grows with its votes. The price: with several server processes each counts alone (a
key gets up to processes x limit), and a restart forgets. `max_keys` bounds memory under a
spray of keys: the least recently seen are forgotten first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindowLimit:
    """At most `limit` events per key in any `window_s`. Thread-safe (the vote limit runs on
    the event loop, the admin lockout in worker threads)."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit, self.window_s, self.clock, self.max_keys = limit, window_s, clock, max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after_s(self, key: str) -> int | None:
        """Seconds until `key` is within the limit again; None if it is now."""
        with self._lock:
            return self._retry_after_s(key, self.clock())

    def record(self, key: str) -> None:
        """Count an event for `key`, whatever the limit says."""
        with self._lock:
            self._record(key, self.clock())

    def allow(self, key: str) -> bool:
        """Count an event for `key` if it is within the limit, and say whether it was
        (refused events are not counted)."""
        with self._lock:
            now = self.clock()
            if self._retry_after_s(key, now) is not None:
                return False
            self._record(key, now)
            return True

    def _retry_after_s(self, key: str, now: float) -> int | None:
        events = self._events.get(key)
        if events is None:
            return None
        while events and events[0] <= now - self.window_s:
            events.popleft()
        if len(events) < self.limit:
            return None
        return max(1, math.ceil(events[0] + self.window_s - now))

    def _record(self, key: str, now: float) -> None:
        events = self._events.pop(key, None) or deque()
        events.append(now)
        self._events[key] = events  # most recently seen last
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)
