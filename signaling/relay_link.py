"""One direction of a link between two signaling nodes: numbered frames, acknowledged, resent, delivered once and in
order. Pure: no I/O, the clock is passed in.

Redis's publish/subscribe delivers at most once: a frame published while a node or Redis restarts is gone. So the
sender keeps each frame until the other node acknowledges it and publishes it again every `resend_after` seconds;
the receiver delivers frames in sequence order, holds those that arrive early, and drops those it has already
delivered (acknowledging them again: it was the acknowledgement that was lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P")

# A link whose oldest frame waits longer than this for an acknowledgement is dead: the other node is gone.
GIVE_UP_AFTER = 30.0
# More frames than this waiting for acknowledgement: the other node does not keep up; the link ends.
MAX_UNACKED = 1024
# Frames that arrived ahead of a missing one, kept until it comes.
MAX_HELD = 1024


class LinkBroken(Exception):
    """The other node stopped acknowledging, or fell too far behind: the link cannot go on."""


@dataclass(slots=True)
class Outbox(Generic[P]):
    """What one side sent and the other has not acknowledged yet."""

    resend_after: float = 1.0
    next_seq: int = 1
    # seq -> (payload, first sent, last sent); insertion order is sequence order.
    _unacked: dict[int, tuple[P, float, float]] = field(default_factory=dict)

    def push(self, payload: P, now: float) -> int:
        """Number a new frame and keep it until acknowledged; its sequence number.

        Raises:
            LinkBroken: too many frames are waiting for acknowledgement.
        """
        if len(self._unacked) >= MAX_UNACKED:
            raise LinkBroken(f"{len(self._unacked)} frames not acknowledged")
        seq = self.next_seq
        self.next_seq += 1
        self._unacked[seq] = (payload, now, now)
        return seq

    def ack(self, upto: int) -> None:
        """The other side delivered every frame up to `upto` (acknowledgements are cumulative)."""
        for seq in [s for s in self._unacked if s <= upto]:
            del self._unacked[seq]

    def due(self, now: float) -> list[tuple[int, P]]:
        """The frames to publish again now, oldest first.

        Raises:
            LinkBroken: the oldest frame has waited longer than GIVE_UP_AFTER.
        """
        due: list[tuple[int, P]] = []
        for seq, (payload, first, last) in self._unacked.items():
            if now - first > GIVE_UP_AFTER:
                raise LinkBroken(f"frame {seq} not acknowledged for {now - first:.0f} s")
            if now - last >= self.resend_after:
                due.append((seq, payload))
                self._unacked[seq] = (payload, first, now)
        return due

    @property
    def pending(self) -> int:
        return len(self._unacked)


@dataclass(slots=True)
class Inbox(Generic[P]):
    """What one side received: delivered in order, each once."""

    delivered: int = 0
    _held: dict[int, P] = field(default_factory=dict)

    def receive(self, seq: int, payload: P) -> list[P]:
        """The frames that can be delivered now that `seq` came, in order (none for a duplicate or an early one).

        Raises:
            LinkBroken: too many frames arrived ahead of a missing one.
        """
        if seq <= self.delivered or seq in self._held:
            return []
        if seq != self.delivered + 1:
            if len(self._held) >= MAX_HELD:
                raise LinkBroken(f"frame {self.delivered + 1} missing, {len(self._held)} held after it")
            self._held[seq] = payload
            return []
        ready = [payload]
        self.delivered = seq
        while self.delivered + 1 in self._held:
            self.delivered += 1
            ready.append(self._held.pop(self.delivered))
        return ready
