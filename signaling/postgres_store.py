"""The store on PostgreSQL (psycopg 3), for operators who run several signaling nodes on the database they already
have: the same queries as SQLite's (signaling.sql_store), the same migrations in PostgreSQL's spelling, applied by
one node at a time (an advisory lock), and writes about one cabin serialized by locking the cabin's row.

`postgresql://user:password@host:5432/cabine` (libpq's URLs and key=value strings both work).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from signaling.sql_store import Migration, SqlStore, _text, newer_schema, postgres_ddl
from signaling.sqlite_store import MIGRATIONS
from signaling.store import StoreError

CONNECT_TIMEOUT: Final = 10
# A fixed key for pg_advisory_xact_lock: nodes starting together migrate one after the other.
MIGRATION_LOCK: Final = 0x6361_6269_6E65  # "cabine"
_SCHEMA_VERSION_TABLE: Final = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    if ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


class PostgresStore(SqlStore):
    """`signaling.store.Store` on a PostgreSQL database; one connection, safe to share between threads."""

    def __init__(self, connection: psycopg.Connection[Any], url: str) -> None:
        self._connection: psycopg.Connection[Any] | None = connection
        self._lock = threading.Lock()
        self.path = redacted(url)

    @classmethod
    def open(cls, url: str, *, migrations: Sequence[Migration] = MIGRATIONS) -> PostgresStore:
        """Connect and migrate.

        Raises:
            StoreError: the server cannot be reached, refuses us, or its schema is newer than `migrations`.
        """
        try:
            connection = psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the database {redacted(url)}: {exc}".strip()) from None
        try:
            migrate(connection, migrations, now=datetime.now(UTC))
        except psycopg.Error as exc:
            connection.close()
            raise StoreError(f"cannot use the database {redacted(url)}: {exc}".strip()) from None
        except BaseException:
            connection.close()
            raise
        return cls(connection, url)

    @staticmethod
    def check(url: str, *, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        """Check, changing nothing, that the database answers and its schema is not newer than this Cabine's.

        Raises:
            StoreError: it cannot be reached or used, or is newer.
        """
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as connection:
                found = connection.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
                current = 0
                if found and found[0]:
                    row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
                    current = int(row[0] or 0) if row else 0
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the database {redacted(url)}: {exc}".strip()) from None
        if current > len(migrations):
            raise newer_schema(current, len(migrations))

    def __enter__(self) -> PostgresStore:
        return self

    @property
    def schema_version(self) -> int:
        with self._locked() as connection:
            row = connection.execute("SELECT max(version) AS version FROM schema_version").fetchone()
        return int(row["version"] or 0) if row else 0

    @contextlib.contextmanager
    def _locked(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            if self._connection is None:
                raise StoreError("the store is closed")
            try:
                yield self._connection
            except psycopg.Error as exc:
                raise StoreError(f"cannot read the database {self.path}: {exc}".strip()) from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            connection = self._connection
            if connection is None:
                raise StoreError("the store is closed")
            try:
                with connection.transaction():
                    yield connection
            except psycopg.Error as exc:
                raise StoreError(f"cannot write to the database {self.path}: {exc}".strip()) from None

    def _run(self, connection: psycopg.Connection[Any], sql: str, values: Sequence[object] = ()) -> Any:
        # The queries are written with SQLite's `?`; none holds a literal `?` or `%`.
        return connection.execute(sql.replace("?", "%s"), tuple(values))

    def _lock_cabin(self, connection: psycopg.Connection[Any], cabin_id: str) -> bool:
        row = connection.execute("SELECT 1 FROM cabins WHERE id = %s FOR UPDATE", (cabin_id,)).fetchone()
        return row is not None


def migrate(connection: psycopg.Connection[Any], migrations: Sequence[Migration], *, now: datetime) -> int:
    """Apply the migrations the database lacks, in one transaction, one node at a time; returns the version.

    Raises:
        StoreError: the database was made by a newer Cabine.
        psycopg.Error: a statement failed (nothing is applied then).
    """
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise ValueError("migrations must be numbered 1, 2, 3... in order")
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        connection.execute(_SCHEMA_VERSION_TABLE)
        row = connection.execute("SELECT max(version) AS version FROM schema_version").fetchone()
        current = int((row or {}).get("version") or 0)
        if current > len(migrations):
            raise newer_schema(current, len(migrations))
        for migration in migrations[current:]:
            for statement in migration.statements:
                connection.execute(postgres_ddl(statement))
            connection.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.description, _text(now, "now")),
            )
    return max(current, len(migrations))
