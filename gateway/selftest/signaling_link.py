"""The signaling check: the server answers and accepts the cabin's key (a Welcome), and how fast.

The probe opens a connection through a callable the composition root gives (the cabin's `SignalingClient`), so it
knows nothing of configuration or keys. A running gateway must not open a second connection with the same key
(signaling would replace its live one): it gives its last `SignalingContact` instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from gateway.selftest.report import failed, ok
from signaling.protocol import SelftestCheck, Welcome

NAME: Final = "signaling"


class HasWelcome(Protocol):
    """An open signaling connection (SignalingClient): the Welcome that accepted the key, and its round trip."""

    @property
    def welcome(self) -> Welcome | None: ...

    @property
    def round_trip(self) -> float | None:
        """Seconds from the cabin's hello to the server's welcome (None: not measured)."""


ConnectSignaling = Callable[[], AbstractAsyncContextManager[HasWelcome]]
"""Opens one connection with the cabin's key; raises PermissionError (refused) or ConnectionError (unreachable)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SignalingContact:
    """A Welcome from signaling, how long the connection took to get it, and when it came by the cabin's clock."""

    welcome: Welcome
    # Seconds from the hello to the welcome (from the start of the connection when that was not measured): the
    # server read its clock within this interval.
    round_trip: float
    received_at: datetime  # the cabin's wall clock, timezone-aware


LiveSignaling = Callable[[], SignalingContact | None]
"""The running gateway's current connection (None while it is not connected)."""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def signaling_check(contact: SignalingContact, *, live: bool = False) -> SelftestCheck:
    """The verdict on a Welcome received."""
    if live:
        return ok(NAME, f"connected, key accepted (round trip {_ms(contact.round_trip)} when it connected)")
    return ok(NAME, f"key accepted, round trip {_ms(contact.round_trip)}")


async def contact_signaling(
    connect: ConnectSignaling, *, timeout: float, wall_clock: Callable[[], datetime] = utc_now
) -> SignalingContact | SelftestCheck:
    """Connect once and close; the contact, or a failed check with the server's reason or the network's."""
    started = time.monotonic()
    contact: SignalingContact | None = None
    try:
        async with asyncio.timeout(timeout), connect() as link:
            received_at, elapsed = wall_clock(), time.monotonic() - started
            welcome = link.welcome
            if welcome is not None:
                round_trip = link.round_trip if link.round_trip is not None else elapsed
                contact = SignalingContact(welcome=welcome, round_trip=round_trip, received_at=received_at)
    except TimeoutError:
        return failed(NAME, f"no answer within {timeout:g} s")
    except PermissionError as exc:  # the server refused the key: its reason is in the message
        return failed(NAME, str(exc) or "the server refused this cabin's key")
    except OSError as exc:  # ConnectionError and the rest: unreachable, with the reason
        return failed(NAME, str(exc) or f"unreachable ({type(exc).__name__})")
    if contact is None:
        return failed(NAME, "connected, but the server sent no welcome")
    return contact


async def probe_signaling(
    *,
    connect: ConnectSignaling | None,
    live: LiveSignaling | None,
    timeout: float = 5.0,
    wall_clock: Callable[[], datetime] = utc_now,
) -> tuple[SelftestCheck, SignalingContact | None]:
    """The signaling check and the contact the ICE and clock checks need (None if signaling failed)."""
    if live is not None:
        current = live()
        if current is None:
            return failed(NAME, "the cabin is not connected to signaling right now (it keeps retrying)"), None
        return signaling_check(current, live=True), current
    if connect is None:
        return failed(NAME, "no signaling server configured"), None
    result = await contact_signaling(connect, timeout=timeout, wall_clock=wall_clock)
    if isinstance(result, SignalingContact):
        return signaling_check(result), result
    return result, None
