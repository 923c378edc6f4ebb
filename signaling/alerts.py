"""What operators must see and deal with: calls for help and cabin incidents, kept in memory. Pure: no I/O.

A citizen's call for help opens one alert per cabin (pressing again adds a press). A cabin's incident (camera
unavailable, a device missing...) opens one alert per (cabin, kind, subject), and the cabin closes it when the
incident is over. Operators resolve either kind. The hub (signaling/hub.py) feeds the book and tells the cabins;
the HTTP side (signaling/http/alerts.py) shows and resolves alerts.
"""

from __future__ import annotations

import enum
import secrets
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from signaling.errors import SignalingError
from signaling.protocol import IncidentKind

# Resolved alerts remembered so that resolving twice answers the same (and the page can show what just closed).
RECENTLY_RESOLVED: Final = 50
# Bounds memory if something misbehaves; real cabins stay far below.
MAX_OPEN: Final = 1000
MAX_INCIDENTS_PER_CABIN: Final = 16


class AlertNotFound(SignalingError, LookupError):
    """No open or recently resolved alert has this id."""


class AlertKind(enum.StrEnum):
    """A call for help, or one of the incidents a cabin reports (same names as `IncidentKind`)."""

    HELP = "help"
    CAMERA_UNAVAILABLE = "camera-unavailable"
    MICROPHONE_UNAVAILABLE = "microphone-unavailable"
    DEVICE_MISSING = "device-missing"
    BLUETOOTH_UNAVAILABLE = "bluetooth-unavailable"
    TURN_REFUSED = "turn-refused"
    # Raised and cleared by signaling itself, from the cabin's connection, heartbeats and self-tests.
    OFFLINE = "offline"
    BATTERY_LOW = "battery-low"
    CLOCK_SKEW = "clock-skew"
    SELFTEST_FAILED = "selftest-failed"

    @classmethod
    def of_incident(cls, kind: IncidentKind) -> AlertKind:
        return cls(kind.value)


@dataclass(frozen=True, slots=True)
class Alert:
    """One open (or just resolved) alert; raising it again while open counts a press, not a second alert."""

    id: str
    cabin_id: str
    appointment_id: str | None
    raised_at: datetime
    last_pressed_at: datetime
    kind: AlertKind = AlertKind.HELP
    # Tells one incident from another of the same kind (a device's address); "" for a call for help.
    subject: str = ""
    # The cabin's own words about an incident (never health data: which part fails, and how).
    detail: str = ""
    presses: int = 1
    resolved_at: datetime | None = None
    resolved_by: str = ""

    @property
    def open(self) -> bool:
        return self.resolved_at is None

    @property
    def key(self) -> tuple[str, AlertKind, str]:
        return (self.cabin_id, self.kind, self.subject)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "cabin_id": self.cabin_id,
            "subject": self.subject,
            "detail": self.detail,
            "appointment_id": self.appointment_id,
            "raised_at": self.raised_at.isoformat(),
            "last_pressed_at": self.last_pressed_at.isoformat(),
            "presses": self.presses,
            "open": self.open,
            "resolved_at": None if self.resolved_at is None else self.resolved_at.isoformat(),
        }

    @staticmethod
    def new_id() -> str:
        return "alert_" + secrets.token_hex(6)


class AlertBook:
    """Open alerts, at most one per (cabin, kind, subject), oldest first; a few recently resolved ones. No I/O."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, AlertKind, str], Alert] = {}
        self._resolved: deque[Alert] = deque(maxlen=RECENTLY_RESOLVED)

    def forget_open(self) -> None:
        """Drop the open alerts (a cluster node taking over the rooms: what it knew may have been resolved since)."""
        self._open.clear()

    def __len__(self) -> int:
        return len(self._open)

    def raise_alert(self, cabin_id: str, appointment_id: str | None, now: datetime) -> tuple[Alert, bool]:
        """Open the cabin's call for help, or add a press to its open one; returns (alert, whether it is new).

        A call for help is never refused: at the memory bound, the oldest open alert is answered instead.
        """
        current = self._open.get((cabin_id, AlertKind.HELP, ""))
        if current is not None:
            updated = replace(
                current,
                presses=current.presses + 1,
                last_pressed_at=now,
                appointment_id=current.appointment_id or appointment_id,
            )
            self._open[updated.key] = updated
            return updated, False
        if len(self._open) >= MAX_OPEN:
            return min(self._open.values(), key=lambda a: a.raised_at), False
        alert = Alert(
            id=Alert.new_id(), cabin_id=cabin_id, appointment_id=appointment_id, raised_at=now, last_pressed_at=now
        )
        self._open[alert.key] = alert
        return alert, True

    def open_incident(
        self, cabin_id: str, kind: IncidentKind, subject: str, detail: str, now: datetime
    ) -> tuple[Alert | None, bool]:
        """Open an incident's alert, or refresh the open one; returns (alert, whether it is new).

        The alert is None when the cabin already has MAX_INCIDENTS_PER_CABIN open (or the book is full): the
        incident is then dropped, the open ones still show that the cabin needs someone.
        """
        return self.open_condition(cabin_id, AlertKind.of_incident(kind), subject, detail, now)

    def open_condition(
        self, cabin_id: str, kind: AlertKind, subject: str, detail: str, now: datetime, *, repeat: bool = True
    ) -> tuple[Alert | None, bool]:
        """Open an alert of any kind but a call for help, or refresh the open one (`repeat`: count it again);
        returns (alert, whether it is new), as `open_incident` does."""
        key = (cabin_id, kind, subject)
        current = self._open.get(key)
        if current is not None:
            updated = replace(
                current,
                presses=current.presses + (1 if repeat else 0),
                last_pressed_at=now if repeat else current.last_pressed_at,
                detail=detail,
            )
            self._open[key] = updated
            return updated, False
        of_cabin = sum(1 for a in self._open.values() if a.cabin_id == cabin_id and a.kind is not AlertKind.HELP)
        if of_cabin >= MAX_INCIDENTS_PER_CABIN or len(self._open) >= MAX_OPEN:
            return None, False
        alert = Alert(
            id=Alert.new_id(),
            cabin_id=cabin_id,
            appointment_id=None,
            raised_at=now,
            last_pressed_at=now,
            kind=kind,
            subject=subject,
            detail=detail,
        )
        self._open[key] = alert
        return alert, True

    def clear_incident(self, cabin_id: str, kind: IncidentKind, subject: str, now: datetime) -> Alert | None:
        """The cabin says the incident is over: resolve its alert; None if none was open."""
        return self.clear_condition(cabin_id, AlertKind.of_incident(kind), subject, now, "cabin")

    def clear_condition(self, cabin_id: str, kind: AlertKind, subject: str, now: datetime, by: str) -> Alert | None:
        """The condition is over: resolve its alert; None if none was open."""
        alert = self._open.pop((cabin_id, kind, subject), None)
        if alert is None:
            return None
        resolved = replace(alert, resolved_at=now, resolved_by=by)
        self._resolved.append(resolved)
        return resolved

    def get(self, cabin_id: str, kind: AlertKind, subject: str = "") -> Alert | None:
        """The open alert of this cabin, kind and subject, if any."""
        return self._open.get((cabin_id, kind, subject))

    def open_alerts(self, kind: AlertKind | None = None) -> list[Alert]:
        """Open alerts (of one kind, if given), oldest first."""
        alerts = [a for a in self._open.values() if kind is None or a.kind is kind]
        return sorted(alerts, key=lambda a: a.raised_at)

    def recently_resolved(self) -> list[Alert]:
        return list(reversed(self._resolved))

    def for_cabin(self, cabin_id: str) -> list[Alert]:
        """The cabin's open alerts, oldest first."""
        return [a for a in self.open_alerts() if a.cabin_id == cabin_id]

    def resolve(self, alert_id: str, now: datetime, by: str) -> tuple[Alert, bool]:
        """Close an alert; returns (alert, whether this call closed it). Idempotent for recent alerts.

        Raises:
            AlertNotFound: no open or recently resolved alert has this id.
        """
        for key, alert in self._open.items():
            if alert.id == alert_id:
                del self._open[key]
                resolved = replace(alert, resolved_at=now, resolved_by=by)
                self._resolved.append(resolved)
                return resolved, True
        for alert in self._resolved:
            if alert.id == alert_id:
                return alert, False
        raise AlertNotFound(f"no alert {alert_id!r}")
