"""What both engines share: the queries on cabins, appointments, cabin settings and the audit log, written once in
the SQL that SQLite and PostgreSQL both speak (`?` placeholders, translated for PostgreSQL), and the migrations,
written once too (gateway.sqlite_store.MIGRATIONS; PostgreSQL's spelling of the few types that differ is made by
`postgres_ddl`).

Datetimes are stored as UTC ISO-8601 text (so text order is time order), durations as seconds. The audit table has
no column for health data: who joined, was admitted, left or was refused, the actor, the address, the time.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from signaling.cabin_settings import SettingsVersion
from signaling.models import Appointment, AuditAction, AuditEvent, Cabin, ModelError, NotFound
from signaling.protocol import AppointmentKind
from signaling.store import DuplicateId, Overlap, StoreError, UnknownCabin

# A result row, read by column name (sqlite3.Row, or psycopg's dict rows).
Row = Mapping[str, Any]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...
    def fetchall(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema; applied once, in order, inside the transaction that records it."""

    version: int
    description: str
    statements: tuple[str, ...]


def newer_schema(current: int, known: int) -> StoreError:
    """The refusal of a database made by a newer Cabine."""
    return StoreError(
        f"the database schema is version {current}, newer than this Cabine knows ({known}): "
        "upgrade Cabine, or open another database"
    )


def postgres_ddl(statement: str) -> str:
    """A migration statement in PostgreSQL's spelling (the few types and functions that differ from SQLite's)."""
    return (
        statement.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
        .replace("BLOB", "BYTEA")
        .replace("length(public_key)", "octet_length(public_key)")
    )


def _text(value: datetime, name: str) -> str:
    """A datetime as UTC ISO-8601 text with a fixed width, so that text order is time order.

    Raises:
        ModelError: the datetime is naive.
    """
    if value.tzinfo is None:
        raise ModelError(f"{name} must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _datetime(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _required_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _appointment(row: Row) -> Appointment:
    return Appointment(
        id=row["id"],
        kind=AppointmentKind(row["kind"]),
        cabin_id=row["cabin_id"],
        starts_at=_required_datetime(row["starts_at"]),
        duration=timedelta(seconds=row["duration_seconds"]),
        professional_name=row["professional_name"],
        cancelled_at=_datetime(row["cancelled_at"]),
        created_at=_datetime(row["created_at"]),
        admitted_at=_datetime(row["admitted_at"]),
    )


def _cabin(row: Row) -> Cabin:
    return Cabin(
        id=row["id"],
        name=row["name"],
        public_key=row["public_key"],
        disabled=bool(row["disabled"]),
        enrolled_at=_datetime(row["enrolled_at"]),
        enrollment_code_hash=row["enrollment_code_hash"],
        enrollment_expires_at=_datetime(row["enrollment_expires_at"]),
    )


def _cabin_values(cabin: Cabin) -> tuple[object, ...]:
    return (
        cabin.name,
        cabin.public_key,
        int(cabin.disabled),
        None if cabin.enrolled_at is None else _text(cabin.enrolled_at, "enrolled_at"),
        cabin.enrollment_code_hash,
        None if cabin.enrollment_expires_at is None else _text(cabin.enrollment_expires_at, "enrollment_expires_at"),
        cabin.id,
    )


def _audit_event(row: Row) -> AuditEvent:
    return AuditEvent(
        at=_required_datetime(row["at"]),
        action=AuditAction(row["action"]),
        actor=row["actor"],
        appointment_id=row["appointment_id"],
        cabin_id=row["cabin_id"],
        address=row["address"],
        detail=row["detail"],
    )


class SqlStore:
    """`signaling.store.Store` in SQL; an engine gives `_transaction`, `_locked`, `_run` and `_lock_cabin`."""

    path: str
    # The engine's connection (None once closed) and the lock its users take turns on.
    _connection: Any
    _lock: threading.Lock

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Any]:
        """A connection to read with."""
        raise NotImplementedError
        yield

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A connection in a write transaction, committed at the end, rolled back if the body raises."""
        raise NotImplementedError
        yield

    def _run(self, connection: Any, sql: str, values: Sequence[object] = ()) -> Cursor:
        raise NotImplementedError

    def _lock_cabin(self, connection: Any, cabin_id: str) -> bool:
        """Serialize the writes about one cabin (bookings, settings versions); False if there is no such cabin."""
        return bool(self._run(connection, "SELECT 1 FROM cabins WHERE id = ?", (cabin_id,)).fetchone())

    # --- appointments ---------------------------------------------------------------------------------------

    def add_appointment(self, appointment: Appointment) -> None:
        """Record a new appointment, unless its cabin is already booked at an overlapping time.

        The check and the insertion run in one write transaction that first locks the cabin (SQLite's write lock,
        PostgreSQL's row lock), so two bookings racing for the same time, from this process or another node,
        cannot both pass.
        Cancelled appointments do not count; back to back is fine.

        Raises:
            DuplicateId: an appointment with this id exists.
            UnknownCabin: its cabin is not in the store.
            Overlap: a booked appointment of the same cabin overlaps it.
        """
        with self._transaction() as connection:
            known = self._lock_cabin(connection, appointment.cabin_id)
            if self._run(connection, "SELECT 1 FROM appointments WHERE id = ?", (appointment.id,)).fetchone():
                raise DuplicateId(f"appointment {appointment.id!r} already exists")
            if not known:
                raise UnknownCabin(f"no cabin {appointment.cabin_id!r}: add the cabin before booking it")
            if not appointment.cancelled:
                clash = self._run(
                    connection,
                    "SELECT * FROM appointments WHERE cabin_id = ? AND cancelled_at IS NULL"
                    " AND starts_at < ? AND ends_at > ? ORDER BY starts_at, id LIMIT 1",
                    (
                        appointment.cabin_id,
                        _text(appointment.ends_at, "ends_at"),
                        _text(appointment.starts_at, "starts_at"),
                    ),
                ).fetchone()
                if clash is not None:
                    raise Overlap(_appointment(clash))
            self._run(
                connection,
                "INSERT INTO appointments (id, kind, cabin_id, starts_at, ends_at, duration_seconds,"
                " professional_name, created_at, cancelled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    appointment.id,
                    appointment.kind.value,
                    appointment.cabin_id,
                    _text(appointment.starts_at, "starts_at"),
                    _text(appointment.ends_at, "ends_at"),
                    appointment.duration.total_seconds(),
                    appointment.professional_name,
                    None if appointment.created_at is None else _text(appointment.created_at, "created_at"),
                    None if appointment.cancelled_at is None else _text(appointment.cancelled_at, "cancelled_at"),
                ),
            )

    def get_appointment(self, appointment_id: str) -> Appointment | None:
        with self._locked() as connection:
            row = self._run(connection, "SELECT * FROM appointments WHERE id = ?", (appointment_id,)).fetchone()
        return None if row is None else _appointment(row)

    def list_appointments(
        self,
        *,
        cabin_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_cancelled: bool = True,
    ) -> list[Appointment]:
        """Appointments that overlap [since, until) (ending after `since`, starting before `until`), by start.

        Raises:
            ModelError: `since` or `until` is naive.
        """
        clauses: list[str] = []
        values: list[object] = []
        if cabin_id is not None:
            clauses.append("cabin_id = ?")
            values.append(cabin_id)
        if since is not None:
            clauses.append("ends_at > ?")
            values.append(_text(since, "since"))
        if until is not None:
            clauses.append("starts_at < ?")
            values.append(_text(until, "until"))
        if not include_cancelled:
            clauses.append("cancelled_at IS NULL")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._locked() as connection:
            rows = self._run(connection, f"SELECT * FROM appointments{where} ORDER BY starts_at, id", values).fetchall()
        return [_appointment(row) for row in rows]

    def cancel_appointment(self, appointment_id: str, at: datetime) -> Appointment:
        """Cancel an appointment; cancelling again keeps the first cancellation time.

        Raises:
            NotFound: no appointment has this id.
            ModelError: `at` is naive.
        """
        stamp = _text(at, "at")
        with self._transaction() as connection:
            cursor = self._run(
                connection,
                "UPDATE appointments SET cancelled_at = coalesce(cancelled_at, ?) WHERE id = ?",
                (stamp, appointment_id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no appointment {appointment_id!r}")
            row = self._run(connection, "SELECT * FROM appointments WHERE id = ?", (appointment_id,)).fetchone()
        return _appointment(row)

    def set_admitted(self, appointment_id: str, at: datetime | None) -> None:
        """Record that the citizen was admitted at `at` (None: no longer admitted, they left the cabin).

        Raises:
            NotFound: no appointment has this id.
            ModelError: `at` is naive.
        """
        stamp = None if at is None else _text(at, "at")
        with self._transaction() as connection:
            cursor = self._run(
                connection, "UPDATE appointments SET admitted_at = ? WHERE id = ?", (stamp, appointment_id)
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no appointment {appointment_id!r}")

    # --- cabins ---------------------------------------------------------------------------------------------

    def add_cabin(self, cabin: Cabin) -> None:
        """Record a new cabin.

        Raises:
            DuplicateId: a cabin with this id exists.
        """
        with self._transaction() as connection:
            if self._run(connection, "SELECT 1 FROM cabins WHERE id = ?", (cabin.id,)).fetchone():
                raise DuplicateId(f"cabin {cabin.id!r} already exists")
            self._run(
                connection,
                "INSERT INTO cabins (name, public_key, disabled, enrolled_at, enrollment_code_hash,"
                " enrollment_expires_at, id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                _cabin_values(cabin),
            )

    def get_cabin(self, cabin_id: str) -> Cabin | None:
        with self._locked() as connection:
            row = self._run(connection, "SELECT * FROM cabins WHERE id = ?", (cabin_id,)).fetchone()
        return None if row is None else _cabin(row)

    def list_cabins(self) -> list[Cabin]:
        """Every cabin, by id."""
        with self._locked() as connection:
            rows = self._run(connection, "SELECT * FROM cabins ORDER BY id").fetchall()
        return [_cabin(row) for row in rows]

    def update_cabin(self, cabin: Cabin) -> None:
        """Replace the stored cabin that has `cabin.id` with `cabin`.

        Raises:
            NotFound: no cabin has this id.
        """
        with self._transaction() as connection:
            cursor = self._run(
                connection,
                "UPDATE cabins SET name = ?, public_key = ?, disabled = ?, enrolled_at = ?,"
                " enrollment_code_hash = ?, enrollment_expires_at = ? WHERE id = ?",
                _cabin_values(cabin),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no cabin {cabin.id!r}")

    def enroll_cabin(self, cabin_id: str, code_hash: bytes, public_key: bytes, at: datetime) -> Cabin | None:
        """Record the cabin's key if `code_hash` is its pending, unexpired enrollment code, and use the code up: one
        statement, so that two uses of one code (on two nodes) can never both succeed. None: no such code now.

        Raises:
            ModelError: `at` is naive.
        """
        stamp = _text(at, "at")
        with self._transaction() as connection:
            row = self._run(
                connection,
                "UPDATE cabins SET public_key = ?, enrolled_at = ?, enrollment_code_hash = NULL,"
                " enrollment_expires_at = NULL WHERE id = ? AND enrollment_code_hash = ?"
                " AND enrollment_expires_at > ? RETURNING *",
                (public_key, stamp, cabin_id, code_hash, stamp),
            ).fetchone()
        return None if row is None else _cabin(row)

    # --- cabin settings set from afar ------------------------------------------------------------------------

    def add_cabin_settings(
        self, cabin_id: str, settings: dict[str, dict[str, Any]], at: datetime, by: str
    ) -> SettingsVersion:
        """Store the cabin's next settings version (the previous ones are kept, for the audit).

        Numbering is one statement: two operators saving at once get two versions, never one twice.

        Raises:
            NotFound: no cabin has this id.
        """
        stamp = _text(at, "at")
        text = json.dumps(settings, separators=(",", ":"), sort_keys=True)
        with self._transaction() as connection:
            if not self._lock_cabin(connection, cabin_id):
                raise NotFound(f"no cabin {cabin_id!r}")
            row = self._run(
                connection,
                "INSERT INTO cabin_settings (cabin_id, version, settings, created_at, created_by)"
                " SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ?, ? FROM cabin_settings WHERE cabin_id = ?"
                " RETURNING version",
                (cabin_id, text, stamp, by, cabin_id),
            ).fetchone()
        return SettingsVersion(cabin_id, int(row["version"]), settings, at, by)

    def cabin_settings(self, cabin_id: str, *, limit: int = 1) -> list[SettingsVersion]:
        """The cabin's latest `limit` settings versions, newest first (empty: never set from afar)."""
        with self._locked() as connection:
            rows = self._run(
                connection,
                "SELECT * FROM cabin_settings WHERE cabin_id = ? ORDER BY version DESC LIMIT ?",
                (cabin_id, limit),
            ).fetchall()
        return [
            SettingsVersion(
                row["cabin_id"],
                row["version"],
                json.loads(row["settings"]),
                _required_datetime(row["created_at"]),
                row["created_by"],
            )
            for row in rows
        ]

    # --- audit ----------------------------------------------------------------------------------------------

    def audit(self, event: AuditEvent) -> None:
        """Append an event to the audit log."""
        with self._transaction() as connection:
            self._run(
                connection,
                "INSERT INTO audit (at, action, actor, appointment_id, cabin_id, address, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    _text(event.at, "at"),
                    event.action.value,
                    event.actor,
                    event.appointment_id,
                    event.cabin_id,
                    event.address,
                    event.detail,
                ),
            )

    def audit_log(
        self, *, appointment_id: str | None = None, cabin_id: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """The latest `limit` events, newest first, optionally about one appointment or one cabin only.

        Raises:
            ModelError: `limit` is not positive.
        """
        if limit < 1:
            raise ModelError("limit must be at least 1")
        conditions, values = [], []
        for column, value in (("appointment_id", appointment_id), ("cabin_id", cabin_id)):
            if value is not None:
                conditions.append(f"{column} = ?")
                values.append(value)
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
        with self._locked() as connection:
            rows = self._run(
                connection, f"SELECT * FROM audit {where} ORDER BY at DESC, id DESC LIMIT ?", [*values, limit]
            ).fetchall()
        return [_audit_event(row) for row in rows]
