"""The store seam: what signaling keeps (cabins, appointments, audit), and the errors a store raises.

`signaling.sqlite_store.SQLiteStore` is the implementation; anything else (a Redis-backed store for several nodes)
implements the same Protocol.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from signaling.errors import SignalingError
from signaling.models import Appointment, AuditEvent, Cabin, NotFound


class StoreError(SignalingError, RuntimeError):
    """The store cannot do what was asked: the database is unusable, closed, or a write conflicts with it."""


class DuplicateId(StoreError, ValueError):
    """An appointment or a cabin with this id already exists."""


class UnknownCabin(NotFound, StoreError):
    """An appointment refers to a cabin the store does not know."""


class Store(Protocol):
    # Appointments
    def add_appointment(self, appointment: Appointment) -> None: ...
    def get_appointment(self, appointment_id: str) -> Appointment | None: ...
    def list_appointments(
        self,
        *,
        cabin_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_cancelled: bool = True,
    ) -> list[Appointment]: ...
    def cancel_appointment(self, appointment_id: str, at: datetime) -> Appointment: ...

    # Cabins
    def add_cabin(self, cabin: Cabin) -> None: ...
    def get_cabin(self, cabin_id: str) -> Cabin | None: ...
    def list_cabins(self) -> list[Cabin]: ...
    def update_cabin(self, cabin: Cabin) -> None: ...

    # Audit
    def audit(self, event: AuditEvent) -> None: ...
    def audit_log(self, *, appointment_id: str | None = None, limit: int = 100) -> list[AuditEvent]: ...

    def close(self) -> None: ...
