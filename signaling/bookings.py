"""What booking systems are told about appointments: a professional joined, the citizen admitted, the call ended,
nobody came (no-show), cancelled. Pure: no I/O; the hub sends the events it returns (signaling/webhooks.py).

An event names the appointment, its cabin, kind and times, never who the citizen is. Each appointment's end is told
once: "ended" at the professional's bye or when its time is over after a call, "no_show" when its time is over and
no call started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from signaling.models import Appointment
from signaling.protocol import AppointmentKind

# What is remembered of an appointment after its end (long enough for any overtime).
KEEP: Final = timedelta(days=1)

Event = tuple[str, dict[str, Any]]


class RoomLike(Protocol):
    @property
    def appointment_id(self) -> str: ...
    @property
    def cabin_id(self) -> str: ...
    @property
    def kind(self) -> AppointmentKind: ...
    @property
    def ends_at(self) -> datetime: ...


def _data(appointment: Appointment | RoomLike, **extra: Any) -> dict[str, Any]:
    if isinstance(appointment, Appointment):
        data: dict[str, Any] = {
            "appointment_id": appointment.id,
            "cabin_id": appointment.cabin_id,
            "kind": appointment.kind.value,
            "starts_at": appointment.starts_at.isoformat(),
            "ends_at": appointment.ends_at.isoformat(),
        }
    else:
        data = {
            "appointment_id": appointment.appointment_id,
            "cabin_id": appointment.cabin_id,
            "kind": appointment.kind.value,
            "ends_at": appointment.ends_at.isoformat(),
        }
    return {**data, **extra}


@dataclass
class AppointmentLedger:
    """Which appointments a professional joined, which calls started, which endings were told; bounded by time."""

    checked_until: datetime

    def __post_init__(self) -> None:
        self._joined: dict[str, datetime] = {}  # by appointment id: its end
        self._started: dict[str, datetime] = {}
        self._told: dict[str, datetime] = {}

    def professional_joined(self, appointment: Appointment) -> tuple[bool, Event]:
        """(whether a professional had joined it before, the event)."""
        again = appointment.id in self._joined
        self._joined[appointment.id] = appointment.ends_at
        return again, ("appointment.professional_joined", _data(appointment))

    def citizen_admitted(self, room: RoomLike, by: str) -> Event:
        return "appointment.citizen_admitted", _data(room, by=by)

    def call_started(self, room: RoomLike) -> None:
        self._started[room.appointment_id] = room.ends_at

    def call_ended(self, room: RoomLike, reason: str) -> Event | None:
        """The event for a call's end, once per appointment (None if already told)."""
        if room.appointment_id in self._told:
            return None
        self._told[room.appointment_id] = room.ends_at
        return "appointment.ended", _data(room, reason=reason)

    def cancelled(self, appointment: Appointment) -> Event:
        self._told[appointment.id] = appointment.ends_at
        return "appointment.cancelled", _data(appointment)

    def endings(
        self, appointments: Iterable[Appointment], now: datetime, citizen_present: Callable[[str], bool]
    ) -> list[Event]:
        """Appointments whose time ended since the last call (those of `appointments` that did): "ended" if their
        call started, else "no_show"; what is over for a day is forgotten."""
        since, self.checked_until = self.checked_until, now
        events: list[Event] = []
        for appointment in appointments:
            if appointment.cancelled or not since < appointment.ends_at <= now or appointment.id in self._told:
                continue
            self._told[appointment.id] = appointment.ends_at
            if appointment.id in self._started:
                events.append(("appointment.ended", _data(appointment, reason="time")))
            else:
                events.append(
                    (
                        "appointment.no_show",
                        _data(
                            appointment,
                            professional_joined=appointment.id in self._joined,
                            citizen_present=citizen_present(appointment.id),
                        ),
                    )
                )
        horizon = now - KEEP
        for table in (self._joined, self._started, self._told):
            for appointment_id, ends_at in list(table.items()):
                if ends_at < horizon:
                    del table[appointment_id]
        return events
