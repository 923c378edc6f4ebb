"""Calls for help from cabins: the open alerts that operators see and resolve, kept in memory on the Hub.

The core (Alert, AlertBook) does no I/O. `help_requested` is the WebSocket side: a cabin's "help" message opens
(or repeats) its alert, writes an audit row, and answers the cabin so that its screen can say "help is coming".
A call for help is never refused: an appointment id that is not the cabin's is dropped, the alert still opens.
The HTTP side (operator API and page) is in signaling/alerts_api.py.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from signaling.errors import SignalingError
from signaling.models import AuditAction
from signaling.protocol import HelpRequest, HelpStatus

if TYPE_CHECKING:
    from signaling.ws import Client, Hub

log = logging.getLogger("cabine.signaling.alerts")

# Resolved alerts remembered so that resolving twice answers the same (and the page can show what just closed).
RECENTLY_RESOLVED: Final = 50
MAX_OPEN: Final = 1000


class AlertNotFound(SignalingError, LookupError):
    """No open or recently resolved alert has this id."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One cabin's call for help; pressing again while it is open adds a press, not a second alert."""

    id: str
    cabin_id: str
    appointment_id: str | None
    raised_at: datetime
    last_pressed_at: datetime
    presses: int = 1
    resolved_at: datetime | None = None
    resolved_by: str = ""

    @property
    def open(self) -> bool:
        return self.resolved_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cabin_id": self.cabin_id,
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
    """Open alerts, at most one per cabin, oldest first; a few recently resolved ones. No I/O."""

    def __init__(self) -> None:
        self._open: dict[str, Alert] = {}  # by cabin id
        self._resolved: deque[Alert] = deque(maxlen=RECENTLY_RESOLVED)

    def raise_alert(self, cabin_id: str, appointment_id: str | None, now: datetime) -> tuple[Alert, bool]:
        """Open the cabin's alert, or add a press to its open one; returns (alert, whether it is new)."""
        current = self._open.get(cabin_id)
        if current is not None:
            updated = replace(
                current,
                presses=current.presses + 1,
                last_pressed_at=now,
                appointment_id=current.appointment_id or appointment_id,
            )
            self._open[cabin_id] = updated
            return updated, False
        if len(self._open) >= MAX_OPEN:
            # Cannot happen with real cabins; bounds memory if something misbehaves. The oldest is kept.
            oldest = min(self._open.values(), key=lambda a: a.raised_at)
            return oldest, False
        alert = Alert(
            id=Alert.new_id(), cabin_id=cabin_id, appointment_id=appointment_id, raised_at=now, last_pressed_at=now
        )
        self._open[cabin_id] = alert
        return alert, True

    def open_alerts(self) -> list[Alert]:
        return sorted(self._open.values(), key=lambda a: a.raised_at)

    def recently_resolved(self) -> list[Alert]:
        return list(reversed(self._resolved))

    def for_cabin(self, cabin_id: str) -> Alert | None:
        return self._open.get(cabin_id)

    def resolve(self, alert_id: str, now: datetime, by: str) -> tuple[Alert, bool]:
        """Close an alert; returns (alert, whether this call closed it). Idempotent for recent alerts.

        Raises:
            AlertNotFound: no open or recently resolved alert has this id.
        """
        for cabin_id, alert in self._open.items():
            if alert.id == alert_id:
                del self._open[cabin_id]
                resolved = replace(alert, resolved_at=now, resolved_by=by)
                self._resolved.append(resolved)
                return resolved, True
        for alert in self._resolved:
            if alert.id == alert_id:
                return alert, False
        raise AlertNotFound(f"no alert {alert_id!r}")


async def help_requested(hub: Hub, client: Client, message: HelpRequest) -> None:
    """A cabin's call for help: open or repeat its alert, audit it, and tell the cabin it was received."""
    cabin_id = client.subject
    appointment_id = message.appointment_id
    detail = ""
    if appointment_id is not None:
        appointment = hub.config.store.get_appointment(appointment_id)
        if appointment is None or appointment.cabin_id != cabin_id:
            detail = "named an appointment that is not this cabin's; "
            appointment_id = None
    alert, new = hub.alerts.raise_alert(cabin_id, appointment_id, hub.config.clock())
    log.warning("%s: CALL FOR HELP, alert %s (press %d)", client.label, alert.id, alert.presses)
    hub.audit(
        AuditAction.HELP_REQUESTED,
        "citizen",
        appointment_id=appointment_id,
        cabin_id=cabin_id,
        address=client.peer,
        detail=f"{detail}alert {alert.id}" + ("" if new else f", press {alert.presses}"),
    )
    await client.send(HelpStatus(alert_id=alert.id, open=True))
