"""An in-process cache for the request path: one loader per key, stale while it revalidates.

DESIGN.md rule 10: caches have one loader per key and serve the stale value while they
refresh. A plain TTL cache does neither: when an entry expires under load, every request
that misses it loads it again at once (16 concurrent arena clients made 16 catalog loads a
second and took the server from 1,227 to 53 requests/s on a big database, issue 11), and
each of them waits for its own load.

Here a value is *fresh* for `ttl_s`; after that it is still served while one background
thread reloads it, up to `max_stale_s` (then it is a miss, so a value nobody asked for in a
long time is not shown). A miss is loaded by the first caller; callers that ask meanwhile
wait for that load instead of starting their own (single flight).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = logging.getLogger(__name__)

# A caller waiting for another's load gives up after this long and loads itself.
FLIGHT_WAIT_S = 60.0


class TTLMemo(Generic[K, V]):
    """Values by key: fresh for `ttl_s`, then served stale while reloaded in the background
    (up to `max_stale_s`, default ten times the TTL); at most `maxsize` keys (least recently
    used first out). A loader returning None stores nothing: None reads as a miss."""

    def __init__(
        self,
        ttl_s: float,
        maxsize: int = 64,
        timer: Callable[[], float] = time.monotonic,
        max_stale_s: float | None = None,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_stale_s = max_stale_s if max_stale_s is not None else 10 * ttl_s
        self._maxsize = maxsize
        self._timer = timer
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._flights: dict[K, threading.Event] = {}
        self._lock = threading.Lock()

    def lookup(self, key: K) -> tuple[V, bool] | None:
        """The value and whether it is fresh; None when there is none worth serving."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, loaded_at = entry
            age = self._timer() - loaded_at
            if age > self._ttl_s + self._max_stale_s:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value, age <= self._ttl_s

    def peek(self, key: K) -> V | None:
        """The value if it is fresh now."""
        found = self.lookup(key)
        return found[0] if found is not None and found[1] else None

    def clear(self) -> None:
        """Forget every value: the next read loads afresh (after a change made here)."""
        with self._lock:
            self._entries.clear()

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The value: fresh, or stale (then reloaded in the background), or loaded now by
        one caller while the others wait. `load` must not depend on the caller's request
        (a background reload runs after the request is gone): open its own session."""
        found = self.serve(key, load)
        return found if found is not None else self._load_once(key, load)

    def serve(self, key: K, load: Callable[[], V]) -> V | None:
        """The cached value, fresh or stale (a stale one starts a background reload with
        `load`); None on a miss, without loading (for callers that must not wait here)."""
        found = self.lookup(key)
        if found is None:
            return None
        value, fresh = found
        if not fresh:
            self.refresh_in_background(key, load)
        return value

    def refresh_in_background(self, key: K, load: Callable[[], V]) -> None:
        """Reload `key` on a thread of its own, unless a load of it is already running."""
        with self._lock:
            if key in self._flights:
                return
            flight = self._flights[key] = threading.Event()

        def refresh() -> None:
            try:
                self._store(key, load())
            except Exception:  # the stale value stays; the next stale read tries again
                log.exception("reloading %r failed", key)
            finally:
                self._land(key, flight)

        threading.Thread(target=refresh, name="memo-refresh", daemon=True).start()

    def _load_once(self, key: K, load: Callable[[], V]) -> V:
        with self._lock:
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = threading.Event()
        if not leading:
            flight.wait(FLIGHT_WAIT_S)
            found = self.lookup(key)
            if found is not None:
                return found[0]
            return load()  # the leader failed, found nothing, or is stuck: load alone
        try:
            value = load()
            self._store(key, value)
            return value
        finally:
            self._land(key, flight)

    def _store(self, key: K, value: V) -> None:
        if value is None:
            return
        with self._lock:
            self._entries[key] = (value, self._timer())
            self._entries.move_to_end(key)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)

    def _land(self, key: K, flight: threading.Event) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.set()
