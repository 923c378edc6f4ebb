"""Which local addresses ICE gathers host candidates on.

aioice has no option for this: it gathers on every non-loopback address of the machine. A cabin may need to keep
ICE on one interface (its uplink), and tests must stay on loopback. This seam swaps aioice's address lookup for
the configured list while the context manager is active. It is process-wide (aioice reads a module function),
so one gateway process applies one policy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import aioice.ice

from gateway.errors import ConfigError

LOOPBACK = ("127.0.0.1",)


def validate_addresses(addresses: tuple[str, ...]) -> tuple[str, ...]:
    """Raises: ConfigError: an entry is not an IP address."""
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(f"ICE address {address!r} is not an IP address") from None
    return addresses


@contextmanager
def host_addresses(addresses: tuple[str, ...] | None, *, add_loopback: bool = False) -> Iterator[None]:
    """Gather host candidates on exactly `addresses` (None: the machine's addresses, plus loopback if asked)."""
    original: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses

    def lookup(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if addresses is not None:
            return [a for a in addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]
        found = original(use_ipv4, use_ipv6)
        return [*found, "127.0.0.1"] if add_loopback and use_ipv4 else found

    if addresses is not None:
        validate_addresses(addresses)
    aioice.ice.get_host_addresses = lookup
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original  # type: ignore[assignment]
