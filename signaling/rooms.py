"""Who is connected for which appointment, and what may be relayed to whom. Pure: no I/O.

A cabin is connected once (one gateway connection carries all of that cabin's appointments); a professional is
connected to one appointment. A room exists while either end is there. The cabin always makes the offer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from signaling.errors import SignalingError
from signaling.protocol import AppointmentKind, CloseCode, Role

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


@dataclass(slots=True)
class Room(Generic[C]):
    appointment_id: str
    cabin_id: str
    kind: AppointmentKind
    professional: C | None = None
    negotiation: Negotiation = Negotiation.IDLE


@dataclass(slots=True)
class Rooms(Generic[C]):
    """Membership of rooms and cabins, keyed by ids; connections are opaque handles."""

    _cabins: dict[str, C] = field(default_factory=dict)
    _rooms: dict[str, Room[C]] = field(default_factory=dict)

    def connections(self) -> list[C]:
        """Every connection, each once: cabins, then professionals."""
        found: list[C] = list(self._cabins.values())
        found += [r.professional for r in self._rooms.values() if r.professional is not None]
        return found

    def cabin(self, cabin_id: str) -> C | None:
        return self._cabins.get(cabin_id)

    def room(self, appointment_id: str) -> Room[C] | None:
        return self._rooms.get(appointment_id)

    def rooms_of_cabin(self, cabin_id: str) -> list[Room[C]]:
        return [r for r in self._rooms.values() if r.cabin_id == cabin_id]

    def attach_cabin(self, cabin_id: str, conn: C) -> C | None:
        """Register the cabin's connection; returns a previous connection of that cabin, to be closed."""
        previous = self._cabins.get(cabin_id)
        self._cabins[cabin_id] = conn
        for room in self.rooms_of_cabin(cabin_id):
            room.negotiation = Negotiation.IDLE
        return previous if previous is not conn else None

    def detach_cabin(self, cabin_id: str, conn: C) -> list[Room[C]]:
        """Forget the cabin's connection (if it is still this one); returns rooms whose professional is waiting."""
        if self._cabins.get(cabin_id) is not conn:
            return []
        del self._cabins[cabin_id]
        waiting = []
        for room in self.rooms_of_cabin(cabin_id):
            room.negotiation = Negotiation.IDLE
            if room.professional is not None:
                waiting.append(room)
        return waiting

    def attach_professional(self, appointment_id: str, cabin_id: str, kind: AppointmentKind, conn: C) -> Room[C]:
        """Put a professional in the appointment's room.

        Raises:
            RoomError: another professional is already connected with this link.
        """
        room = self._rooms.get(appointment_id)
        if room is None:
            room = Room(appointment_id=appointment_id, cabin_id=cabin_id, kind=kind)
            self._rooms[appointment_id] = room
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
        del self._rooms[appointment_id]
        return room

    def route(self, appointment_id: str, sender: Role, message_type: str, conn: C) -> C:
        """Check that `conn` may send `message_type` in this room now, and return the connection to relay to.

        Raises:
            RoomError: not this sender's room, the other end is absent, or the message is out of order.
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
