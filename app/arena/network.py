"""Which network a request comes from: the unit the arena limits, not the cookie.

A cookie costs a bot nothing (it takes a fresh one every 25 votes); an address costs more.
IPv4: the address itself. IPv6: its /64, the smallest block a subscriber is usually given
(one host can take any address in it). Behind a reverse proxy the address is the proxy's
unless FLUX_PLAYGROUND_TRUSTED_PROXIES names it: then, and only then, X-Forwarded-For is
believed (app/web/main.py installs uvicorn's ProxyHeadersMiddleware for exactly those).
"""

from __future__ import annotations

import ipaddress

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
