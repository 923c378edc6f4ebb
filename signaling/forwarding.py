"""Who the client is behind a reverse proxy: X-Forwarded-For, believed from trusted proxies only. Pure: no I/O.

A proxy appends the address it received the request from to X-Forwarded-For; anything to the left of that was
written by the client and may be forged. So, and only when the direct peer is a trusted proxy, the client is the
right-most address that is not itself a trusted proxy. From any other peer the header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Forwarded:
    """The client as the application should see it."""

    address: str | None
    scheme: str | None  # "http" or "https" as the trusted proxy received it; None when not forwarded


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d; compare them as the IPv4 address they are.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


def forwarded_client(
    peer: str | None,
    forwarded_for: Iterable[str],
    forwarded_proto: str | None,
    proxies: Sequence[Network],
) -> Forwarded:
    """The client's address (and the scheme it used) given the direct `peer` and the request's forwarding headers.

    `forwarded_for` holds every X-Forwarded-For header value, in order. An entry that is not an IP address stops
    the walk: the client is then the last trusted hop seen (it wrote nothing better).
    """
    peer_address = None if peer is None else _address(peer)
    if peer_address is None or not _trusted(peer_address, proxies):
        return Forwarded(address=peer, scheme=None)
    hops = [item for value in forwarded_for for item in value.split(",") if item.strip()]
    client: Address = peer_address
    for text in reversed(hops):
        address = _address(text)
        if address is None:
            break
        client = address
        if not _trusted(address, proxies):
            break
    proto = (forwarded_proto or "").split(",")[-1].strip().lower()
    return Forwarded(address=str(client), scheme=proto if proto in ("http", "https") else None)
