"""The store's behaviour on both engines, SQLite (a file) and PostgreSQL (a private server from Debian's package,
started here): the same answers, the same refusals, and writes that several signaling nodes can race on safely.
SQLite's own matters (the file, WAL, migrations of a file) are in test_sqlite_store.py."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from signaling.models import AuditAction, AuditEvent, Cabin, NotFound
from signaling.postgres_store import PostgresStore
from signaling.sql_store import SqlStore
from signaling.sqlite_store import MIGRATIONS, SQLiteStore
from signaling.store import DuplicateId, Overlap, Store, StoreError, UnknownCabin
from tests.postgres import PrivatePostgres
from tests.signaling.test_sqlite_store import T0, appointment

Opener = Callable[[], SqlStore]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens another connection to one fresh database of the engine (another node, or a restart)."""
    if request.param == "sqlite":
        path = tmp_path / "cabine.sqlite"
        return lambda: SQLiteStore.open(path)
    url = request.getfixturevalue("postgres").database()
    return lambda: PostgresStore.open(url)


@pytest.fixture
def store(opener: Opener) -> Iterator[SqlStore]:
    with opener() as s:
        s.add_cabin(Cabin("mairie-pq", "Mairie de Petit-Quevilly"))
        yield s


def test_both_are_stores_at_the_latest_schema(store: SqlStore) -> None:
    typed: Store = store
    assert typed is store and store.schema_version == len(MIGRATIONS)  # type: ignore[attr-defined]


def test_appointments_round_trip_and_survive_a_restart(store: SqlStore, opener: Opener) -> None:
    apt = appointment()
    store.add_appointment(apt)
    store.set_admitted("apt_1", T0 + timedelta(minutes=2))
    store.close()
    with opener() as reopened:
        got = reopened.get_appointment("apt_1")
        assert got is not None and got.starts_at == T0 and got.starts_at.utcoffset() == timedelta(0)
        assert got.admitted_at == T0 + timedelta(minutes=2) and got.created_at == apt.created_at
        assert reopened.get_cabin("mairie-pq") == Cabin("mairie-pq", "Mairie de Petit-Quevilly")
        assert reopened.get_appointment("apt_nope") is None


def test_refusals_are_the_same(store: SqlStore) -> None:
    store.add_appointment(appointment())
    with pytest.raises(DuplicateId, match=r"^appointment 'apt_1' already exists$"):
        store.add_appointment(appointment(starts_at=T0 + timedelta(days=1)))
    with pytest.raises(UnknownCabin, match="no cabin 'nowhere'"):
        store.add_appointment(appointment("apt_2", cabin_id="nowhere"))
    with pytest.raises(Overlap) as overlap:
        store.add_appointment(appointment("apt_3", starts_at=T0 + timedelta(minutes=20)))
    assert overlap.value.existing.id == "apt_1"
    store.add_appointment(appointment("apt_4", starts_at=T0 + timedelta(minutes=30)))  # back to back
    with pytest.raises(NotFound):
        store.cancel_appointment("apt_nope", T0)
    with pytest.raises(NotFound):
        store.set_admitted("apt_nope", T0)
    with pytest.raises(DuplicateId):
        store.add_cabin(Cabin("mairie-pq"))
    with pytest.raises(NotFound):
        store.update_cabin(Cabin("nowhere"))
    with pytest.raises(NotFound):
        store.add_cabin_settings("nowhere", {}, T0, "op")


def test_lists_cancellations_cabins_settings_and_audit(store: SqlStore) -> None:
    for i, hours in enumerate((3, 1, 2)):
        store.add_appointment(appointment(f"apt_{i}", starts_at=T0 + timedelta(hours=hours)))
    assert [a.id for a in store.list_appointments()] == ["apt_1", "apt_2", "apt_0"]
    first = store.cancel_appointment("apt_1", T0)
    again = store.cancel_appointment("apt_1", T0 + timedelta(hours=1))
    assert first.cancelled_at == again.cancelled_at == T0
    assert [a.id for a in store.list_appointments(include_cancelled=False)] == ["apt_2", "apt_0"]
    window = store.list_appointments(since=T0 + timedelta(hours=2, minutes=10), until=T0 + timedelta(hours=4))
    assert [a.id for a in window] == ["apt_2", "apt_0"]

    store.add_cabin(Cabin("gare", "Gare", public_key=bytes(range(32))))
    store.update_cabin(Cabin("gare", "Gare SNCF", public_key=bytes(range(32)), disabled=True))
    assert [(c.id, c.name, c.disabled) for c in store.list_cabins()] == [
        ("gare", "Gare SNCF", True),
        ("mairie-pq", "Mairie de Petit-Quevilly", False),
    ]
    assert store.get_cabin("gare").public_key == bytes(range(32))  # type: ignore[union-attr]

    one = store.add_cabin_settings("gare", {"camera": {"fps": 15}}, T0, "op-a")
    two = store.add_cabin_settings("gare", {"camera": {"fps": 20}}, T0 + timedelta(minutes=1), "op-b")
    assert (one.version, two.version) == (1, 2)
    assert [v.settings for v in store.cabin_settings("gare", limit=5)] == [
        {"camera": {"fps": 20}},
        {"camera": {"fps": 15}},
    ]

    for minutes, action in ((1, AuditAction.CABIN_CREATED), (2, AuditAction.CABIN_DISABLED)):
        store.audit(AuditEvent(T0 + timedelta(minutes=minutes), action, "op", cabin_id="gare"))
    store.audit(AuditEvent(T0, AuditAction.CABIN_CREATED, "op", cabin_id="mairie-pq"))
    assert [e.action for e in store.audit_log(cabin_id="gare")] == [
        AuditAction.CABIN_DISABLED,
        AuditAction.CABIN_CREATED,
    ]
    assert len(store.audit_log(limit=2)) == 2


def race(attempts: int, work: Callable[[int], str]) -> list[str]:
    """`attempts` threads start `work(i)` together; their outcomes."""
    start = threading.Barrier(attempts)
    outcomes: list[str] = []

    def attempt(i: int) -> None:
        start.wait(timeout=10)
        outcomes.append(work(i))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_nodes_racing_for_one_slot_book_it_once(store: SqlStore, opener: Opener) -> None:
    """Two nodes (two connections, eight threads) book overlapping times: one wins; they number settings apart."""
    with opener() as other:
        nodes = (store, other)

        def book(i: int) -> str:
            try:
                nodes[i % 2].add_appointment(appointment(f"apt_{i}", starts_at=T0 + timedelta(minutes=i)))
            except Overlap:
                return "refused"
            return "booked"

        assert sorted(race(8, book)) == ["booked"] + ["refused"] * 7
        assert len(store.list_appointments()) == len(other.list_appointments()) == 1

        def configure(i: int) -> str:
            return str(nodes[i % 2].add_cabin_settings("mairie-pq", {"n": {"i": i}}, T0, f"op-{i}").version)

        assert sorted(race(8, configure), key=int) == [str(v) for v in range(1, 9)]


def test_postgres_nodes_migrate_one_at_a_time_and_refuse_a_newer_schema(postgres: PrivatePostgres) -> None:
    url = postgres.database()
    opened: list[PostgresStore] = []

    def start_node(i: int) -> str:
        opened.append(PostgresStore.open(url))
        return "up"

    assert race(4, start_node) == ["up"] * 4
    assert {s.schema_version for s in opened} == {len(MIGRATIONS)}
    with opened[0]._transaction() as connection:
        connection.execute("INSERT INTO schema_version VALUES (99, 'from the future', '2030-01-01')")
    for store in opened:
        store.close()
    with pytest.raises(StoreError, match="schema is version 99, newer than this Cabine knows"):
        PostgresStore.open(url)
    with pytest.raises(StoreError, match="schema is version 99"):
        PostgresStore.check(url)


def test_an_unreachable_postgres_is_a_clear_error_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://cabine:s3cret@/cabine?host={tmp_path}&port=1"
    with pytest.raises(StoreError) as refused:
        PostgresStore.open(url)
    assert str(refused.value).startswith("cannot open the database postgresql://cabine:***@/cabine")
    assert "s3cret" not in str(refused.value)


def test_two_nodes_racing_for_one_enrollment_code_enroll_once(store: SqlStore, opener: Opener) -> None:
    """Eight attempts with one code, from two nodes: one key is recorded, the code is used up, the others get None."""
    code = bytes(32)
    store.add_cabin(Cabin("gare", enrollment_code_hash=code, enrollment_expires_at=T0 + timedelta(hours=1)))
    with opener() as other:
        nodes = (store, other)

        def enroll(i: int) -> str:
            enrolled = nodes[i % 2].enroll_cabin("gare", code, bytes([i]) * 32, T0)
            return "refused" if enrolled is None else f"key {i}"

        outcomes = race(8, enroll)
    (winner,) = [o for o in outcomes if o != "refused"]
    cabin = store.get_cabin("gare")
    assert cabin is not None and cabin.public_key == bytes([int(winner.split()[1])]) * 32
    assert cabin.enrollment_code_hash is None and cabin.enrolled_at == T0
    # Expired or wrong codes change nothing.
    store.update_cabin(Cabin("gare", enrollment_code_hash=code, enrollment_expires_at=T0))
    assert store.enroll_cabin("gare", code, bytes(32), T0) is None
    assert store.enroll_cabin("gare", b"x" * 32, bytes(32), T0 - timedelta(minutes=1)) is None
    assert store.get_cabin("gare").public_key is None  # type: ignore[union-attr]
