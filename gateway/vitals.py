"""The `vitals` data-channel protocol: numbered readings, cumulative acks, replay after reconnection. Pure.

Gateway -> page: {"v": 1, "type": "reading", "seq": n, "reading": {...Reading.to_wire()}}
Page -> gateway: {"v": 1, "type": "ack", "seq": n}   (everything up to n was received)
                 {"v": 1, "type": "hello", "last_seq": n}   (on a new channel: what the page already has)
                 {"v": 1, "type": "request", "kind": "blood-pressure"}   (ask the citizen for a measurement)
                 {"v": 1, "type": "export"}   (the consultation's readings as a FHIR R4 Bundle)
Gateway -> page: {"v": 1, "type": "device", "device": {...}}   (a device's state: connected, battery)
                 {"v": 1, "type": "bundle", "bundle": {...}}   (answer to export)

Readings stay in memory only until acknowledged, and the outbox is dropped with the appointment: nothing about
the citizen is left on the cabin PC.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from gateway.devices.readings import Reading
from gateway.errors import GatewayError

VERSION: Final = 1
CHANNEL_LABEL: Final = "vitals"
MAX_MESSAGE_BYTES: Final = 4096
# A consultation produces tens of readings; this bounds memory if a page never acknowledges.
MAX_PENDING: Final = 1000


class VitalsProtocolError(GatewayError, ValueError):
    """A message on the vitals channel is not one we understand."""


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int


@dataclass(frozen=True, slots=True)
class PageHello:
    last_seq: int


@dataclass(frozen=True, slots=True)
class MeasurementRequest:
    kind: str


@dataclass(frozen=True, slots=True)
class ExportRequest:
    pass


PageMessage = Ack | PageHello | MeasurementRequest | ExportRequest
REQUESTABLE_KINDS: Final = frozenset(
    {"body-temperature", "blood-pressure", "oxygen-saturation", "body-weight", "heart-rate"}
)


def parse_page_message(text: str | bytes) -> PageMessage:
    """Parse a message sent by the professional's page.

    Raises:
        VitalsProtocolError: not JSON, wrong version, unknown type or a bad field.
    """
    if len(text) > MAX_MESSAGE_BYTES:
        raise VitalsProtocolError(f"vitals message too large ({len(text)} bytes)")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VitalsProtocolError("vitals message is not JSON") from exc
    if not isinstance(data, dict):
        raise VitalsProtocolError("vitals message must be a JSON object")
    if data.get("v") != VERSION:
        raise VitalsProtocolError(f"unsupported vitals protocol version {data.get('v')!r}")
    kind = data.get("type")
    if kind in ("ack", "hello"):
        key = "seq" if kind == "ack" else "last_seq"
        seq = data.get(key)
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise VitalsProtocolError(f"'{key}' must be a non-negative integer")
        return Ack(seq) if kind == "ack" else PageHello(seq)
    if kind == "request":
        what = data.get("kind")
        if what not in REQUESTABLE_KINDS:
            raise VitalsProtocolError(f"cannot request a measurement of {str(what)[:32]!r}")
        return MeasurementRequest(str(what))
    if kind == "export":
        return ExportRequest()
    raise VitalsProtocolError(f"unknown vitals message type {str(kind)[:32]!r}")


class VitalsOutbox:
    """Numbers readings and keeps each one until the page acknowledges it."""

    def __init__(self) -> None:
        self._next_seq = 1
        self._pending: OrderedDict[int, str] = OrderedDict()
        # The consultation's readings, for the FHIR export at its end; memory only, cleared with the outbox.
        self.history: list[Reading] = []
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def add(self, reading: Reading) -> tuple[int, str]:
        """Number a reading; returns (seq, wire text) and keeps it until acknowledged."""
        seq = self._next_seq
        self._next_seq += 1
        if len(self.history) < MAX_PENDING:
            self.history.append(reading)
        text = json.dumps(
            {"v": VERSION, "type": "reading", "seq": seq, "reading": reading.to_wire()}, separators=(",", ":")
        )
        self._pending[seq] = text
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
            self.dropped += 1
        return seq, text

    def ack(self, seq: int) -> int:
        """Forget everything up to `seq`; returns how many readings were released."""
        released = 0
        while self._pending:
            first = next(iter(self._pending))
            if first > seq:
                break
            del self._pending[first]
            released += 1
        return released

    def replay(self, after: int = 0) -> list[str]:
        """What to send again on a new channel: pending readings numbered above `after`."""
        return [text for seq, text in self._pending.items() if seq > after]

    def clear(self) -> None:
        self._pending.clear()
        self.history.clear()


def dump_message(kind: str, **fields: object) -> str:
    """An unnumbered gateway -> page message (device states, export answers)."""
    return json.dumps({"v": VERSION, "type": kind, **fields}, separators=(",", ":"))
