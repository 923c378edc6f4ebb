"""SQLiteStore on real database files: persistence across restarts, migrations, errors, audit content."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.models import Appointment, AuditAction, AuditEvent, Cabin, ModelError, NotFound
from signaling.protocol import AppointmentKind
from signaling.sqlite_store import MIGRATIONS, SQLiteStore
from signaling.store import DuplicateId, Overlap, Store, StoreError, UnknownCabin

PARIS = timezone(timedelta(hours=1))
T0 = datetime(2026, 11, 26, 9, 30, tzinfo=PARIS)


def appointment(
    id: str = "apt_1", *, cabin_id: str = "mairie-pq", starts_at: datetime = T0, minutes: int = 30
) -> Appointment:
    return Appointment(
        id=id,
        kind=AppointmentKind.BANK,
        cabin_id=cabin_id,
        starts_at=starts_at,
        duration=timedelta(minutes=minutes),
        professional_name="Mme Martin",
        created_at=T0 - timedelta(days=2),
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cabine.sqlite"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore.open(db) as s:
        s.add_cabin(Cabin("mairie-pq", "Mairie de Petit-Quevilly"))
        yield s


def test_is_a_store(store: SQLiteStore) -> None:
    typed: Store = store
    assert typed is store


def test_file_settings(store: SQLiteStore, db: Path) -> None:
    assert db.exists()
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()
    assert store.schema_version == len(MIGRATIONS)


def test_appointment_round_trip_survives_restart(store: SQLiteStore, db: Path) -> None:
    apt = appointment()
    store.add_appointment(apt)
    store.close()
    with SQLiteStore.open(db) as reopened:
        got = reopened.get_appointment("apt_1")
        assert got == apt
        assert got is not None
        assert got.starts_at.utcoffset() == timedelta(0)  # stored and returned in UTC
        assert got.starts_at == T0
        assert got.created_at == T0 - timedelta(days=2)
        assert reopened.get_cabin("mairie-pq") == Cabin("mairie-pq", "Mairie de Petit-Quevilly")


def test_datetimes_are_utc_text_and_durations_seconds(store: SQLiteStore, db: Path) -> None:
    store.add_appointment(appointment())
    raw = sqlite3.connect(db)
    try:
        row = raw.execute("SELECT starts_at, ends_at, duration_seconds FROM appointments").fetchone()
    finally:
        raw.close()
    assert row == ("2026-11-26T08:30:00.000000+00:00", "2026-11-26T09:00:00.000000+00:00", 1800.0)


def test_unknown_appointment_is_none(store: SQLiteStore) -> None:
    assert store.get_appointment("apt_nope") is None


def test_duplicate_appointment_is_refused(store: SQLiteStore) -> None:
    store.add_appointment(appointment())
    with pytest.raises(DuplicateId, match=r"^appointment 'apt_1' already exists$"):
        store.add_appointment(appointment(starts_at=T0 + timedelta(days=1)))
    assert store.get_appointment("apt_1") == appointment()


def test_appointment_needs_a_known_cabin(store: SQLiteStore) -> None:
    with pytest.raises(UnknownCabin, match=r"^no cabin 'gare-rouen': add the cabin before booking it$") as info:
        store.add_appointment(appointment(cabin_id="gare-rouen"))
    assert isinstance(info.value, NotFound)
    assert isinstance(info.value, StoreError)
    assert store.list_appointments() == []


def test_an_overlapping_appointment_is_refused_naming_the_one_in_the_way(store: SQLiteStore) -> None:
    store.add_appointment(appointment("apt_1"))
    with pytest.raises(Overlap) as info:
        store.add_appointment(appointment("apt_2", starts_at=T0 + timedelta(minutes=29)))
    assert str(info.value) == (
        "cabin 'mairie-pq' is already booked from 2026-11-26T08:30:00+00:00 to 2026-11-26T09:00:00+00:00 "
        "by appointment apt_1"
    )
    assert info.value.existing == appointment("apt_1")
    assert isinstance(info.value, StoreError) and isinstance(info.value, ValueError)
    store.add_appointment(appointment("apt_3", starts_at=T0 + timedelta(minutes=30)))  # back to back
    store.cancel_appointment("apt_1", T0)
    store.add_appointment(appointment("apt_4", starts_at=T0 + timedelta(minutes=10), minutes=5))  # cancelled: free
    assert [a.id for a in store.list_appointments(include_cancelled=False)] == ["apt_4", "apt_3"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(1, 120), st.booleans()), max_size=12))
def test_the_store_accepts_exactly_the_bookings_that_overlap_nothing(
    bookings: list[tuple[int, int, bool]],
) -> None:
    """Against the pure rule `Appointment.overlaps`: every accepted booking overlaps no earlier accepted one."""
    with SQLiteStore.open(":memory:") as memory:
        memory.add_cabin(Cabin("mairie-pq"))
        accepted: list[Appointment] = []
        for i, (offset, minutes, then_cancel) in enumerate(bookings):
            new = appointment(f"apt_{i}", starts_at=T0 + timedelta(minutes=offset), minutes=minutes)
            if any(new.overlaps(a) for a in accepted):
                with pytest.raises(Overlap) as refused:
                    memory.add_appointment(new)
                assert new.overlaps(refused.value.existing)
                continue
            memory.add_appointment(new)
            if then_cancel:
                new = memory.cancel_appointment(new.id, T0)
            accepted.append(new)


def test_concurrent_bookings_from_two_connections_let_exactly_one_through(db: Path) -> None:
    """Two server processes (here: two connections in eight threads) racing for one slot: one wins."""
    with SQLiteStore.open(db) as first, SQLiteStore.open(db) as second:
        first.add_cabin(Cabin("mairie-pq"))
        start = threading.Barrier(8)
        outcomes: list[str] = []

        def attempt(i: int) -> None:
            connection = first if i % 2 else second
            start.wait(timeout=10)
            try:
                connection.add_appointment(appointment(f"apt_{i}", starts_at=T0 + timedelta(minutes=i)))
            except Overlap:
                outcomes.append("refused")
            else:
                outcomes.append("booked")

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(outcomes) == ["booked"] + ["refused"] * 7
        assert len(first.list_appointments()) == len(second.list_appointments()) == 1


def test_foreign_keys_are_enforced(store: SQLiteStore, db: Path) -> None:
    raw = sqlite3.connect(db)
    try:
        raw.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError):
            raw.execute(
                "INSERT INTO appointments (id, kind, cabin_id, starts_at, ends_at, duration_seconds,"
                " professional_name) VALUES ('x', 'bank', 'ghost', 'a', 'b', 60, 'p')"
            )
    finally:
        raw.close()


def test_list_is_ordered_by_start_and_filters(store: SQLiteStore) -> None:
    store.add_cabin(Cabin("gare-rouen"))
    store.add_appointment(appointment("apt_c", starts_at=T0 + timedelta(hours=2)))
    store.add_appointment(appointment("apt_a", starts_at=T0))
    store.add_appointment(appointment("apt_b", starts_at=T0 + timedelta(hours=1), cabin_id="gare-rouen"))
    store.add_appointment(appointment("apt_z", starts_at=T0 - timedelta(days=1)))
    store.cancel_appointment("apt_c", T0)

    def ids(items: list[Appointment]) -> list[str]:
        return [a.id for a in items]

    assert ids(store.list_appointments()) == ["apt_z", "apt_a", "apt_b", "apt_c"]
    assert ids(store.list_appointments(cabin_id="gare-rouen")) == ["apt_b"]
    assert ids(store.list_appointments(include_cancelled=False)) == ["apt_z", "apt_a", "apt_b"]
    # Overlap: an appointment that is still going on at `since` is listed.
    assert ids(store.list_appointments(since=T0 + timedelta(minutes=10))) == ["apt_a", "apt_b", "apt_c"]
    assert ids(store.list_appointments(since=T0, until=T0 + timedelta(hours=1))) == ["apt_a"]
    assert ids(store.list_appointments(until=T0)) == ["apt_z"]


def test_naive_bounds_are_refused(store: SQLiteStore) -> None:
    with pytest.raises(ModelError, match=r"^since must be timezone-aware$"):
        store.list_appointments(since=datetime(2026, 1, 1))


def test_cancel_is_idempotent_and_keeps_the_first_time(store: SQLiteStore, db: Path) -> None:
    store.add_appointment(appointment())
    first = store.cancel_appointment("apt_1", T0 - timedelta(hours=3))
    again = store.cancel_appointment("apt_1", T0 - timedelta(hours=1))
    assert first.cancelled_at == again.cancelled_at == T0 - timedelta(hours=3)
    assert first.cancelled
    store.close()
    with SQLiteStore.open(db) as reopened:
        got = reopened.get_appointment("apt_1")
        assert got is not None
        assert got.cancelled_at == T0 - timedelta(hours=3)


def test_cancel_unknown_is_not_found(store: SQLiteStore) -> None:
    with pytest.raises(NotFound, match=r"^no appointment 'apt_nope'$"):
        store.cancel_appointment("apt_nope", T0)


def test_cabins_add_list_update(store: SQLiteStore, db: Path) -> None:
    store.add_cabin(Cabin("gare-rouen", "Gare de Rouen"))
    with pytest.raises(DuplicateId, match=r"^cabin 'gare-rouen' already exists$"):
        store.add_cabin(Cabin("gare-rouen", "Autre"))
    enrolled = Cabin(
        "gare-rouen",
        "Gare de Rouen",
        public_key=bytes(range(32)),
        disabled=True,
        enrolled_at=T0,
        enrollment_code_hash=b"\x01" * 32,
        enrollment_expires_at=T0 + timedelta(hours=24),
    )
    store.update_cabin(enrolled)
    store.close()
    with SQLiteStore.open(db) as reopened:
        assert [c.id for c in reopened.list_cabins()] == ["gare-rouen", "mairie-pq"]
        assert reopened.get_cabin("gare-rouen") == enrolled
        assert reopened.get_cabin("nope") is None
        with pytest.raises(NotFound, match=r"^no cabin 'nope'$"):
            reopened.update_cabin(Cabin("nope"))


def test_audit_content_newest_first(store: SQLiteStore, db: Path) -> None:
    events = [
        AuditEvent(T0, AuditAction.APPOINTMENT_CREATED, "operator", "apt_1", "mairie-pq", "10.0.0.1", "kind=bank"),
        AuditEvent(T0 + timedelta(minutes=1), AuditAction.JOINED, "professional", "apt_1", None, "203.0.113.7"),
        AuditEvent(T0 + timedelta(minutes=2), AuditAction.ADMITTED, "citizen", "apt_1", "mairie-pq"),
        AuditEvent(T0 + timedelta(minutes=3), AuditAction.REFUSED, "professional", "apt_2", None, "198.51.100.9"),
        AuditEvent(T0 + timedelta(minutes=40), AuditAction.LEFT, "professional", "apt_1", None, "203.0.113.7"),
    ]
    for event in events:
        store.audit(event)
    store.close()
    with SQLiteStore.open(db) as reopened:
        assert reopened.audit_log() == events[::-1]
        assert reopened.audit_log(appointment_id="apt_1") == [events[4], events[2], events[1], events[0]]
        assert reopened.audit_log(limit=2) == [events[4], events[3]]
        with pytest.raises(ModelError, match=r"^limit must be at least 1$"):
            reopened.audit_log(limit=0)


def test_audit_table_has_no_room_for_health_data(db: Path) -> None:
    SQLiteStore.open(db).close()
    raw = sqlite3.connect(db)
    try:
        columns = {row[1] for row in raw.execute("PRAGMA table_info(audit)")}
    finally:
        raw.close()
    assert columns == {"id", "at", "action", "actor", "appointment_id", "cabin_id", "address", "detail"}


def test_migration_from_version_1(db: Path) -> None:
    with SQLiteStore.open(db, migrations=MIGRATIONS[:1]) as old:
        assert old.schema_version == 1
    # Rows written by a Cabine that only knew version 1, with the columns that existed then.
    raw = sqlite3.connect(db)
    try:
        raw.execute("INSERT INTO cabins (id, name) VALUES ('mairie-pq', 'Mairie')")
        raw.execute(
            "INSERT INTO appointments (id, kind, cabin_id, starts_at, ends_at, duration_seconds, professional_name)"
            " VALUES ('apt_1', 'bank', 'mairie-pq', '2026-11-26T08:30:00.000000+00:00',"
            " '2026-11-26T09:00:00.000000+00:00', 1800, 'Mme Martin')"
        )
        raw.commit()
        with pytest.raises(sqlite3.OperationalError, match="enrollment_code_hash"):
            raw.execute("SELECT enrollment_code_hash FROM cabins")
    finally:
        raw.close()
    with SQLiteStore.open(db) as upgraded:
        assert upgraded.schema_version == len(MIGRATIONS)
        assert upgraded.get_cabin("mairie-pq") == Cabin("mairie-pq", "Mairie")
        got = upgraded.get_appointment("apt_1")
        assert got is not None
        assert got.starts_at == datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
        upgraded.update_cabin(Cabin("mairie-pq", "Mairie", enrollment_code_hash=b"h" * 32))
    raw = sqlite3.connect(db)
    try:
        versions = raw.execute("SELECT version, description FROM schema_version ORDER BY version").fetchall()
    finally:
        raw.close()
    assert versions == [(m.version, m.description) for m in MIGRATIONS]


def test_newer_schema_is_refused_clearly(db: Path) -> None:
    SQLiteStore.open(db).close()
    raw = sqlite3.connect(db)
    try:
        raw.execute("INSERT INTO schema_version VALUES (99, 'from the future', '2030-01-01T00:00:00+00:00')")
        raw.commit()
    finally:
        raw.close()
    with pytest.raises(
        StoreError,
        match=rf"^the database schema is version 99, newer than this Cabine knows \({len(MIGRATIONS)}\): "
        r"upgrade Cabine, or open another database$",
    ):
        SQLiteStore.open(db)


def test_failed_migration_applies_nothing(db: Path) -> None:
    SQLiteStore.open(db, migrations=MIGRATIONS[:1]).close()
    raw = sqlite3.connect(db)
    try:
        raw.execute("CREATE INDEX appointments_by_start ON appointments (id)")  # migration 2 will collide
        raw.commit()
    finally:
        raw.close()
    with pytest.raises(StoreError, match="already exists"):
        SQLiteStore.open(db)
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("SELECT max(version) FROM schema_version").fetchone() == (1,)
        columns = {row[1] for row in raw.execute("PRAGMA table_info(cabins)")}
    finally:
        raw.close()
    assert "enrollment_code_hash" not in columns


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("this is not a database, it is a shopping list\n" * 100)
    with pytest.raises(StoreError, match=r"^cannot use the database .*notes\.sqlite: file is not a database$"):
        SQLiteStore.open(path)


def test_unopenable_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"^cannot (open|use) the database .*missing-dir.*: unable to open"):
        SQLiteStore.open(tmp_path / "missing-dir" / "db.sqlite")


def test_memory_database() -> None:
    with SQLiteStore.open(":memory:") as s:
        s.add_cabin(Cabin("c1"))
        assert [c.id for c in s.list_cabins()] == ["c1"]


def test_close_twice_then_use(store: SQLiteStore) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreError, match=r"^the store is closed$"):
        store.list_cabins()


def test_two_connections_interleaved_in_one_thread(store: SQLiteStore, db: Path) -> None:
    """The server and an admin tool on the same file: each sees the other's committed writes at once."""
    with SQLiteStore.open(db) as other:
        for i in range(100):
            writer, reader = (store, other) if i % 2 else (other, store)
            writer.add_appointment(appointment(f"apt_{i:03}", starts_at=T0 + timedelta(minutes=i), minutes=1))
            writer.audit(
                AuditEvent(T0 + timedelta(minutes=i), AuditAction.APPOINTMENT_CREATED, "operator", f"apt_{i:03}")
            )
            assert reader.get_appointment(f"apt_{i:03}") is not None
            if i % 10 == 0:
                reader.cancel_appointment(f"apt_{i:03}", T0)
        assert [a.id for a in other.list_appointments()] == [f"apt_{i:03}" for i in range(100)]
        assert len(store.list_appointments(include_cancelled=False)) == 90
        assert len(store.audit_log(limit=1000)) == 100
        # A failed write on one connection leaves no lock behind for the other.
        with pytest.raises(DuplicateId):
            store.add_appointment(appointment("apt_000"))
        other.add_appointment(appointment("apt_after", starts_at=T0 + timedelta(days=1)))
        assert store.get_appointment("apt_after") is not None
