"""What a signaling server is configured with."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from signaling.forwarding import Network
from signaling.protocol import IcePolicy, IceServer
from signaling.store import Store
from signaling.tokens import TokenSigner
from signaling.turn import TurnSettings
from signaling.webhooks import WebhookTarget
from webclient import WEBCLIENT_DIR


def utc_now() -> datetime:
    return datetime.now(UTC)


def hash_api_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class ServerConfig:
    signer: TokenSigner
    store: Store
    # The address professionals reach, used to build links (e.g. https://visio.example.org).
    public_url: str = "https://127.0.0.1:8443"
    # SHA-256 of each operator API key accepted by the REST API.
    operator_key_hashes: tuple[bytes, ...] = ()
    # Handed to both ends; empty means host candidates only (loopback tests, same-LAN demos).
    ice_servers: tuple[IceServer, ...] = ()
    # TURN with credentials made for each participant (coturn's use-auth-secret); None: no relay.
    turn: TurnSettings | None = None
    # RELAY: both ends use TURN only (their addresses are never shown to each other).
    ice_policy: IcePolicy = IcePolicy.ALL
    # Benchmarks and kiosk-less demos admit the citizen as soon as both ends are there.
    auto_admit: bool = False
    enrollment_lifetime: timedelta = timedelta(hours=24)
    webclient_dir: Path = WEBCLIENT_DIR
    clock: Callable[[], datetime] = utc_now
    hello_timeout: float = 10.0
    heartbeat: float = 15.0
    # Token bucket per connection: a burst of ICE candidates is fine, a flood is not.
    rate_burst: int = 60
    rate_per_second: float = 20.0
    # Reverse proxies (nginx...) whose X-Forwarded-For is believed; from any other peer it is ignored.
    trusted_proxies: tuple[Network, ...] = ()
    # How long POST /api/v1/cabins/{id}/selftest waits for the cabin's report.
    selftest_timeout: float = 30.0
    # Every this many seconds: cabins' schedules refreshed, rooms of appointments that are over forgotten.
    refresh_interval: float = 30.0
    # A call still going when its window ends may run this much longer; then its room is closed.
    overtime: timedelta = timedelta(minutes=15)
    # The fleet's alerts: a cabin offline, a device not connected, for longer than this.
    offline_after: timedelta = timedelta(minutes=2)
    device_missing_after: timedelta = timedelta(minutes=10)
    # Booking systems told of appointment events and cabin alerts (signed POSTs; see signaling/webhooks.py).
    webhooks: tuple[WebhookTarget, ...] = ()
    # Several nodes on one Redis (signaling/cluster.py); None: one process, its live state in its memory.
    redis_url: str | None = None
    # An address refused this many times in a minute (links, cabin proofs, enrollment codes) is turned away until
    # the minute is over.
    refusals_per_minute: int = 100

    def operator_key_ok(self, key: str) -> bool:
        digest = hash_api_key(key)
        return any(hmac.compare_digest(digest, h) for h in self.operator_key_hashes)
