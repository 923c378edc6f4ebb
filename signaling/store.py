"""The store seam: what signaling keeps (cabins, appointments, audit), and the errors a store raises.

`signaling.sqlite_store.SQLiteStore` (the default) and `signaling.postgres_store.PostgresStore` implement it, with
the queries of `signaling.sql_store`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from signaling.cabin_settings import SettingsVersion
from signaling.errors import SignalingError
from signaling.models import Appointment, AuditEvent, Cabin, NotFound


class StoreError(SignalingError, RuntimeError):
    """The store cannot do what was asked: the database is unusable, closed, or a write conflicts with it."""


class DuplicateId(StoreError, ValueError):
    """An appointment or a cabin with this id already exists."""


class UnknownCabin(NotFound, StoreError):
    """An appointment refers to a cabin the store does not know."""


class Overlap(StoreError, ValueError):
    """The cabin is already booked, by `existing`, at a time that overlaps the new appointment."""

    def __init__(self, existing: Appointment) -> None:
        super().__init__(
            f"cabin {existing.cabin_id!r} is already booked from {_iso(existing.starts_at)} to "
            f"{_iso(existing.ends_at)} by appointment {existing.id}"
        )
        self.existing = existing


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


class Store(Protocol):
    # Appointments. Adding checks, atomically with the insertion, that no booked appointment of the same cabin
    # overlaps the new one (raises Overlap); two concurrent bookings cannot both pass.
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
    def set_admitted(self, appointment_id: str, at: datetime | None) -> None: ...

    # Cabins
    def add_cabin(self, cabin: Cabin) -> None: ...
    def get_cabin(self, cabin_id: str) -> Cabin | None: ...
    def list_cabins(self) -> list[Cabin]: ...
    def update_cabin(self, cabin: Cabin) -> None: ...
    # Records the key and uses the code up in one statement (None: the code is not pending now); two nodes racing
    # with one code cannot both succeed.
    def enroll_cabin(self, cabin_id: str, code_hash: bytes, public_key: bytes, at: datetime) -> Cabin | None: ...

    # Cabin settings set from afar, every version kept
    def add_cabin_settings(
        self, cabin_id: str, settings: dict[str, dict[str, Any]], at: datetime, by: str
    ) -> SettingsVersion: ...
    def cabin_settings(self, cabin_id: str, *, limit: int = 1) -> list[SettingsVersion]: ...

    # Audit
    def audit(self, event: AuditEvent) -> None: ...
    def audit_log(
        self, *, appointment_id: str | None = None, cabin_id: str | None = None, limit: int = 100
    ) -> list[AuditEvent]: ...

    def close(self) -> None: ...
