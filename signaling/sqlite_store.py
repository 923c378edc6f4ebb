"""The embedded store: cabins, appointments and the audit log in one SQLite file (WAL), with ordered migrations.

The queries are signaling.sql_store's, shared with PostgreSQL; here, how SQLite is opened, checked, migrated and
locked (BEGIN IMMEDIATE takes the database's write lock first: writes are serialized, across processes too).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from signaling.sql_store import Migration, SqlStore, _text, newer_schema
from signaling.store import StoreError

__all__ = ["MIGRATIONS", "Migration", "SQLiteStore", "migrate", "schema_version"]

# How long a connection waits for another process's write lock before giving up.
BUSY_TIMEOUT_MS: Final = 5000


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


def schema_version(connection: sqlite3.Connection) -> int:
    """The highest migration recorded in `connection`'s database (0 for a new database)."""
    row = connection.execute("SELECT max(version) AS version FROM schema_version").fetchone()
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
            raise newer_schema(current, len(migrations))
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


class SQLiteStore(SqlStore):
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
            raise newer_schema(current, len(migrations))

    def __enter__(self) -> SQLiteStore:
        return self

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

    def _run(self, connection: sqlite3.Connection, sql: str, values: Sequence[object] = ()) -> sqlite3.Cursor:
        return connection.execute(sql, values)
