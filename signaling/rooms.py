"""Who is connected for which appointment, the waiting room, and what may be relayed to whom. Pure: no I/O.

A cabin is connected once (one gateway connection carries all of that cabin's appointments); a professional is
connected to one appointment. The citizen checks in at the cabin (presence), the professional admits them, and
only then may the cabin make its offer: no media flows before admission. Admission lasts for the appointment, so a
professional who reloads the page, or a cabin whose link blinks, is back in the call without a second admission.

A room lives no longer than its appointment: `sweep` forgets the rooms whose window has ended (a call still going
gets a little overtime), and `end` forgets a cancelled one, so that memory stays bounded by the appointments open now.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from signaling.errors import SignalingError
from signaling.protocol import AppointmentKind, CloseCode, Role, RoomState

C = TypeVar("C")


class RoomError(SignalingError, ValueError):
    """A membership or relay request that breaks the rules; `code` is the close or error code."""

    def __init__(self, message: str, code: CloseCode) -> None:
        super().__init__(message)
        self.code = code


class Negotiation(enum.StrEnum):
    IDLE = "idle"
    OFFERED = "offered"
    ANSWERED = "answered"


@dataclass(frozen=True, slots=True)
class Slot:
    """What a room needs to know about its appointment: whose it is, its kind, and when it is over."""

    appointment_id: str
    cabin_id: str
    kind: AppointmentKind
    ends_at: datetime
    # Admitted before (kept by the store): a room rebuilt after a restart of signaling starts admitted.
    admitted: bool = False
    # The citizen checked in, as a previous room node of a cluster saw it.
    citizen_present: bool = False


@dataclass(slots=True)
class Room(Generic[C]):
    appointment_id: str
    cabin_id: str
    kind: AppointmentKind
    ends_at: datetime
    professional: C | None = None
    citizen_present: bool = False
    admitted: bool = False
    negotiation: Negotiation = Negotiation.IDLE


@dataclass(slots=True)
class Rooms(Generic[C]):
    """Membership of rooms and cabins, keyed by ids; connections are opaque handles."""

    _cabins: dict[str, C] = field(default_factory=dict)
    _rooms: dict[str, Room[C]] = field(default_factory=dict)
    # Each cabin's rooms by appointment id: a cabin (re)connecting finds its own without looking at thousands.
    _by_cabin: dict[str, dict[str, Room[C]]] = field(default_factory=dict)

    def connections(self) -> list[C]:
        """Every connection, each once: cabins, then professionals."""
        found: list[C] = list(self._cabins.values())
        found += [r.professional for r in self._rooms.values() if r.professional is not None]
        return found

    def cabin_ids(self) -> list[str]:
        return list(self._cabins)

    def cabin(self, cabin_id: str) -> C | None:
        return self._cabins.get(cabin_id)

    def room(self, appointment_id: str) -> Room[C] | None:
        return self._rooms.get(appointment_id)

    def rooms_of_cabin(self, cabin_id: str) -> list[Room[C]]:
        return list(self._by_cabin.get(cabin_id, {}).values())

    def state(self, room: Room[C]) -> RoomState:
        return RoomState(
            appointment_id=room.appointment_id,
            cabin_online=room.cabin_id in self._cabins,
            citizen_present=room.citizen_present,
            professional_present=room.professional is not None,
            admitted=room.admitted,
        )

    def ready(self, room: Room[C]) -> bool:
        """Both ends are here and the citizen was admitted: the call can (re)start."""
        return room.admitted and room.professional is not None and room.cabin_id in self._cabins

    def __len__(self) -> int:
        return len(self._rooms)

    def _room(self, slot: Slot) -> Room[C]:
        room = self._rooms.get(slot.appointment_id)
        if room is None:
            room = Room(
                slot.appointment_id,
                slot.cabin_id,
                slot.kind,
                slot.ends_at,
                citizen_present=slot.citizen_present,
                admitted=slot.admitted,
            )
            self._rooms[slot.appointment_id] = room
            self._by_cabin.setdefault(room.cabin_id, {})[room.appointment_id] = room
        return room

    def _drop(self, appointment_id: str) -> Room[C] | None:
        room = self._rooms.pop(appointment_id, None)
        if room is not None:
            of_cabin = self._by_cabin.get(room.cabin_id, {})
            of_cabin.pop(appointment_id, None)
            if not of_cabin:
                self._by_cabin.pop(room.cabin_id, None)
        return room

    def _forget_if_empty(self, room: Room[C]) -> None:
        if room.professional is None and not room.citizen_present and not room.admitted:
            self._drop(room.appointment_id)

    # --- cabins ----------------------------------------------------------------------------------------------

    def attach_cabin(self, cabin_id: str, conn: C) -> C | None:
        """Register the cabin's connection; returns a previous connection of that cabin, to be closed."""
        previous = self._cabins.get(cabin_id)
        self._cabins[cabin_id] = conn
        for room in self.rooms_of_cabin(cabin_id):
            room.negotiation = Negotiation.IDLE
        return previous if previous is not conn else None

    def detach_cabin(self, cabin_id: str, conn: C) -> list[Room[C]]:
        """Forget the cabin's connection (if it is still this one); returns the cabin's rooms."""
        if self._cabins.get(cabin_id) is not conn:
            return []
        del self._cabins[cabin_id]
        rooms = self.rooms_of_cabin(cabin_id)
        for room in rooms:
            room.negotiation = Negotiation.IDLE
        return rooms

    def set_presence(self, slot: Slot, present: bool, conn: C) -> Room[C]:
        """The citizen checked in (or left) at the cabin.

        Raises:
            RoomError: `conn` is not that cabin's current connection.
        """
        if self._cabins.get(slot.cabin_id) is not conn:
            raise RoomError("not your appointment", CloseCode.FORBIDDEN)
        room = self._room(slot)
        room.citizen_present = present
        if not present:
            # The citizen left the cabin: the next person must be admitted anew.
            room.admitted = False
            room.negotiation = Negotiation.IDLE
        return room

    # --- professionals ---------------------------------------------------------------------------------------

    def attach_professional(self, slot: Slot, conn: C) -> Room[C]:
        """Put a professional in the appointment's room.

        Raises:
            RoomError: another professional is already connected with this link.
        """
        room = self._room(slot)
        if room.professional is not None and room.professional is not conn:
            raise RoomError("someone is already connected with this link", CloseCode.CONFLICT)
        room.professional = conn
        room.negotiation = Negotiation.IDLE
        return room

    def detach_professional(self, appointment_id: str, conn: C) -> Room[C] | None:
        """Remove the professional (if still this connection); returns the room they left."""
        room = self._rooms.get(appointment_id)
        if room is None or room.professional is not conn:
            return None
        room.professional = None
        room.negotiation = Negotiation.IDLE
        self._forget_if_empty(room)
        return room

    def admit(self, appointment_id: str, conn: C) -> Room[C]:
        """The professional admits the citizen.

        Raises:
            RoomError: not this professional's room, or nobody to admit yet.
        """
        room = self._rooms.get(appointment_id)
        if room is None or room.professional is not conn:
            raise RoomError("not your appointment", CloseCode.FORBIDDEN)
        if room.cabin_id not in self._cabins or not room.citizen_present:
            raise RoomError("the citizen is not in the cabin yet", CloseCode.CONFLICT)
        room.admitted = True
        return room

    def end(self, appointment_id: str) -> Room[C] | None:
        """Forget a room (appointment cancelled or over); returns it so its connections can be told."""
        return self._drop(appointment_id)

    def sweep(self, now: datetime, overtime: timedelta) -> list[Room[C]]:
        """Forget the rooms whose appointment is over at `now`; returns them so their connections can be told.

        A room is over once its window has ended, whoever is still in it; a call still going (its professional is
        connected) is given `overtime` more to finish.
        """
        over = [
            room
            for room in self._rooms.values()
            if room.ends_at + (overtime if room.professional is not None else timedelta(0)) <= now
        ]
        for room in over:
            self._drop(room.appointment_id)
        return over

    # --- relay -----------------------------------------------------------------------------------------------

    def route(self, appointment_id: str, sender: Role, message_type: str, conn: C) -> C:
        """Check that `conn` may send `message_type` in this room now, and return the connection to relay to.

        Raises:
            RoomError: not this sender's room, the other end is absent, not admitted, or out of order.
        """
        room = self._rooms.get(appointment_id)
        if room is None:
            raise RoomError("no such appointment in progress", CloseCode.FORBIDDEN)
        if sender is Role.PROFESSIONAL:
            if room.professional is not conn:
                raise RoomError("not your appointment", CloseCode.FORBIDDEN)
            peer = self._cabins.get(room.cabin_id)
        else:
            if self._cabins.get(room.cabin_id) is not conn:
                raise RoomError("not your appointment", CloseCode.FORBIDDEN)
            peer = room.professional
        if peer is None:
            raise RoomError("the other side is not connected", CloseCode.CONFLICT)
        if not room.admitted and message_type != "bye":
            raise RoomError("the citizen has not been admitted", CloseCode.PROTOCOL_ERROR)
        self._advance(room, sender, message_type)
        return peer

    @staticmethod
    def _advance(room: Room[C], sender: Role, message_type: str) -> None:
        if message_type == "offer":
            if sender is not Role.CABIN:
                raise RoomError("only the cabin makes the offer", CloseCode.PROTOCOL_ERROR)
            room.negotiation = Negotiation.OFFERED
        elif message_type == "answer":
            if sender is not Role.PROFESSIONAL:
                raise RoomError("only the professional answers", CloseCode.PROTOCOL_ERROR)
            if room.negotiation is not Negotiation.OFFERED:
                raise RoomError("answer before offer", CloseCode.PROTOCOL_ERROR)
            room.negotiation = Negotiation.ANSWERED
        elif message_type == "candidate":
            if room.negotiation is Negotiation.IDLE:
                raise RoomError("candidate before offer", CloseCode.PROTOCOL_ERROR)
        elif message_type == "bye":
            room.negotiation = Negotiation.IDLE
        elif message_type == "restart" and sender is not Role.PROFESSIONAL:
            raise RoomError("only the professional asks for a restart", CloseCode.PROTOCOL_ERROR)
