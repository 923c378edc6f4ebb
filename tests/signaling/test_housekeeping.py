"""What the server keeps is bounded: rooms are forgotten once their appointment is over, proof ids once they
expire, self-test reports and alerts have caps. The cores are tested pure; the sweep on a real server with a
clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signaling.cabin_auth import ReplayCache, TooManyProofs
from signaling.models import Appointment, AuditAction
from signaling.protocol import AppointmentKind, SelftestReport
from signaling.selftests import ReceivedReport, SelftestBook
from tests.conftest import wait_until
from tests.signaling.conftest import Clock, World, admitted_call, closed_with, receive_until

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC))


@pytest.fixture
def server_options(clock: Clock) -> dict[str, Any]:
    return {"clock": clock, "refresh_interval": 0.05, "overtime": timedelta(minutes=15)}


def test_only_the_latest_report_of_a_bounded_number_of_cabins_is_kept() -> None:
    book = SelftestBook(max_cabins=2)

    def received(cabin_id: str, request_id: str | None) -> ReceivedReport:
        return ReceivedReport(cabin_id, SelftestReport(request_id, True, (), "2026-11-26T09:00Z"), T0)

    book.record(received("c1", None))
    book.record(received("c2", None))
    book.record(received("c1", "st_2"))  # c1 reported last: c2 is now the oldest
    book.record(received("c3", None))
    assert len(book) == 2
    assert book.latest("c2") is None
    latest = book.latest("c1")
    assert latest is not None and latest.report.request_id == "st_2"


def test_proof_ids_are_bounded_per_cabin_and_pruned_once_expired() -> None:
    replays = ReplayCache(max_per_cabin=3)
    now = T0.timestamp()
    assert all(replays.check_and_add("c1", f"p{i}", now + 60, now) for i in range(3))
    assert not replays.check_and_add("c1", "p0", now + 60, now)  # a replay
    with pytest.raises(TooManyProofs, match="too many connections from cabin 'c1'"):
        replays.check_and_add("c1", "p3", now + 60, now)
    assert replays.check_and_add("c2", "p3", now + 60, now)  # another cabin is not affected
    assert replays.check_and_add("c1", "p4", now + 120, now + 61)  # the first three expired
    replays.prune(now + 200)
    assert len(replays) == 0


async def test_a_room_left_behind_is_forgotten_once_the_appointment_is_over(world: World, clock: Clock) -> None:
    cabin = await world.cabin("cabin-1")
    await cabin.send_str('{"type": "presence", "appointment_id": "apt_med", "present": true}')
    pro = await world.professional(world.medical)
    await receive_until(pro, "room")
    await pro.close()  # the professional leaves; the citizen never checks out
    await receive_until(cabin, "peer-left")
    assert world.hub.rooms.room("apt_med") is not None
    # The periodic sweep forgets it once the window has ended, and tells the cabin.
    clock.now = world.medical.ends_at
    await wait_until(lambda: world.hub.rooms.room("apt_med") is None, timeout=5, what="the room to be forgotten")
    bye = await receive_until(cabin, "bye")
    assert (bye["appointment_id"], bye["reason"]) == ("apt_med", "over")
    assert len(world.hub.rooms) == 0
    await cabin.close()


async def test_a_call_gets_its_overtime_then_ends(world: World, clock: Clock) -> None:
    pro, cabin = await admitted_call(world, world.other, "cabin-2")
    clock.now = world.other.ends_at + timedelta(minutes=14)
    await world.hub.sweep()
    assert world.hub.rooms.room("apt_other") is not None and not pro.closed
    clock.now = world.other.ends_at + timedelta(minutes=15)
    await world.hub.sweep()
    assert await closed_with(pro) == (4403, "This link only works during the appointment's time window.")
    assert (await receive_until(cabin, "bye"))["reason"] == "over"
    assert world.hub.rooms.room("apt_other") is None
    [left] = [e for e in world.store.audit_log(appointment_id="apt_other") if e.action is AuditAction.LEFT]
    assert (left.actor, left.detail) == ("professional", "the appointment's time is over")
    await cabin.close()


async def test_proof_ids_are_forgotten_by_the_sweep(world: World, clock: Clock) -> None:
    for _ in range(3):
        cabin = await world.cabin("cabin-1")
        await cabin.close()
    assert len(world.hub.replays) == 3
    clock.now += timedelta(minutes=10)
    await wait_until(lambda: len(world.hub.replays) == 0, timeout=5, what="expired proof ids to be forgotten")


async def test_a_cabin_is_told_its_schedule_again_only_when_it_changes(world: World, clock: Clock) -> None:
    """The periodic refresh (every 50 ms here) reads every cabin's appointments in one query, and sends a schedule
    only when it changed or one of its windows opened: idle cabins cost nothing between two bookings."""
    later = Appointment("apt_later", AppointmentKind.BANK, "cabin-2", clock.now + timedelta(minutes=35),
                        timedelta(minutes=30), "M. L")  # fmt: skip
    world.store.add_appointment(later)  # its window opens 15 minutes before it starts
    cabin = await world.cabin("cabin-2")
    with pytest.raises(TimeoutError):
        await cabin.receive(timeout=0.5)  # ten refreshes, nothing new
    clock.now += timedelta(minutes=21)  # apt_later's window opens, apt_other's is still open: only that is new
    schedule = await receive_until(cabin, "schedule")
    assert [a["id"] for a in schedule["appointments"]] == ["apt_other", "apt_later"]
    with pytest.raises(TimeoutError):
        await cabin.receive(timeout=0.5)
