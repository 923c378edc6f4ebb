"""Value objects of the access layer: appointments, cabins, audit events. Pure."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from signaling.errors import SignalingError
from signaling.protocol import AppointmentInfo, AppointmentKind

# A professional may open the link a little early, to test their camera before the citizen arrives.
EARLY_JOIN: Final = timedelta(minutes=15)
MAX_DURATION: Final = timedelta(hours=8)


class ModelError(SignalingError, ValueError):
    """A value is invalid; the message says which and why."""


class NotFound(SignalingError, LookupError):
    """No such appointment or cabin."""


def _aware(name: str, value: datetime) -> None:
    if value.tzinfo is None:
        raise ModelError(f"{name} must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Appointment:
    id: str
    kind: AppointmentKind
    cabin_id: str
    starts_at: datetime
    duration: timedelta
    professional_name: str
    cancelled_at: datetime | None = None
    created_at: datetime | None = None
    # When the professional let the citizen in (kept, so that a restart of signaling does not undo it).
    admitted_at: datetime | None = None

    def __post_init__(self) -> None:
        _aware("starts_at", self.starts_at)
        if not timedelta(minutes=1) <= self.duration <= MAX_DURATION:
            raise ModelError("duration must be between 1 minute and 8 hours")
        if not self.cabin_id:
            raise ModelError("an appointment needs a cabin")
        if len(self.professional_name) > 120:
            raise ModelError("professional_name is too long (120 characters at most)")

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + self.duration

    @property
    def opens_at(self) -> datetime:
        """When links for this appointment start to work."""
        return self.starts_at - EARLY_JOIN

    def is_open(self, now: datetime) -> bool:
        return not self.cancelled and self.opens_at <= now < self.ends_at

    def overlaps(self, other: Appointment) -> bool:
        """Both are booked (not cancelled) for the same cabin at times that overlap (back to back is fine)."""
        return (
            self.cabin_id == other.cabin_id
            and not (self.cancelled or other.cancelled)
            and self.starts_at < other.ends_at
            and other.starts_at < self.ends_at
        )

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
        return "apt_" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Cabin:
    """A cabin; `public_key` is its raw 32-byte Ed25519 key once enrolled."""

    id: str
    name: str = ""
    public_key: bytes | None = None
    disabled: bool = False
    enrolled_at: datetime | None = None
    # SHA-256 of the one-time enrollment code, and when that code stops working.
    enrollment_code_hash: bytes | None = None
    enrollment_expires_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.id or len(self.id) > 64 or not all(c.isalnum() or c in "-_." for c in self.id):
            raise ModelError("a cabin id is 1-64 letters, digits, '-', '_' or '.'")
        if self.public_key is not None and len(self.public_key) != 32:
            raise ModelError("a cabin's public key is a raw 32-byte Ed25519 key")

    @property
    def enrolled(self) -> bool:
        return self.public_key is not None


class AuditAction(enum.StrEnum):
    APPOINTMENT_CREATED = "appointment-created"
    APPOINTMENT_CANCELLED = "appointment-cancelled"
    JOINED = "joined"
    REFUSED = "refused"
    ADMITTED = "admitted"
    LEFT = "left"
    CABIN_CREATED = "cabin-created"
    CABIN_ENROLLED = "cabin-enrolled"
    CABIN_ENROLLMENT_CODE = "cabin-enrollment-code"
    CABIN_DISABLED = "cabin-disabled"
    CABIN_ENABLED = "cabin-enabled"
    CABIN_CONNECTED = "cabin-connected"
    CABIN_DISCONNECTED = "cabin-disconnected"
    HELP_REQUESTED = "help-requested"
    HELP_RESOLVED = "help-resolved"
    SELFTEST_REQUESTED = "selftest-requested"
    INCIDENT_OPENED = "incident-opened"
    INCIDENT_CLEARED = "incident-cleared"
    CONFIG_CHANGED = "config-changed"
    CONFIG_APPLIED = "config-applied"
    CONFIG_REFUSED = "config-refused"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Who did what, from where, when. Never health data, never a token."""

    at: datetime
    action: AuditAction
    actor: str  # "professional", "cabin", "operator", "citizen"
    appointment_id: str | None = None
    cabin_id: str | None = None
    address: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        _aware("at", self.at)
        if len(self.detail) > 500:
            raise ModelError("audit detail is too long")
