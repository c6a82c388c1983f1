from __future__ import annotations

import pytest

from app.arena.network import network_of


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
