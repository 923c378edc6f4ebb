"""Appointments: the value object and the store seam (an in-memory store; SQLite comes with persistence)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final, Protocol

from signaling.errors import SignalingError
from signaling.protocol import AppointmentInfo, AppointmentKind

# A professional may open the link a little early, to test their camera before the citizen arrives.
EARLY_JOIN: Final = timedelta(minutes=15)


class AppointmentError(SignalingError, ValueError):
    """An appointment is invalid or unknown."""


@dataclass(frozen=True, slots=True)
class Appointment:
    id: str
    kind: AppointmentKind
    cabin_id: str
    starts_at: datetime
    duration: timedelta
    professional_name: str
    cancelled: bool = False

    def __post_init__(self) -> None:
        if self.starts_at.tzinfo is None:
            raise AppointmentError("starts_at must be timezone-aware")
        if self.duration <= timedelta(0) or self.duration > timedelta(hours=8):
            raise AppointmentError("duration must be between 1 second and 8 hours")
        if not self.cabin_id:
            raise AppointmentError("an appointment needs a cabin")

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + self.duration

    @property
    def opens_at(self) -> datetime:
        """When links for this appointment start to work."""
        return self.starts_at - EARLY_JOIN

    @property
    def is_medical(self) -> bool:
        return self.kind is AppointmentKind.MEDICAL

    def info(self) -> AppointmentInfo:
        return AppointmentInfo(
            id=self.id,
            kind=self.kind,
            cabin_id=self.cabin_id,
            professional_name=self.professional_name,
            starts_at=self.starts_at.isoformat(),
            ends_at=self.ends_at.isoformat(),
        )

    @staticmethod
    def new_id() -> str:
        return "apt_" + secrets.token_hex(6)


class AppointmentStore(Protocol):
    def get(self, appointment_id: str) -> Appointment | None: ...
    def add(self, appointment: Appointment) -> None: ...
    def cancel(self, appointment_id: str) -> Appointment: ...


class MemoryAppointmentStore:
    """Appointments kept in memory: for tests and the demo."""

    def __init__(self) -> None:
        self._items: dict[str, Appointment] = {}

    def get(self, appointment_id: str) -> Appointment | None:
        return self._items.get(appointment_id)

    def add(self, appointment: Appointment) -> None:
        if appointment.id in self._items:
            raise AppointmentError(f"appointment {appointment.id} already exists")
        self._items[appointment.id] = appointment

    def cancel(self, appointment_id: str) -> Appointment:
        current = self._items.get(appointment_id)
        if current is None:
            raise AppointmentError(f"no appointment {appointment_id}")
        cancelled = replace(current, cancelled=True)
        self._items[appointment_id] = cancelled
        return cancelled
