"""Which network a request comes from: the unit the arena limits, not the cookie.

A cookie costs a bot nothing (it takes a fresh one every 25 votes); an address costs more.
IPv4: the address itself. IPv6: its /64, the smallest block a subscriber is usually given
(one host can take any address in it). Behind a reverse proxy the address is the proxy's
unless FLUX_PLAYGROUND_TRUSTED_PROXIES names it: then, and only then, X-Forwarded-For is
believed (app/web/main.py installs uvicorn's ProxyHeadersMiddleware for exactly those).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable

# Limits: votes per network per minute, new raters per network per hour. A panel of 20 in
# one office (one NAT address) voting as fast as people do stays well under both.
RATE_WINDOW_S = 60
NEW_RATER_WINDOW_S = 3600


def network_of(host: str | None) -> str:
    """The network key of a client address ("203.0.113.7", "2001:db8:1:2::/64")."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]  # not an IP (a test client, a Unix socket): itself
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


class SlidingWindowLimit:
    """At most `limit` events per key in any `window_s`, counted in this process.

    Checked on the event loop before a vote is queued: O(1) per vote. Counting in the
    database instead (votes of the network in the last minute) cost a third of the vote
    throughput under load, since a busy network's count grows with its votes. The price:
    with several server processes, each counts alone (a network gets up to processes x
    limit), and a restart forgets; the network is also stored with every vote, for the
    ranking. `max_keys` bounds memory (least recently seen networks are forgotten first).
    """

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

    def allow(self, key: str) -> bool:
        """Count an event for `key` and say whether it is within the limit (refused events
        are not counted)."""
        now = self.clock()
        events = self._events.pop(key, None) or deque()
        while events and events[0] <= now - self.window_s:
            events.popleft()
        allowed = len(events) < self.limit
        if allowed:
            events.append(now)
        self._events[key] = events  # most recently seen last
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)
        return allowed
