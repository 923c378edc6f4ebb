"""The readings journal: real SQLite files in tmp_path, a real process killed with SIGKILL, a real call replaying."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import stat
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.devices.gatt import decode
from gateway.devices.readings import DeviceIdentity, NoValue, Quantity, Reading, ReadingKind, TimeSource
from gateway.errors import GatewayError
from gateway.ice import LOOPBACK, host_addresses
from gateway.journal import (
    APPLICATION_ID,
    MAX_APPOINTMENTS,
    JournalCorrupt,
    JournalError,
    ReadingJournal,
    journal_path,
)
from gateway.media.sources import MediaSources, SourceSpec
from gateway.session import CallSession, rtc_configuration
from gateway.vitals import MAX_PENDING, PageHeartbeat, VitalsOutbox, parse_page_message, reading_message
from signaling.protocol import AppointmentKind
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]
APT = "apt_journal_test_0001"
# A value no other part of the file can contain by chance: searched for in the raw bytes after a wipe.
DISTINCTIVE = 38.7


def reading(value: float, *, minute: int = 0) -> Reading:
    return Reading(
        kind=ReadingKind.BODY_TEMPERATURE,
        quantities=(Quantity("value", value, "Cel"),),
        measured_at=datetime(2026, 11, 25, 9, minute, tzinfo=UTC),
        time_source=TimeSource.DEVICE,
        device=DeviceIdentity(address="AA:BB:CC:DD:EE:FF", name="thermo"),
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return journal_path(tmp_path / "run" / "cabine")


@pytest.fixture
def journal(path: Path) -> Iterator[ReadingJournal]:
    with ReadingJournal.open(path) as opened:
        yield opened


def seqs(texts: list[str]) -> list[int]:
    return [json.loads(text)["seq"] for text in texts]


def raw_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Read the file with plain sqlite3, as anyone on the machine could (the journal must be closed)."""
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def file_bytes(path: Path) -> bytes:
    """The journal and whatever side files SQLite left beside it."""
    return b"".join(p.read_bytes() for p in sorted(path.parent.iterdir()) if p.name.startswith(path.name))


# --- Reading.from_wire -----------------------------------------------------------------------------------------

quantities = st.builds(
    Quantity,
    code=st.sampled_from(["value", "systolic", "diastolic", "spo2", "pulse-rate"]),
    value=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-1000, 1000),
    unit=st.sampled_from(["Cel", "mm[Hg]", "%", "/min", "kg"]),
) | st.builds(
    Quantity,
    code=st.just("value"),
    value=st.none(),
    unit=st.just("Cel"),
    no_value=st.sampled_from(list(NoValue)),
)
details = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=12),
        st.text(max_size=12)
        | st.integers()
        | st.booleans()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=5).map(tuple),
    ),
    max_size=4,
    unique_by=lambda item: item[0],
).map(tuple)
readings = st.builds(
    Reading,
    kind=st.sampled_from(list(ReadingKind)),
    quantities=st.lists(quantities, min_size=1, max_size=4).map(tuple),
    measured_at=st.datetimes(
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))])
    ),
    time_source=st.sampled_from(list(TimeSource)),
    device=st.builds(DeviceIdentity, address=st.text(min_size=1, max_size=17), name=st.text(max_size=10)),
    status=st.frozensets(st.text(min_size=1, max_size=20), max_size=4),
    details=details,
)


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(readings)
def test_a_reading_comes_back_from_its_wire_form(original: Reading) -> None:
    wire = json.loads(json.dumps(original.to_wire()))
    again = Reading.from_wire(wire)
    assert again == original
    assert again.to_wire() == wire


@pytest.mark.parametrize(
    ("uuid16", "payload"),
    [
        (0x2A37, bytes([0x10, 60, 0x00, 0x04, 0x00, 0x02, 0x21, 0x00])),  # heart rate with RR intervals
        (
            0x2A35,
            bytes.fromhex("1E8A00580078000000041114293B3C00012700"),
        ),  # [NordicBP] _full (test_gatt_blood_pressure)
        (0x2A5F, bytes([28, 95, 0, 90, 0, 32, 0, 0, 0, 0, 87, 240])),  # [SpeziPLX] (test_gatt_plx_continuous)
        (0x2A1C, bytes([0x00, 0x6F, 0x01, 0x00, 0xFF])),  # temperature 36.7 °C
        (0x2A1C, bytes([0x00, 0xFF, 0xFF, 0x7F, 0x00])),  # temperature NaN: a no-value quantity
    ],
)
def test_decoded_readings_come_back_from_their_wire_form(uuid16: int, payload: bytes) -> None:
    original = decode(uuid16, payload, device=DeviceIdentity("AA:BB"), received_at=datetime(2026, 1, 2, tzinfo=UTC))
    assert Reading.from_wire(json.loads(json.dumps(original.to_wire()))) == original


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda w: w.pop("kind"), "reading: kind is missing"),
        (lambda w: w.update(kind="glucose"), "'glucose' is not a valid ReadingKind"),
        (lambda w: w.update(quantities=[]), "a reading needs at least one quantity"),
        (lambda w: w["quantities"][0].update(value="36.7"), r"quantities\[0\].value has the wrong type \(str\)"),
        (lambda w: w["quantities"][0].update(value=True), r"quantities\[0\].value must be a number or null"),
        (lambda w: w["quantities"][0].update(value=None), "has neither a value nor a no-value reason"),
        (lambda w: w.update(measured_at="2026-11-25T09:00:00"), "measured_at must be timezone-aware"),
        (lambda w: w.update(measured_at="yesterday"), "Invalid isoformat string"),
        (lambda w: w["device"].pop("serial"), "reading: device.serial is missing"),
        (lambda w: w.update(status=[1]), "status must be a list of strings"),
        (lambda w: w.update(details={"rr": ["a"]}), "details.rr must be a list of numbers"),
        (lambda w: w.update(details={"x": None}), r"details.x has the wrong type \(NoneType\)"),
    ],
)
def test_a_malformed_wire_reading_is_refused(change: object, error: str) -> None:
    wire = reading(36.7).to_wire()
    change(wire)  # type: ignore[operator]
    with pytest.raises(ValueError, match=error):
        Reading.from_wire(wire)


def test_a_wire_reading_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="reading: device is missing"):
        Reading.from_wire([1, 2])


# --- the outbox over the journal -------------------------------------------------------------------------------


def test_add_ack_replay_write_through(journal: ReadingJournal, path: Path) -> None:
    outbox = VitalsOutbox(journal, APT)
    assert [outbox.add(reading(36.0 + i / 10))[0] for i in range(5)] == [1, 2, 3, 4, 5]
    assert outbox.ack(3) == 3
    assert seqs(outbox.replay()) == [4, 5]
    assert seqs(outbox.replay(after=4)) == [5]
    assert outbox.ack(3) == 0  # nothing new: nothing written
    state = journal.load(APT)
    assert (state.last_seq, state.acked_seq, state.dropped) == (5, 3, 0)
    assert [(r.seq, r.acked) for r in state.readings] == [(1, True), (2, True), (3, True), (4, False), (5, False)]
    assert [r.reading for r in state.readings] == outbox.history
    assert journal.appointments() == [APT]


def test_an_ack_beyond_the_last_reading_records_the_last_one(journal: ReadingJournal) -> None:
    outbox = VitalsOutbox(journal, APT)
    outbox.add(reading(36.5))
    assert outbox.ack(99) == 1
    assert journal.load(APT).acked_seq == 1


def test_a_restart_replays_what_the_page_has_not_acknowledged(path: Path) -> None:
    with ReadingJournal.open(path) as journal:
        before = VitalsOutbox(journal, APT)
        texts = [before.add(reading(36.0 + i / 10, minute=i))[1] for i in range(4)]
        before.ack(2)
        history = before.history
    # The gateway restarts: a new journal object on the same file, a new outbox.
    with ReadingJournal.open(path) as journal:
        after = VitalsOutbox(journal, APT)
        assert after.last_seq == 4
        assert after.pending == 2
        assert after.replay() == texts[2:]  # byte for byte what was sent the first time
        assert after.history == history
        assert after.add(reading(37.0))[0] == 5  # numbering goes on, never reused
        assert after.ack(5) == 3
    with ReadingJournal.open(path) as journal:
        again = VitalsOutbox(journal, APT)
        assert (again.last_seq, again.pending, len(again.history)) == (5, 0, 5)


def test_appointments_are_kept_apart(journal: ReadingJournal) -> None:
    first, second = VitalsOutbox(journal, "apt_a"), VitalsOutbox(journal, "apt_b")
    first.add(reading(36.1))
    first.add(reading(36.2))
    assert second.add(reading(36.3))[0] == 1
    second.ack(1)
    assert first.pending == 2 and VitalsOutbox(journal, "apt_a").pending == 2
    assert journal.appointments() == ["apt_a", "apt_b"]
    second.clear()
    assert journal.appointments() == ["apt_a"]
    assert VitalsOutbox(journal, "apt_a").last_seq == 2


class Page:
    """The doctor's page as webclient/shared/vitals.js is: seen seqs, cumulative ack of the highest contiguous one."""

    def __init__(self) -> None:
        self.last_seq = 0
        self.seen: set[int] = set()
        self.shown: list[float | None] = []

    def receive(self, text: str) -> int:
        message = json.loads(text)
        if message["seq"] not in self.seen:
            self.seen.add(message["seq"])
            self.shown.append(message["reading"]["value"])
        while self.last_seq + 1 in self.seen:
            self.last_seq += 1
        return self.last_seq


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["add", "add", "deliver", "deliver", "cut", "restart", "reconnect"]), max_size=40))
def test_the_page_shows_each_reading_once_in_order_whatever_happens(tmp_path: Path, steps: list[str]) -> None:
    """Readings added and delivered, channels cut, gateway restarts and reconnections in any order: at the end the
    page has shown every reading exactly once, in order; and after every step the journaled outbox agrees with a
    memory-only one that never restarted."""
    path = journal_path(tmp_path / f"run-{os.urandom(4).hex()}")
    journal = ReadingJournal.open(path)
    try:
        outbox, twin = VitalsOutbox(journal, APT), VitalsOutbox()
        page, values = Page(), list[float]()
        in_flight: list[str] = []  # sent on the open channel, not received yet (ordered and reliable, as SCTP)
        channel_open = True

        def ack(seq: int) -> None:
            assert outbox.ack(seq) == twin.ack(seq)

        for step in [*steps, "reconnect"]:
            if step == "add":
                values.append(35.0 + len(values) / 10)
                seq, text = outbox.add(reading(values[-1]))
                assert twin.add(reading(values[-1])) == (seq, text)
                if channel_open:
                    in_flight.append(text)
            elif step == "deliver" and in_flight:
                ack(page.receive(in_flight.pop(0)))
            elif step == "cut":
                in_flight, channel_open = [], False
            elif step == "restart":
                journal.close()
                journal = ReadingJournal.open(path)
                outbox, in_flight, channel_open = VitalsOutbox(journal, APT), [], False
            elif step == "reconnect":
                # As session.py does: everything pending on open, then what the page's hello says it lacks.
                in_flight, channel_open = outbox.replay(), True
                ack(page.last_seq)
                in_flight += outbox.replay(after=page.last_seq)
            assert (outbox.pending, outbox.last_seq, outbox.history) == (twin.pending, twin.last_seq, twin.history)
        while in_flight:
            ack(page.receive(in_flight.pop(0)))
        assert page.shown == values
        assert outbox.pending == 0
    finally:
        journal.close()


def test_a_reading_is_on_file_when_add_returns_even_if_the_process_is_killed(path: Path) -> None:
    script = f"""
import sys
from datetime import UTC, datetime
from pathlib import Path
from gateway.devices.readings import DeviceIdentity, Quantity, Reading, ReadingKind, TimeSource
from gateway.journal import ReadingJournal
from gateway.vitals import VitalsOutbox
journal = ReadingJournal.open(Path({str(path)!r}))
outbox = VitalsOutbox(journal, {APT!r})
for value in (36.6, {DISTINCTIVE}):
    seq, _ = outbox.add(Reading(ReadingKind.BODY_TEMPERATURE, (Quantity("value", value, "Cel"),),
        datetime.now(UTC), TimeSource.DEVICE, DeviceIdentity("AA:BB")))
outbox.ack(1)
print(seq, flush=True)
sys.stdin.read()  # wait to be killed, the journal open
"""
    child = asyncio.run(run_until_killed(script))
    assert child == (b"2\n", -signal.SIGKILL)
    with ReadingJournal.open(path) as journal:
        outbox = VitalsOutbox(journal, APT)
        assert outbox.last_seq == 2
        assert [json.loads(t)["reading"]["value"] for t in outbox.replay()] == [DISTINCTIVE]
        assert [r.primary.value for r in outbox.history] == [36.6, DISTINCTIVE]


async def run_until_killed(script: str) -> tuple[bytes, int | None]:
    """Run `script` in a new interpreter; kill it with SIGKILL as soon as it prints its first line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)  # type: ignore[union-attr]
        if not line:
            pytest.fail(f"the child died first: {(await process.stderr.read()).decode()[-2000:]}")  # type: ignore[union-attr]
        process.send_signal(signal.SIGKILL)
        return line, await asyncio.wait_for(process.wait(), timeout=10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# --- wiping ----------------------------------------------------------------------------------------------------


def test_clear_leaves_no_reading_in_the_files(path: Path) -> None:
    with ReadingJournal.open(path) as journal:
        outbox = VitalsOutbox(journal, APT)
        for value in (36.6, DISTINCTIVE, 36.8):
            outbox.add(reading(value))
        outbox.ack(2)
        assert str(DISTINCTIVE).encode() in file_bytes(path)  # the test would prove nothing otherwise
        outbox.clear()
        assert outbox.pending == 0 and outbox.history == []
        # Not even while the journal is still open (a wipe also empties the write-ahead log).
        assert str(DISTINCTIVE).encode() not in file_bytes(path)
        assert journal.appointments() == []
    assert raw_rows(path, "SELECT count(*) FROM reading") == [(0,)]
    assert raw_rows(path, "SELECT count(*) FROM appointment") == [(0,)]
    assert str(DISTINCTIVE).encode() not in file_bytes(path)
    assert APT.encode() not in file_bytes(path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_clear_keeps_the_numbering_of_the_outbox(journal: ReadingJournal) -> None:
    outbox = VitalsOutbox(journal, APT)
    outbox.add(reading(36.6))
    outbox.clear()
    assert outbox.add(reading(36.7))[0] == 2  # as without a journal: never reused within the outbox


def test_wipe_all(path: Path) -> None:
    with ReadingJournal.open(path) as journal:
        for apt in ("apt_a", "apt_b"):
            VitalsOutbox(journal, apt).add(reading(DISTINCTIVE))
        journal.wipe_all()
        assert journal.appointments() == []
        assert VitalsOutbox(journal, "apt_a").last_seq == 0
    assert str(DISTINCTIVE).encode() not in file_bytes(path)


# --- bounds ----------------------------------------------------------------------------------------------------


def test_a_page_that_never_acknowledges_costs_at_most_max_pending_readings(path: Path) -> None:
    with ReadingJournal.open(path) as journal:
        outbox, memory = VitalsOutbox(journal, APT), VitalsOutbox()
        for i in range(MAX_PENDING + 3):
            outbox.add(reading(36.0 + i % 10 / 10))
            memory.add(reading(36.0 + i % 10 / 10))
        assert (outbox.pending, outbox.dropped) == (memory.pending, memory.dropped) == (MAX_PENDING, 3)
        assert outbox.replay() == memory.replay()
        assert seqs(outbox.replay()[:1]) == [4]
    assert raw_rows(path, "SELECT count(*), min(seq), max(seq) FROM reading") == [(MAX_PENDING, 4, MAX_PENDING + 3)]
    with ReadingJournal.open(path) as journal:
        outbox = VitalsOutbox(journal, APT)
        assert (outbox.pending, outbox.dropped, outbox.last_seq) == (MAX_PENDING, 3, MAX_PENDING + 3)


def test_beyond_the_bound_delivered_readings_leave_first(journal: ReadingJournal) -> None:
    outbox = VitalsOutbox(journal, APT)
    for _ in range(MAX_PENDING - 1):
        outbox.ack(outbox.add(reading(36.5))[0])
    outbox.add(reading(36.6))  # seq 1000, never acknowledged
    outbox.add(reading(36.7))  # seq 1001: the delivered seq 1 leaves the journal, nothing is dropped
    assert (outbox.pending, outbox.dropped, len(outbox.history)) == (2, 0, MAX_PENDING)
    state = journal.load(APT)
    assert (state.readings[0].seq, state.readings[-1].seq) == (2, MAX_PENDING + 1)
    assert [r.reading for r in state.readings] == outbox.history  # the latest MAX_PENDING, in order


def test_the_oldest_appointment_is_wiped_beyond_the_bound(
    journal: ReadingJournal, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f"apt_{i:02d}" for i in range(MAX_APPOINTMENTS + 1)]
    for apt in ids:
        VitalsOutbox(journal, apt).add(reading(36.6))
    assert journal.appointments() == ids[1:]
    assert VitalsOutbox(journal, ids[0]).last_seq == 0
    assert "apt_00: journal holds too many appointments" in caplog.text


# --- opening: corrupt, foreign, busy ---------------------------------------------------------------------------


def a_filled_journal(path: Path) -> None:
    with ReadingJournal.open(path) as journal:
        outbox = VitalsOutbox(journal, APT)
        for i in range(200):
            outbox.add(reading(36.0 + i % 10 / 10))


def garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database, only text " * 200)


def truncated(path: Path) -> None:
    a_filled_journal(path)
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def scribbled(path: Path) -> None:
    a_filled_journal(path)
    with path.open("r+b") as handle:
        handle.seek(4096 * 2)  # the third page: inside the readings' b-tree
        handle.write(b"\xa5" * 4096)


def other_version(path: Path) -> None:
    a_filled_journal(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()


def unreadable_row(path: Path) -> None:
    a_filled_journal(path)
    db = sqlite3.connect(path)
    db.execute("UPDATE reading SET data = '{\"kind\": 1}' WHERE seq = 7")
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (garbage, "is damaged or not a database"),
        (truncated, "is damaged"),
        (scribbled, "is damaged"),
        (other_version, r"is a journal of another version \(99\)"),
        (unreadable_row, "reading 7 of apt apt_journal_ is unreadable"),
    ],
)
def test_a_damaged_journal_is_refused_then_reset(
    path: Path, damage: object, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    damage(path)  # type: ignore[operator]
    with pytest.raises(JournalCorrupt, match=error) as refused:
        ReadingJournal.open(path)
    assert isinstance(refused.value, GatewayError) and not refused.value.foreign
    assert path.exists()  # refusing changes nothing
    with caplog.at_level(logging.WARNING), ReadingJournal.open(path, reset_if_corrupt=True) as journal:
        assert journal.appointments() == []
        assert VitalsOutbox(journal, APT).add(reading(36.6))[0] == 1
    assert "deleted, starting afresh (its unacknowledged readings are lost)" in caplog.text
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_another_programs_database_is_moved_aside_not_deleted(path: Path) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.execute("INSERT INTO notes VALUES ('not ours')")
    db.commit()
    db.close()
    with pytest.raises(JournalCorrupt, match=r"is not a readings journal \(application id 0x0\)") as refused:
        ReadingJournal.open(path)
    assert refused.value.foreign
    with ReadingJournal.open(path, reset_if_corrupt=True) as journal:
        assert journal.appointments() == []
    aside = path.with_name(path.name + ".foreign")
    assert raw_rows(aside, "SELECT text FROM notes") == [("not ours",)]
    assert raw_rows(path, "PRAGMA application_id") == [(APPLICATION_ID,)]


def test_a_journal_is_used_by_one_gateway_at_a_time(journal: ReadingJournal, path: Path) -> None:
    VitalsOutbox(journal, APT).add(reading(36.6))
    with pytest.raises(JournalError, match="is in use by another process"):
        ReadingJournal.open(path, reset_if_corrupt=True)
    assert VitalsOutbox(journal, APT).pending == 1  # and the refusal damaged nothing


def test_a_path_that_cannot_be_a_journal(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"")
    (tmp_path / "link.sqlite").symlink_to(tmp_path / "target")
    with pytest.raises(JournalError, match=r"link\.sqlite"):
        ReadingJournal.open(tmp_path / "link.sqlite", reset_if_corrupt=True)
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(JournalError, match=r"dir\.sqlite: Is a directory"):
        ReadingJournal.open(tmp_path / "dir.sqlite", reset_if_corrupt=True)


# --- permissions, lifecycle, failures, logs --------------------------------------------------------------------


def test_the_directory_is_0700_and_the_files_0600(path: Path) -> None:
    old = os.umask(0o022)
    try:
        with ReadingJournal.open(path) as journal:
            VitalsOutbox(journal, APT).add(reading(36.6))
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            files = [p for p in path.parent.iterdir()]
            assert {p.name for p in files} >= {path.name, path.name + "-wal"}
            assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
    finally:
        os.umask(old)


def test_an_existing_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "readings.sqlite"
    path.write_bytes(b"")
    path.chmod(0o644)
    with ReadingJournal.open(path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_close_is_safe_twice_and_a_closed_journal_refuses_work(path: Path) -> None:
    journal = ReadingJournal.open(path)
    journal.close()
    journal.close()
    assert journal.closed
    with pytest.raises(JournalError, match="is closed"):
        journal.appointments()


def test_a_failing_journal_never_loses_a_reading(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = ReadingJournal.open(path)
    outbox = VitalsOutbox(journal, APT)
    outbox.add(reading(36.6))
    journal.close()  # the file is gone from under the outbox: every write now fails
    seq, text = outbox.add(reading(DISTINCTIVE))
    assert (seq, outbox.pending, outbox.journal_errors) == (2, 2, 1)
    assert json.loads(text)["reading"]["value"] == DISTINCTIVE
    assert outbox.ack(2) == 2 and outbox.journal_errors == 2
    outbox.clear()
    assert outbox.journal_errors == 3
    assert "reading 2 not journaled, sent from memory" in caplog.text


def test_a_journal_needs_an_appointment(journal: ReadingJournal) -> None:
    with pytest.raises(ValueError, match="needs both a journal and an appointment id"):
        VitalsOutbox(journal)
    with pytest.raises(ValueError, match="needs both a journal and an appointment id"):
        VitalsOutbox(appointment_id=APT)


def test_no_reading_value_is_ever_logged(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        with ReadingJournal.open(path) as journal:
            outbox = VitalsOutbox(journal, APT)
            for _ in range(MAX_PENDING + 1):
                outbox.add(reading(DISTINCTIVE))
        with ReadingJournal.open(path) as journal:
            VitalsOutbox(journal, APT).clear()
    assert "dropped unacknowledged reading 1" in caplog.text
    assert "journal wiped (1000 reading(s))" in caplog.text
    assert str(DISTINCTIVE) not in caplog.text


def test_the_journal_keeps_the_text_that_was_sent(journal: ReadingJournal) -> None:
    outbox = VitalsOutbox(journal, APT)
    original = reading(36.6)
    _, text = outbox.add(original)
    assert text == reading_message(1, original)


# --- a real call across a gateway restart ----------------------------------------------------------------------


@pytest.fixture
def loopback_only() -> Iterator[None]:
    with host_addresses(LOOPBACK):
        yield


class Doctor:
    """The professional's page over a real aiortc peer, with vitals.js's hello and cumulative acks."""

    def __init__(self, page: Page, *, ack: bool) -> None:
        self.pc = RTCPeerConnection(rtc_configuration(()))
        self.page, self.ack = page, ack
        self.pc.on("datachannel", self._on_channel)

    def _on_channel(self, channel: RTCDataChannel) -> None:
        channel.send(json.dumps({"v": 1, "type": "hello", "last_seq": self.page.last_seq}))

        @channel.on("message")
        def on_message(text: str) -> None:
            message = json.loads(text)
            if message.get("type") != "reading":
                return
            last = self.page.receive(text)
            if self.ack:
                channel.send(json.dumps({"v": 1, "type": "ack", "seq": last}))

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)


async def a_call(outbox: VitalsOutbox, doctor: Doctor) -> CallSession:
    sources = MediaSources(SourceSpec("test"), SourceSpec("test"))
    await sources.__aenter__()
    session = CallSession(APT, AppointmentKind.MEDICAL, (), sources, outbox=outbox)
    await session.accept_answer(await doctor.answer(await session.create_offer()))
    await asyncio.wait_for(session.connected.wait(), timeout=10)
    return session


@pytest.mark.usefixtures("loopback_only")
async def test_a_restarted_gateway_replays_to_the_doctor_exactly_once(path: Path) -> None:
    page = Page()
    journal = ReadingJournal.open(path)
    outbox = VitalsOutbox(journal, APT)
    doctor = Doctor(page, ack=True)
    session = await a_call(outbox, doctor)
    try:
        session.push_reading(reading(36.6, minute=1))
        await wait_until(lambda: outbox.pending == 0, timeout=10, what="the first reading to be acknowledged")
        doctor.ack = False  # the network degrades: readings arrive, acks are lost
        session.push_reading(reading(DISTINCTIVE, minute=2))
        await wait_until(lambda: len(page.shown) == 2, timeout=10, what="the second reading to arrive")
        session.push_reading(reading(36.8, minute=3))  # and this one is measured as the gateway dies
        await wait_until(lambda: len(page.shown) == 3, timeout=10, what="the third reading to arrive")
        assert outbox.pending == 2
    finally:
        await session.close()
        await doctor.pc.close()
        journal.close()  # the gateway restarts: nothing of it in memory, only the file
    journal = ReadingJournal.open(path)
    outbox = VitalsOutbox(journal, APT)
    assert outbox.pending == 2
    doctor = Doctor(page, ack=True)
    session = await a_call(outbox, doctor)
    try:
        await wait_until(lambda: outbox.pending == 0, timeout=10, what="the replay to be acknowledged")
        session.push_reading(reading(36.9, minute=4))
        await wait_until(lambda: len(page.shown) == 4, timeout=10, what="a reading after the restart")
        await wait_until(lambda: outbox.pending == 0, timeout=10, what="it to be acknowledged")
        assert page.shown == [36.6, DISTINCTIVE, 36.8, 36.9]
        assert [r.measured_at.minute for r in outbox.history] == [1, 2, 3, 4]
    finally:
        await session.close()
        await doctor.pc.close()
        outbox.clear()
        journal.close()
    assert str(DISTINCTIVE).encode() not in file_bytes(path)


def test_the_pages_heartbeat_is_a_message_not_an_error() -> None:
    # webclient/shared/vitals.js sends one every second: it must not count as a bad message.
    assert parse_page_message('{"v":1,"type":"heartbeat"}') == PageHeartbeat()
