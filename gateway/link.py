"""Keeping one appointment's call up: what the cabin knows about it, and when its media path is judged dead. Pure.

aiortc has no ICE restart, and notices a silent peer only after ~30 s of failed consent checks. So the cabin
watches what actually arrives from the professional (audio frames fifty times a second; on a medical call, the
vitals channel's heartbeat every second), and when nothing has come for DEAD_AFTER seconds it drops the peer
connection and offers a fresh one through signaling, again and again while the appointment lasts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from gateway.backoff import Backoff
from signaling.protocol import AppointmentKind, IcePolicy, IceServer, Problem

# Nothing from the professional for this long: the path is dead (the target is detection within 3 s).
DEAD_AFTER: Final = 2.0
# How often the watch looks (detection is at most DEAD_AFTER + WATCH_INTERVAL after the last packet).
WATCH_INTERVAL: Final = 0.2
# An attempt that has not connected within this is dropped and made again: a fresh offer also brings fresh ICE
# checks, whose first retransmissions come quickly when the path is back.
CONNECT_TIMEOUT: Final = 6.0
# Between two attempts: at once at first, then spaced out while the path stays down.
RETRY: Final = Backoff(initial=0.2, factor=2.0, maximum=4.0, jitter=0.1)
# A restart asked by the professional's page while our own attempt is this young is the same restart.
RESTART_GRACE: Final = 2.0
# How long a ping to signaling may take once media died: beyond, the connection is dropped and made again.
SIGNALING_PROBE_TIMEOUT: Final = 1.5


class Verdict(enum.StrEnum):
    WAIT = "wait"  # nothing to do yet
    CONNECTED = "connected"  # the attempt just connected
    DEAD = "dead"  # connected, then nothing arrived for DEAD_AFTER (or the connection failed)
    TIMEOUT = "timeout"  # never connected within CONNECT_TIMEOUT


def silent(now: float, last_inbound: float) -> bool:
    """Nothing has come from the professional for too long: the path is dead."""
    return now - last_inbound > DEAD_AFTER


def judge(
    *, now: float, started_at: float, connected: bool, failed: bool, last_inbound: float, was_connected: bool
) -> Verdict:
    """The watch's decision for the current attempt at `now` (monotonic seconds)."""
    if failed:
        return Verdict.DEAD if was_connected else Verdict.TIMEOUT
    if connected:
        if silent(now, last_inbound):
            return Verdict.DEAD
        return Verdict.WAIT if was_connected else Verdict.CONNECTED
    if now - started_at > CONNECT_TIMEOUT:
        return Verdict.TIMEOUT
    return Verdict.WAIT


@dataclass(slots=True)
class CallLink:
    """One admitted appointment the cabin keeps a call up for, from the professional's arrival to the end."""

    appointment_id: str
    kind: AppointmentKind
    ice_servers: tuple[IceServer, ...]
    ice_policy: IcePolicy
    # False after the professional's browser refused every video codec: the call goes on with sound only.
    video: bool = True
    professional_present: bool = True
    # Why the media do not get through, when the cabin found out (a TURN server refusing our credentials).
    problem: Problem | None = None
    attempts: int = 0
    # Consecutive attempts that failed (for the retry backoff); 0 once one connects.
    failures: int = 0
