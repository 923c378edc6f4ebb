"""The `vitals` data-channel protocol: numbered readings, cumulative acks, replay after reconnection.

Pure: no I/O of its own (an outbox given a journal writes through it).

Gateway -> page: {"v": 1, "type": "reading", "seq": n, "reading": {...Reading.to_wire()}}
Page -> gateway: {"v": 1, "type": "ack", "seq": n}   (everything up to n was received)
                 {"v": 1, "type": "hello", "last_seq": n}   (on a new channel: what the page already has)
                 {"v": 1, "type": "request", "kind": "blood-pressure"}   (ask the citizen for a measurement)
                 {"v": 1, "type": "export"}   (the consultation's readings as a FHIR R4 Bundle)
                 {"v": 1, "type": "heartbeat"}   (every second: the page is alive)
Gateway -> page: {"v": 1, "type": "device", "device": {...}}   (a device's state: connected, battery)
                 {"v": 1, "type": "bundle", "bundle": {...}}   (answer to export)
                 {"v": 1, "type": "heartbeat"}   (every second: the cabin is alive)

Readings are kept until acknowledged, in memory, and with a `ReadingJournal` (gateway/journal.py) also in a file
of the runtime directory so that a restarted gateway can replay them; the outbox is cleared with the appointment, and
the journal with it: nothing about the citizen is left on the cabin PC.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from gateway.devices.readings import Reading
from gateway.errors import GatewayError
from gateway.journal import JournalError, ReadingJournal

log = logging.getLogger("cabine.gateway")

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


@dataclass(frozen=True, slots=True)
class PageHeartbeat:
    """The page is alive (sent every second on an open channel); nothing to answer."""


PageMessage = Ack | PageHello | MeasurementRequest | ExportRequest | PageHeartbeat
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
    if kind == "heartbeat":
        return PageHeartbeat()
    raise VitalsProtocolError(f"unknown vitals message type {str(kind)[:32]!r}")


def reading_message(seq: int, reading: Reading) -> str:
    """The gateway -> page message that carries reading number `seq`."""
    return json.dumps(
        {"v": VERSION, "type": "reading", "seq": seq, "reading": reading.to_wire()}, separators=(",", ":")
    )


class VitalsOutbox:
    """Numbers readings and keeps each one until the page acknowledges it; with a journal, across restarts too.

    Without a journal, everything is in memory: at most MAX_PENDING unacknowledged readings (beyond, the oldest is
    dropped and counted in `dropped`), and `history` holds the first MAX_PENDING readings. With a journal (and the
    appointment it files them under), the outbox starts from what the journal holds for the appointment (numbering,
    unacknowledged readings, history) and writes every reading and every ack through before returning, so a
    reading is on file before it is sent; the journal keeps at most MAX_PENDING readings per appointment (beyond,
    the oldest acknowledged one leaves `history`, or if none is, the oldest unacknowledged one is dropped and
    counted): `history` is then the latest MAX_PENDING. A consultation makes tens of readings, so the two agree in
    practice. A failing journal write is logged and the reading still goes out from memory (it is only not
    restart-safe): a reading is never lost for want of a file.
    """

    def __init__(self, journal: ReadingJournal | None = None, appointment_id: str | None = None) -> None:
        """Raises: ValueError: a journal without an appointment id or the reverse; JournalError: loading failed."""
        if (journal is None) != (appointment_id is None):
            raise ValueError("a journaled outbox needs both a journal and an appointment id")
        self._journal = journal
        self._appointment_id = appointment_id or ""
        self._next_seq = 1
        self._pending: OrderedDict[int, str] = OrderedDict()
        # The consultation's readings by seq, for the FHIR export at its end; cleared with the outbox.
        self._history: OrderedDict[int, Reading] = OrderedDict()
        self.dropped = 0
        # Journal writes that failed (the readings went out all the same, from memory).
        self.journal_errors = 0
        if journal is not None:
            state = journal.load(self._appointment_id)
            self._next_seq = state.last_seq + 1
            for entry in state.readings:
                self._history[entry.seq] = entry.reading
                if not entry.acked:
                    self._pending[entry.seq] = reading_message(entry.seq, entry.reading)
            self.dropped = state.dropped

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    @property
    def history(self) -> list[Reading]:
        """The appointment's readings in seq order, acknowledged or not (bounded: see the class)."""
        return list(self._history.values())

    def add(self, reading: Reading) -> tuple[int, str]:
        """Number a reading; returns (seq, wire text) and keeps it until acknowledged (on file first, if journaled)."""
        seq = self._next_seq
        self._next_seq += 1
        text = reading_message(seq, reading)
        self._pending[seq] = text
        self._history[seq] = reading
        if self._journal is None:
            if len(self._history) > MAX_PENDING:
                self._history.popitem(last=True)  # memory keeps the first readings of the consultation
            while len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)
                self.dropped += 1
            return seq, text
        try:
            evicted = self._journal.record(self._appointment_id, seq, reading, keep=MAX_PENDING)
        except JournalError as exc:
            self.journal_errors += 1
            log.warning("apt %s: reading %d not journaled, sent from memory: %s", self._label, seq, exc)
        else:
            if evicted is not None:
                self._history.pop(evicted.seq, None)
                if evicted.seq in self._pending:
                    del self._pending[evicted.seq]
                    self.dropped += 1
        # The journal's rule in memory too (it only acts here if a journal write failed).
        while len(self._history) > MAX_PENDING:
            self._history.popitem(last=False)
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
        if released and self._journal is not None:
            try:
                self._journal.ack(self._appointment_id, min(seq, self.last_seq))
            except JournalError as exc:
                # After a restart these would be sent again; the page recognises their numbers.
                self.journal_errors += 1
                log.warning("apt %s: ack of %d not journaled: %s", self._label, seq, exc)
        return released

    def replay(self, after: int = 0) -> list[str]:
        """What to send again on a new channel: pending readings numbered above `after`."""
        return [text for seq, text in self._pending.items() if seq > after]

    def clear(self) -> None:
        """Forget every reading, and wipe them from the journal; numbering goes on (never reused)."""
        self._pending.clear()
        self._history.clear()
        if self._journal is not None:
            try:
                self._journal.wipe(self._appointment_id)
            except JournalError as exc:
                # Left on file: the gateway wipes journaled appointments that are over when it starts.
                self.journal_errors += 1
                log.error("apt %s: readings could not be wiped from the journal: %s", self._label, exc)

    @property
    def _label(self) -> str:
        return self._appointment_id[:12]


def dump_message(kind: str, **fields: object) -> str:
    """An unnumbered gateway -> page message (device states, export answers)."""
    return json.dumps({"v": VERSION, "type": kind, **fields}, separators=(",", ":"))
