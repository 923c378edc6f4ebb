"""Which store a `--db` names: a PostgreSQL URL (`postgresql://…`), or an SQLite file (the default)."""

from __future__ import annotations

from pathlib import Path

from signaling.sql_store import SqlStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(db: str | Path) -> bool:
    return isinstance(db, str) and db.startswith(POSTGRES_SCHEMES)


def open_store(db: str | Path) -> SqlStore:
    """Open (and migrate) the store `db` names.

    Raises:
        StoreError: it cannot be opened or used.
    """
    if is_postgres(db):
        from signaling.postgres_store import PostgresStore

        return PostgresStore.open(str(db))
    from signaling.sqlite_store import SQLiteStore

    return SQLiteStore.open(Path(db))


def check_store(db: str | Path) -> None:
    """Check, changing nothing, that the store `db` names can be used.

    Raises:
        StoreError: it cannot.
    """
    if is_postgres(db):
        from signaling.postgres_store import PostgresStore

        PostgresStore.check(str(db))
        return
    from signaling.sqlite_store import SQLiteStore

    SQLiteStore.check(Path(db))


def describe(db: str | Path) -> str:
    """`db` as said to the operator: a PostgreSQL URL without its password."""
    if is_postgres(db):
        from signaling.postgres_store import redacted

        return redacted(str(db))
    return str(db)
