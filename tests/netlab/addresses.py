"""The laboratory's addresses and ports (documentation ranges: 203.0.113/24, 198.51.100/24, 198.51.101/24)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Side(StrEnum):
    """One end of a call and its access network."""

    CABIN = "cabin"
    DOCTOR = "doctor"


class Role(StrEnum):
    """A namespace of the laboratory."""

    CORE = "core"
    CABIN_ROUTER = "cabin-router"
    CABIN = "cabin"
    DOCTOR_ROUTER = "doctor-router"
    DOCTOR = "doctor"


# Public services, on core's loopback.
SIGNALING_IP: Final = "203.0.113.10"
TURN_IP: Final = "203.0.113.20"
SIGNALING_PORT: Final = 443
TURN_PORT: Final = 3478  # UDP and TCP
TURN_TLS_PORT: Final = 443  # TLS (and plain TCP: coturn tells them apart on the same port)
TURN_RELAY_PORTS: Final = (49152, 49251)


@dataclass(frozen=True, slots=True)
class SideAddresses:
    """One access network: core's end of the WAN, the router's WAN and LAN addresses, the end host.

    `delay_ip` is the address (on core) of this side's delay forwarder in front of TURN: the same ports as
    TURN_IP, forwarded to TURN_IP after the side's delay (see Lab.shape).
    """

    router: Role
    host: Role
    core_wan_ip: str
    router_wan_ip: str
    wan_prefix: int
    router_lan_ip: str
    host_ip: str
    lan_prefix: int
    delay_ip: str
    core_dev: str


SIDES: Final = {
    Side.CABIN: SideAddresses(
        router=Role.CABIN_ROUTER,
        host=Role.CABIN,
        core_wan_ip="198.51.100.1",
        router_wan_ip="198.51.100.2",
        wan_prefix=24,
        router_lan_ip="192.168.1.1",
        host_ip="192.168.1.10",
        lan_prefix=24,
        delay_ip="203.0.113.21",
        core_dev="to-cabin",
    ),
    Side.DOCTOR: SideAddresses(
        router=Role.DOCTOR_ROUTER,
        host=Role.DOCTOR,
        core_wan_ip="198.51.101.1",
        router_wan_ip="198.51.101.2",
        wan_prefix=24,
        router_lan_ip="10.10.0.1",
        host_ip="10.10.0.10",
        lan_prefix=24,
        delay_ip="203.0.113.22",
        core_dev="to-doctor",
    ),
}

CABIN_IP: Final = SIDES[Side.CABIN].host_ip
CABIN_PUBLIC_IP: Final = SIDES[Side.CABIN].router_wan_ip
DOCTOR_IP: Final = SIDES[Side.DOCTOR].host_ip
DOCTOR_PUBLIC_IP: Final = SIDES[Side.DOCTOR].router_wan_ip

# Interface names inside the namespaces (each namespace has its own, so they never clash between labs).
WAN_DEV: Final = "wan"
LAN_DEV: Final = "lan"
HOST_DEV: Final = "eth0"
DEAD_END_DEV: Final = "dead"
