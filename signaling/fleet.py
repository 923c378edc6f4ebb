"""What the operators know of each cabin from afar: online or not, its heartbeats, and the conditions they raise.

Pure: no I/O. The hub (signaling/hub.py) feeds it connections and heartbeats and turns `conditions` into alerts;
the dashboard and /metrics read it. A heartbeat says whether a cabin's parts work, never who is in it nor a reading.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from signaling.alerts import AlertKind
from signaling.protocol import Heartbeat

# Kept per cabin: at one heartbeat every 10 s, the last half hour (~400 bytes each).
HISTORY: Final = 180
# Cabins remembered (connected once since the server started); the least recently seen is forgotten first.
MAX_CABINS: Final = 5000
OFFLINE_AFTER: Final = timedelta(minutes=2)
DEVICE_MISSING_AFTER: Final = timedelta(minutes=10)
BATTERY_LOW_PERCENT: Final = 20
CLOCK_SKEW_SECONDS: Final = 5.0
# Alerts that the fleet raises and clears by itself (the others come from the cabin or the citizen).
FLEET_KINDS: Final = frozenset(
    {AlertKind.OFFLINE, AlertKind.BATTERY_LOW, AlertKind.CLOCK_SKEW, AlertKind.DEVICE_MISSING}
)

Condition = tuple[AlertKind, str]  # (kind, subject)


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time with its zone (a trailing Z accepted); None if it is not one."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


@dataclass(frozen=True, slots=True)
class ReceivedHeartbeat:
    """A heartbeat as signaling received it, with the cabin's clock offset (positive: the cabin is ahead)."""

    heartbeat: Heartbeat
    received_at: datetime
    clock_offset_s: float | None

    def to_json(self) -> dict[str, Any]:
        hb = self.heartbeat
        return {
            "software": hb.software,
            "uptime_s": hb.uptime_s,
            "config_version": hb.config_version,
            "sent_at": hb.sent_at,
            "received_at": self.received_at.isoformat(),
            "clock_offset_s": self.clock_offset_s,
            "camera": {"present": hb.camera_present, "fps": hb.camera_fps},
            "microphone": {"present": hb.microphone_present, "level_db": hb.microphone_level_db},
            "devices": [
                {
                    "address": d.address,
                    "name": d.name,
                    "seen": d.seen,
                    "connected": d.connected,
                    "battery": d.battery,
                    "last_reading_at": d.last_reading_at,
                }
                for d in hb.devices
            ],
            "network": {"rtt_ms": hb.rtt_ms, "loss": hb.loss},
            "system": {"cpu": hb.cpu, "memory": hb.memory, "disk": hb.disk, "temperature_c": hb.temperature_c},
            "in_session": hb.in_session,
        }


def clock_offset(heartbeat: Heartbeat, received_at: datetime) -> float | None:
    """The cabin's clock minus ours when it sent the heartbeat, half the round trip taken off the transit."""
    sent = parse_time(heartbeat.sent_at)
    if sent is None:
        return None
    transit = (heartbeat.rtt_ms or 0.0) / 2000.0
    return (sent - received_at).total_seconds() + transit


@dataclass(slots=True)
class CabinLife:
    """One cabin as the fleet sees it: connected or since when not, its recent heartbeats."""

    online: bool
    # When it connected (online), or when it went away / when the server started watching it (offline).
    since: datetime
    last_seen: datetime | None = None
    history: deque[ReceivedHeartbeat] = field(default_factory=lambda: deque(maxlen=HISTORY))
    # Each reported device's last heartbeat connected (or the first heartbeat that named it).
    device_connected: dict[str, datetime] = field(default_factory=dict)

    @property
    def latest(self) -> ReceivedHeartbeat | None:
        return self.history[-1] if self.history else None


class Fleet:
    """Every cabin's connection and heartbeats, bounded; no I/O. Times come from the caller."""

    def __init__(
        self,
        started_at: datetime,
        max_cabins: int = MAX_CABINS,
        *,
        offline_after: timedelta = OFFLINE_AFTER,
        device_missing_after: timedelta = DEVICE_MISSING_AFTER,
    ) -> None:
        self.started_at = started_at
        self.offline_after = offline_after
        self.device_missing_after = device_missing_after
        self._cabins: dict[str, CabinLife] = {}
        self._max = max_cabins
        self.heartbeats = 0

    def __len__(self) -> int:
        return len(self._cabins)

    def restart(self, now: datetime) -> None:
        """Watch from `now` as a server that just started (a cluster node taking over the rooms)."""
        self.started_at = now
        self._cabins.clear()

    def _life(self, cabin_id: str, now: datetime) -> CabinLife:
        life = self._cabins.pop(cabin_id, None)
        if life is None:
            life = CabinLife(online=False, since=now)
        self._cabins[cabin_id] = life  # most recently touched last
        while len(self._cabins) > self._max:
            del self._cabins[next(iter(self._cabins))]
        return life

    def connected(self, cabin_id: str, now: datetime) -> None:
        life = self._life(cabin_id, now)
        life.online, life.since, life.last_seen = True, now, now

    def disconnected(self, cabin_id: str, now: datetime) -> None:
        life = self._cabins.get(cabin_id)
        if life is not None and life.online:
            life.online, life.since, life.last_seen = False, now, now

    def record(self, cabin_id: str, heartbeat: Heartbeat, now: datetime) -> ReceivedHeartbeat:
        life = self._life(cabin_id, now)
        received = ReceivedHeartbeat(heartbeat, now, clock_offset(heartbeat, now))
        life.history.append(received)
        life.last_seen = now
        reported = {device.address for device in heartbeat.devices}
        for address in list(life.device_connected):
            if address not in reported:
                del life.device_connected[address]
        for device in heartbeat.devices:
            if device.connected or device.address not in life.device_connected:
                life.device_connected[device.address] = now
        self.heartbeats += 1
        return received

    def life(self, cabin_id: str) -> CabinLife | None:
        return self._cabins.get(cabin_id)

    def online(self, cabin_id: str) -> bool:
        life = self._cabins.get(cabin_id)
        return life is not None and life.online

    def online_count(self) -> int:
        return sum(1 for life in self._cabins.values() if life.online)

    def latest(self, cabin_id: str) -> ReceivedHeartbeat | None:
        life = self._cabins.get(cabin_id)
        return None if life is None else life.latest

    def history(self, cabin_id: str) -> list[ReceivedHeartbeat]:
        life = self._cabins.get(cabin_id)
        return [] if life is None else list(life.history)

    def items(self) -> list[tuple[str, CabinLife]]:
        return list(self._cabins.items())

    def conditions(
        self, cabin_id: str, now: datetime, *, battery_low: int = BATTERY_LOW_PERCENT
    ) -> dict[Condition, str]:
        """What should be alerted about this cabin now (fleet kinds only), each with its detail in plain words;
        `battery_low` is the cabin's own threshold (its configuration's `thresholds.battery_low`)."""
        wanted: dict[Condition, str] = {}
        life = self._cabins.get(cabin_id)
        offline_since = self.started_at if life is None else (None if life.online else life.since)
        if offline_since is not None and now - offline_since > self.offline_after:
            if life is None or life.last_seen is None:
                detail = f"not connected since the server started at {_hm(self.started_at)}"
            else:
                detail = f"offline since {_hm(offline_since)}"
            wanted[(AlertKind.OFFLINE, "")] = detail
        if life is None or not life.online or life.latest is None:
            return wanted
        latest = life.latest
        for device in latest.heartbeat.devices:
            label = device.name or device.address
            if device.battery is not None and device.battery < battery_low:
                wanted[(AlertKind.BATTERY_LOW, device.address)] = f"{label}: battery at {device.battery} %"
            connected_at = life.device_connected.get(device.address)
            if not device.connected and connected_at is not None and now - connected_at > self.device_missing_after:
                wanted[(AlertKind.DEVICE_MISSING, device.address)] = f"{label}: not connected since {_hm(connected_at)}"
        offset = latest.clock_offset_s
        if offset is not None and abs(offset) > CLOCK_SKEW_SECONDS:
            way = "ahead" if offset > 0 else "behind"
            wanted[(AlertKind.CLOCK_SKEW, "")] = f"the cabin's clock is {abs(offset):.1f} s {way}"
        return wanted


def _hm(value: datetime) -> str:
    return value.isoformat(timespec="seconds")
