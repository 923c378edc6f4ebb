"""The embedded store: cabins, appointments and the audit log in one SQLite file (WAL), with ordered migrations.

Datetimes are stored as UTC ISO-8601 text (so text order is time order), durations as seconds. The audit table has
no column for health data: who joined, was admitted, left or was refused, the actor, the address, the time.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from signaling.cabin_settings import SettingsVersion
from signaling.models import Appointment, AuditAction, AuditEvent, Cabin, ModelError, NotFound
from signaling.protocol import AppointmentKind
from signaling.store import DuplicateId, Overlap, StoreError, UnknownCabin

# How long a connection waits for another process's write lock before giving up.
BUSY_TIMEOUT_MS: Final = 5000


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema; applied once, in order, inside the transaction that records it."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "cabins, appointments, audit",
        (
            """CREATE TABLE cabins (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL DEFAULT '',
                public_key BLOB CHECK (public_key IS NULL OR length(public_key) = 32),
                disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
                enrolled_at TEXT
            )""",
            """CREATE TABLE appointments (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                cabin_id TEXT NOT NULL REFERENCES cabins (id),
                starts_at TEXT NOT NULL,
                ends_at TEXT NOT NULL,
                duration_seconds REAL NOT NULL CHECK (duration_seconds > 0),
                professional_name TEXT NOT NULL,
                created_at TEXT,
                cancelled_at TEXT
            )""",
            # Deliberately no foreign keys: the audit outlives what it mentions, and records refused attempts
            # that name appointments or cabins which do not exist.
            """CREATE TABLE audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at TEXT NOT NULL,
                action TEXT NOT NULL,
                actor TEXT NOT NULL,
                appointment_id TEXT,
                cabin_id TEXT,
                address TEXT,
                detail TEXT NOT NULL DEFAULT ''
            )""",
        ),
    ),
    Migration(
        2,
        "cabin enrollment codes; indexes for listing",
        (
            "ALTER TABLE cabins ADD COLUMN enrollment_code_hash BLOB",
            "ALTER TABLE cabins ADD COLUMN enrollment_expires_at TEXT",
            "CREATE INDEX appointments_by_start ON appointments (starts_at, id)",
            "CREATE INDEX appointments_by_cabin ON appointments (cabin_id, starts_at)",
            "CREATE INDEX audit_by_appointment ON audit (appointment_id, at)",
        ),
    ),
    Migration(
        3,
        "admissions outlive a restart of signaling",
        ("ALTER TABLE appointments ADD COLUMN admitted_at TEXT",),
    ),
    Migration(
        4,
        "a cabin's recent events for the dashboard; cabin configurations set from afar, every version kept",
        (
            "CREATE INDEX audit_by_cabin ON audit (cabin_id, at)",
            """CREATE TABLE cabin_settings (
                cabin_id TEXT NOT NULL,
                version INTEGER NOT NULL CHECK (version >= 1),
                settings TEXT NOT NULL,
                created_at TEXT NOT NULL,
                created_by TEXT NOT NULL,
                PRIMARY KEY (cabin_id, version)
            )""",
        ),
    ),
)

_SCHEMA_VERSION_TABLE: Final = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


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


def _appointment(row: sqlite3.Row) -> Appointment:
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


def _cabin(row: sqlite3.Row) -> Cabin:
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


def _audit_event(row: sqlite3.Row) -> AuditEvent:
    return AuditEvent(
        at=_required_datetime(row["at"]),
        action=AuditAction(row["action"]),
        actor=row["actor"],
        appointment_id=row["appointment_id"],
        cabin_id=row["cabin_id"],
        address=row["address"],
        detail=row["detail"],
    )


def schema_version(connection: sqlite3.Connection) -> int:
    """The highest migration recorded in `connection`'s database (0 for a new database)."""
    row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(connection: sqlite3.Connection, migrations: Sequence[Migration], *, now: datetime) -> int:
    """Apply the migrations the database lacks, all in one transaction; returns the resulting version.

    Raises:
        StoreError: the database was made by a newer Cabine, or a migration failed (nothing is applied then).
        ValueError: `migrations` are not numbered 1, 2, 3...
    """
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise ValueError("migrations must be numbered 1, 2, 3... in order")
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute(_SCHEMA_VERSION_TABLE)
        current = schema_version(connection)
        if current > len(migrations):
            raise StoreError(
                f"the database schema is version {current}, newer than this Cabine knows ({len(migrations)}): "
                "upgrade Cabine, or open another database"
            )
        for migration in migrations[current:]:
            for statement in migration.statements:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, _text(now, "now")),
            )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return max(current, len(migrations))


class SQLiteStore:
    """`signaling.store.Store` on one SQLite file; safe to share between threads (one lock per store)."""

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._lock = threading.Lock()
        self.path = path

    @classmethod
    def open(cls, path: Path | str, *, migrations: Sequence[Migration] = MIGRATIONS) -> SQLiteStore:
        """Open (creating it if needed) and migrate the database at `path`; ":memory:" for a private one.

        Raises:
            StoreError: the file cannot be opened, is not a database, or has a newer schema than `migrations`.
        """
        name = str(path)
        try:
            connection = sqlite3.connect(
                name, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {name}: {exc}") from exc
        try:
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            migrate(connection, migrations, now=datetime.now(UTC))
        except sqlite3.Error as exc:
            connection.close()
            raise StoreError(f"cannot use the database {name}: {exc}") from exc
        except BaseException:
            connection.close()
            raise
        return cls(connection, name)

    @staticmethod
    def check(path: Path, *, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        """Check, without creating or changing anything, that `path` can be opened: it does not exist yet (its
        directory must), or it is a database this Cabine knows how to migrate.

        Raises:
            StoreError: the directory is missing or read-only, the file is unreadable, not a database, or newer.
        """
        if not path.exists():
            directory = path.parent
            if not directory.is_dir():
                raise StoreError(f"the database's directory {directory} does not exist")
            if not os.access(directory, os.W_OK | os.X_OK):
                raise StoreError(f"the database's directory {directory} is not writable")
            return
        if not path.is_file():
            raise StoreError(f"the database {path} is not a file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise StoreError(f"the database {path} is not readable and writable")
        try:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            current = schema_version(connection) if "schema_version" in tables else 0
        except sqlite3.Error as exc:
            raise StoreError(f"cannot use the database {path}: {exc}") from exc
        finally:
            connection.close()
        if current > len(migrations):
            raise StoreError(
                f"the database schema is version {current}, newer than this Cabine knows ({len(migrations)}): "
                "upgrade Cabine, or open another database"
            )

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    @property
    def schema_version(self) -> int:
        with self._locked() as connection:
            return schema_version(connection)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._connection is None:
                raise StoreError("the store is closed")
            yield self._connection

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; rolled back if the body raises.

        Raises:
            StoreError: the store is closed, or SQLite failed (disk full, locked too long...).
        """
        with self._locked() as connection:
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to the database {self.path}: {exc}") from exc
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException as exc:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot write to the database {self.path}: {exc}") from exc
                raise

    # --- appointments ---------------------------------------------------------------------------------------

    def add_appointment(self, appointment: Appointment) -> None:
        """Record a new appointment, unless its cabin is already booked at an overlapping time.

        The check and the insertion run in one write transaction (BEGIN IMMEDIATE takes the database's write lock
        first), so two bookings racing for the same time, from this process or another, cannot both pass.
        Cancelled appointments do not count; back to back is fine.

        Raises:
            DuplicateId: an appointment with this id exists.
            UnknownCabin: its cabin is not in the store.
            Overlap: a booked appointment of the same cabin overlaps it.
        """
        with self._transaction() as connection:
            if connection.execute("SELECT 1 FROM appointments WHERE id = ?", (appointment.id,)).fetchone():
                raise DuplicateId(f"appointment {appointment.id!r} already exists")
            if not connection.execute("SELECT 1 FROM cabins WHERE id = ?", (appointment.cabin_id,)).fetchone():
                raise UnknownCabin(f"no cabin {appointment.cabin_id!r}: add the cabin before booking it")
            if not appointment.cancelled:
                clash = connection.execute(
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
            connection.execute(
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
            row = connection.execute("SELECT * FROM appointments WHERE id = ?", (appointment_id,)).fetchone()
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
            rows = connection.execute(f"SELECT * FROM appointments{where} ORDER BY starts_at, id", values).fetchall()
        return [_appointment(row) for row in rows]

    def cancel_appointment(self, appointment_id: str, at: datetime) -> Appointment:
        """Cancel an appointment; cancelling again keeps the first cancellation time.

        Raises:
            NotFound: no appointment has this id.
            ModelError: `at` is naive.
        """
        stamp = _text(at, "at")
        with self._transaction() as connection:
            cursor = connection.execute(
                "UPDATE appointments SET cancelled_at = coalesce(cancelled_at, ?) WHERE id = ?",
                (stamp, appointment_id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no appointment {appointment_id!r}")
            row = connection.execute("SELECT * FROM appointments WHERE id = ?", (appointment_id,)).fetchone()
        return _appointment(row)

    def set_admitted(self, appointment_id: str, at: datetime | None) -> None:
        """Record that the citizen was admitted at `at` (None: no longer admitted, they left the cabin).

        Raises:
            NotFound: no appointment has this id.
            ModelError: `at` is naive.
        """
        stamp = None if at is None else _text(at, "at")
        with self._transaction() as connection:
            cursor = connection.execute("UPDATE appointments SET admitted_at = ? WHERE id = ?", (stamp, appointment_id))
            if cursor.rowcount == 0:
                raise NotFound(f"no appointment {appointment_id!r}")

    # --- cabins ---------------------------------------------------------------------------------------------

    def add_cabin(self, cabin: Cabin) -> None:
        """Record a new cabin.

        Raises:
            DuplicateId: a cabin with this id exists.
        """
        with self._transaction() as connection:
            if connection.execute("SELECT 1 FROM cabins WHERE id = ?", (cabin.id,)).fetchone():
                raise DuplicateId(f"cabin {cabin.id!r} already exists")
            connection.execute(
                "INSERT INTO cabins (name, public_key, disabled, enrolled_at, enrollment_code_hash,"
                " enrollment_expires_at, id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                _cabin_values(cabin),
            )

    def get_cabin(self, cabin_id: str) -> Cabin | None:
        with self._locked() as connection:
            row = connection.execute("SELECT * FROM cabins WHERE id = ?", (cabin_id,)).fetchone()
        return None if row is None else _cabin(row)

    def list_cabins(self) -> list[Cabin]:
        """Every cabin, by id."""
        with self._locked() as connection:
            rows = connection.execute("SELECT * FROM cabins ORDER BY id").fetchall()
        return [_cabin(row) for row in rows]

    def update_cabin(self, cabin: Cabin) -> None:
        """Replace the stored cabin that has `cabin.id` with `cabin`.

        Raises:
            NotFound: no cabin has this id.
        """
        with self._transaction() as connection:
            cursor = connection.execute(
                "UPDATE cabins SET name = ?, public_key = ?, disabled = ?, enrolled_at = ?,"
                " enrollment_code_hash = ?, enrollment_expires_at = ? WHERE id = ?",
                _cabin_values(cabin),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no cabin {cabin.id!r}")

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
            if not connection.execute("SELECT 1 FROM cabins WHERE id = ?", (cabin_id,)).fetchone():
                raise NotFound(f"no cabin {cabin_id!r}")
            row = connection.execute(
                "INSERT INTO cabin_settings (cabin_id, version, settings, created_at, created_by)"
                " SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ?, ? FROM cabin_settings WHERE cabin_id = ?"
                " RETURNING version",
                (cabin_id, text, stamp, by, cabin_id),
            ).fetchone()
        return SettingsVersion(cabin_id, int(row[0]), settings, at, by)

    def cabin_settings(self, cabin_id: str, *, limit: int = 1) -> list[SettingsVersion]:
        """The cabin's latest `limit` settings versions, newest first (empty: never set from afar)."""
        with self._locked() as connection:
            rows = connection.execute(
                "SELECT * FROM cabin_settings WHERE cabin_id = ? ORDER BY version DESC LIMIT ?", (cabin_id, limit)
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
            connection.execute(
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
            rows = connection.execute(
                f"SELECT * FROM audit {where} ORDER BY at DESC, id DESC LIMIT ?", [*values, limit]
            ).fetchall()
        return [_audit_event(row) for row in rows]
