from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from signaling.protocol import AppointmentKind, CloseCode, Role
from signaling.rooms import RoomError, Rooms, Slot

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
A1 = Slot("a1", "c1", AppointmentKind.MEDICAL, T0 + timedelta(minutes=30))
A2 = Slot("a2", "c2", AppointmentKind.BANK, T0 + timedelta(minutes=60))


def admitted_rooms() -> Rooms[str]:
    rooms: Rooms[str] = Rooms()
    rooms.attach_cabin("c1", "cabin-1")
    rooms.attach_cabin("c2", "cabin-2")
    rooms.attach_professional(A1, "pro-1")
    rooms.attach_professional(A2, "pro-2")
    rooms.set_presence(A1, True, "cabin-1")
    rooms.admit("a1", "pro-1")
    return rooms


def test_no_negotiation_before_admission() -> None:
    rooms = admitted_rooms()
    with pytest.raises(RoomError, match="the citizen has not been admitted"):
        rooms.route("a2", Role.CABIN, "offer", "cabin-2")
    with pytest.raises(RoomError, match="the citizen is not in the cabin yet"):
        rooms.admit("a2", "pro-2")
    with pytest.raises(RoomError, match="not your appointment"):
        rooms.admit("a1", "pro-2")


def test_relay_only_within_the_room_and_in_order() -> None:
    rooms = admitted_rooms()
    with pytest.raises(RoomError, match="answer before offer"):
        rooms.route("a1", Role.PROFESSIONAL, "answer", "pro-1")
    assert rooms.route("a1", Role.CABIN, "offer", "cabin-1") == "pro-1"
    assert rooms.route("a1", Role.PROFESSIONAL, "answer", "pro-1") == "cabin-1"
    assert rooms.route("a1", Role.PROFESSIONAL, "candidate", "pro-1") == "cabin-1"
    # Another cabin, or another room's professional, cannot send into room a1.
    with pytest.raises(RoomError) as other_cabin:
        rooms.route("a1", Role.CABIN, "offer", "cabin-2")
    assert other_cabin.value.code is CloseCode.FORBIDDEN
    with pytest.raises(RoomError):
        rooms.route("a1", Role.PROFESSIONAL, "candidate", "pro-2")


def test_admission_survives_a_reload_but_not_the_citizen_leaving() -> None:
    rooms = admitted_rooms()
    room = rooms.room("a1")
    assert room is not None
    rooms.detach_professional("a1", "pro-1")
    rooms.attach_professional(A1, "pro-1-again")
    assert rooms.ready(room)
    rooms.set_presence(A1, False, "cabin-1")
    assert not room.admitted
    assert not rooms.ready(room)


def test_second_professional_is_refused_and_the_first_stays() -> None:
    rooms: Rooms[str] = Rooms()
    rooms.attach_professional(A1, "pro-1")
    with pytest.raises(RoomError) as info:
        rooms.attach_professional(A1, "intruder")
    assert info.value.code is CloseCode.CONFLICT
    room = rooms.room("a1")
    assert room is not None and room.professional == "pro-1"


def test_cabin_leaving_reports_its_rooms() -> None:
    rooms = admitted_rooms()
    assert rooms.attach_cabin("c1", "cabin-1b") == "cabin-1"
    assert rooms.detach_cabin("c1", "cabin-1") == []  # the stale connection no longer counts
    left = rooms.detach_cabin("c1", "cabin-1b")
    assert [r.appointment_id for r in left] == ["a1"]
    with pytest.raises(RoomError, match="not connected"):
        rooms.route("a1", Role.PROFESSIONAL, "candidate", "pro-1")
    with pytest.raises(RoomError, match="not your appointment"):
        rooms.set_presence(A1, True, "cabin-1")


def test_a_room_is_forgotten_once_its_appointment_is_over() -> None:
    overtime = timedelta(minutes=15)
    rooms: Rooms[str] = Rooms()
    rooms.attach_cabin("c1", "cabin-1")
    rooms.attach_cabin("c2", "cabin-2")
    # a1: the professional left before the citizen checked out; nobody will ever say the room is empty.
    rooms.attach_professional(A1, "pro-1")
    rooms.set_presence(A1, True, "cabin-1")
    rooms.admit("a1", "pro-1")
    rooms.detach_professional("a1", "pro-1")
    assert rooms.room("a1") is not None
    # a2: a call still going when its window ends.
    rooms.attach_professional(A2, "pro-2")
    assert rooms.sweep(A1.ends_at - timedelta(seconds=1), overtime) == []
    assert [r.appointment_id for r in rooms.sweep(A1.ends_at, overtime)] == ["a1"]
    assert rooms.room("a1") is None and len(rooms) == 1
    # The call gets its overtime, then ends; the cabins stay connected.
    assert rooms.sweep(A2.ends_at, overtime) == []
    [over] = rooms.sweep(A2.ends_at + overtime, overtime)
    assert (over.appointment_id, over.professional) == ("a2", "pro-2")
    assert len(rooms) == 0
    assert rooms.cabin_ids() == ["c1", "c2"]


def test_a_cancelled_room_is_ended_at_once() -> None:
    rooms = admitted_rooms()
    ended = rooms.end("a1")
    assert ended is not None and ended.professional == "pro-1"
    assert rooms.room("a1") is None and rooms.end("a1") is None
    with pytest.raises(RoomError, match="no such appointment in progress"):
        rooms.route("a1", Role.CABIN, "offer", "cabin-1")


def test_a_cabins_rooms_are_found_by_index_and_forgotten_with_them() -> None:
    """Each cabin's rooms are indexed (thousands of rooms: a cabin connecting does not look at the others'); the
    index follows every way a room goes: ended, swept, left empty."""
    rooms: Rooms[str] = Rooms()
    slots = [Slot(f"a{i}", f"c{i % 3}", AppointmentKind.BANK, T0 + timedelta(minutes=10 * (i + 1))) for i in range(9)]
    pros = [f"pro-{i}" for i in range(9)]  # connections are compared by identity
    for slot, pro in zip(slots, pros, strict=True):
        rooms.attach_professional(slot, pro)

    def by_scan(cabin_id: str) -> set[str]:
        return {s.appointment_id for s in slots if rooms.room(s.appointment_id) is not None and s.cabin_id == cabin_id}

    def check() -> None:
        for cabin_id in ("c0", "c1", "c2"):
            assert {r.appointment_id for r in rooms.rooms_of_cabin(cabin_id)} == by_scan(cabin_id)

    check()
    rooms.end("a0")
    check()
    rooms.detach_professional("a1", pros[1])  # nobody left in it: forgotten
    check()
    assert [r.appointment_id for r in rooms.sweep(T0 + timedelta(minutes=35), timedelta(0))] == ["a2"]
    check()
    assert rooms.rooms_of_cabin("c0") == [rooms.room("a3"), rooms.room("a6")]
    for i in range(3, 9):
        rooms.end(f"a{i}")
    assert all(rooms.rooms_of_cabin(c) == [] for c in ("c0", "c1", "c2")) and rooms._by_cabin == {}
