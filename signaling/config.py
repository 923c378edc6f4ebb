"""What a signaling server is configured with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from signaling.appointments import AppointmentStore, MemoryAppointmentStore
from signaling.protocol import IceServer
from signaling.tokens import TokenSigner

WEBCLIENT_DIR = Path(__file__).resolve().parent.parent / "webclient"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    signer: TokenSigner
    store: AppointmentStore = field(default_factory=MemoryAppointmentStore)
    # Handed to both ends; empty means host candidates only (loopback tests, same-LAN demos).
    ice_servers: tuple[IceServer, ...] = ()
    webclient_dir: Path = WEBCLIENT_DIR
    clock: Callable[[], datetime] = utc_now
    hello_timeout: float = 10.0
    heartbeat: float = 15.0
    # Token bucket per connection: a burst of ICE candidates is fine, a flood is not.
    rate_burst: int = 60
    rate_per_second: float = 20.0
