from __future__ import annotations

import pytest

from app.arena.network import SlidingWindowLimit, network_of


@pytest.mark.parametrize(
    ("host", "network"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),  # any address of a /64 is one network
        ("::ffff:198.51.100.4", "198.51.100.4"),  # IPv4 seen through an IPv6 socket
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_network_of(host: str | None, network: str) -> None:
    assert network_of(host) == network


def test_sliding_window_limit_per_key_and_window() -> None:
    now = [0.0]
    limit = SlidingWindowLimit(2, 60, clock=lambda: now[0], max_keys=2)
    assert [limit.allow("a") for _ in range(3)] == [True, True, False]
    assert limit.allow("b")  # another network has its own budget
    now[0] = 61.0
    assert limit.allow("a")  # the window moved on
    limit.allow("c")  # a third key: the least recently seen one ("b") is forgotten
    assert set(limit._events) == {"a", "c"}
