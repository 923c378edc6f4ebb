"""The clock check: the offset between the cabin's clock and the server's, from the Welcome's server time. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from gateway.selftest.report import failed, ok, skipped, warning
from gateway.selftest.signaling_link import SignalingContact
from signaling.protocol import SelftestCheck

NAME: Final = "clock"
OK_OFFSET: Final = 1.0
# Signaling accepts a cabin's one-minute proof of key issued at most 5 s in its future (signaling.tokens'
# LEEWAY_SECONDS): a cabin clock further ahead is refused at its next connection; one more than a minute behind
# only ever sends expired proofs; and appointment windows open early or late. Beyond this the cabin is about to
# lose its calls, so the check is required: it says "fix the time synchronisation" before the proofs break.
MAX_OFFSET: Final = 5.0


def clock_offset(contact: SignalingContact) -> float | None:
    """Seconds the server's clock is ahead of the cabin's (negative: behind); None without a readable server time.

    The server read its clock somewhere between the start of the connection and the Welcome's arrival: the middle
    of that interval (half the round trip before the arrival) is the estimate, within ± half the round trip.
    """
    text = contact.welcome.server_time
    if text is None:
        return None
    try:
        server = datetime.fromisoformat(text)
    except ValueError:
        return None
    if server.tzinfo is None:
        return None
    return (server - contact.received_at).total_seconds() + contact.round_trip / 2


def clock_check(contact: SignalingContact | None) -> SelftestCheck:
    """The verdict on the offset."""
    if contact is None:
        return skipped(NAME, "no welcome from signaling to compare with")
    if contact.welcome.server_time is None:
        return skipped(NAME, "the server does not send its time")
    offset = clock_offset(contact)
    if offset is None:
        return warning(NAME, f"the server's time {contact.welcome.server_time[:40]!r} is unreadable", required=False)
    side = "behind" if offset > 0 else "ahead of"
    detail = f"cabin clock {abs(offset):.2f} s {side} the server's (± {contact.round_trip / 2:.2f} s)"
    if abs(offset) <= OK_OFFSET:
        return ok(NAME, detail)
    if abs(offset) <= MAX_OFFSET:
        return warning(NAME, f"{detail}: check the time synchronisation (NTP)")
    if offset < 0:
        why = "signaling refuses the key of a cabin more than 5 s ahead"
    else:
        why = "appointments open late, and beyond a minute signaling refuses the cabin's key"
    return failed(NAME, f"{detail}: {why}; fix the time synchronisation (NTP)")
