"""A client's WebSocket carried between two signaling nodes: the node the client reached (its door) forwards what the
client sends to the node that runs the rooms (the room node), and what the room node says back.

The room node sees a `RemoteSocket`: it quacks like aiohttp's WebSocketResponse where signaling uses one (receive,
iterate, send_str, close, closed), so the same handlers serve a client connected here or through another node.
The door keeps a `DoorLink` beside the real WebSocket. Both ends number their frames (signaling/relay_link.py):
nothing is lost or delivered twice when Redis or a node restarts, only late.

Frames, as JSON published to the other node's channel:
    {"k": "f", "l": link, "n": from_node, "s": seq, "p": payload}   payload: {"open": {"role", "peer"}},
                                                                     {"text": str}, {"binary": true},
                                                                     {"close": [code, reason]}
    {"k": "a", "l": link, "n": from_node, "s": upto}                 everything up to `upto` delivered
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import WSCloseCode, WSMessage, WSMsgType

from signaling.relay_link import Inbox, LinkBroken, Outbox

Payload = dict[str, Any]
# How a link end hands a frame or an acknowledgement to the node's publisher: (to node, JSON text).
Publish = Callable[[str, str], None]

# A link the other node cannot be reached for: the client sees this close and connects again (to another node).
LOST: Final = (1012, "signaling node changed, connect again")
# A client this many messages behind (it does not read) is closed with this.
MAX_BEHIND: Final = 1024
BEHIND: Final = (1013, "too far behind; connect again")


def frame(link: str, node: str, seq: int, payload: Payload) -> str:
    return json.dumps({"k": "f", "l": link, "n": node, "s": seq, "p": payload}, separators=(",", ":"))


def ack(link: str, node: str, upto: int) -> str:
    return json.dumps({"k": "a", "l": link, "n": node, "s": upto}, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Received:
    """A frame or an acknowledgement as read from the channel."""

    kind: str  # "f" or "a"
    link: str
    node: str
    seq: int
    payload: Payload


def parse_frame(text: str | bytes) -> Received | None:
    """A frame from the node channel, or None for anything malformed (logged by the caller, never fatal)."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    kind, link, node, seq = data.get("k"), data.get("l"), data.get("n"), data.get("s")
    payload = data.get("p", {})
    if kind not in ("f", "a") or not isinstance(link, str) or not isinstance(node, str):
        return None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(payload, dict):
        return None
    return Received(kind, link, node, seq, payload)


class LinkEnd:
    """What both ends share: the numbered frames out, the ordered frames in, and who is on the other side."""

    def __init__(self, link: str, me: str, other: str, publish: Publish, *, resend_after: float) -> None:
        self.link = link
        self.me = me
        self.other = other
        self._publish = publish
        self.outbox: Outbox[Payload] = Outbox(resend_after=resend_after)
        self.inbox: Inbox[Payload] = Inbox()

    def put(self, payload: Payload, now: float) -> None:
        """Send a frame (kept until acknowledged).

        Raises:
            LinkBroken: the other node has not acknowledged for too long.
        """
        seq = self.outbox.push(payload, now)
        self._publish(self.other, frame(self.link, self.me, seq, payload))

    def resend(self, now: float) -> None:
        """Publish again what waits too long for its acknowledgement.

        Raises:
            LinkBroken: the other node has not acknowledged for too long.
        """
        for seq, payload in self.outbox.due(now):
            self._publish(self.other, frame(self.link, self.me, seq, payload))

    def take(self, received: Received) -> list[Payload]:
        """A frame or acknowledgement from the other end; the payloads to deliver now, in order.

        Raises:
            LinkBroken: too many frames came ahead of a missing one.
        """
        if received.kind == "a":
            self.outbox.ack(received.seq)
            return []
        ready = self.inbox.receive(received.seq, received.payload)
        # Acknowledge every frame, a duplicate too: its first acknowledgement may be what was lost.
        self._publish(self.other, ack(self.link, self.me, self.inbox.delivered))
        return ready


def _closing(code: int, reason: str) -> WSMessage:
    return WSMessage(WSMsgType.CLOSE, code, reason)


class RemoteSocket(LinkEnd):
    """The room node's end: a client connected to another node, seen as a WebSocket."""

    def __init__(
        self, link: str, me: str, door: str, publish: Publish, *, role: str, peer: str, resend_after: float
    ) -> None:
        super().__init__(link, me, door, publish, resend_after=resend_after)
        self.role = role
        self.peer = peer
        self._incoming: asyncio.Queue[WSMessage] = asyncio.Queue()
        self._closed = False
        self._ended = False  # the client's side ended (its close, or its node gone)
        self.clock: Callable[[], float] = time.monotonic

    # --- what the handlers use -------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def send_str(self, data: str) -> None:
        if self._closed or self._ended:
            raise ConnectionResetError("the client's connection is closed")
        try:
            self.put({"text": data}, self.clock())
        except LinkBroken as exc:
            # The door stopped acknowledging: the client is as good as gone.
            self.end()
            raise ConnectionResetError(f"the client's node does not answer: {exc}") from None

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool:
        if self._closed:
            return False
        self._closed = True
        if not self._ended:
            with contextlib.suppress(LinkBroken):
                self.put({"close": [int(code), message.decode(errors="replace")]}, self.clock())
        self._incoming.put_nowait(_closing(int(code), ""))
        return True

    async def receive(self, timeout: float | None = None) -> WSMessage:
        if self._closed and self._incoming.empty():
            return WSMessage(WSMsgType.CLOSED, None, None)
        async with asyncio.timeout(timeout):
            return await self._incoming.get()

    def __aiter__(self) -> RemoteSocket:
        return self

    async def __anext__(self) -> WSMessage:
        message = await self.receive()
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            raise StopAsyncIteration
        return message

    # --- what the cluster feeds it ---------------------------------------------------------------------------

    def deliver(self, payload: Payload) -> None:
        if "text" in payload and isinstance(payload["text"], str):
            self._incoming.put_nowait(WSMessage(WSMsgType.TEXT, payload["text"], None))
        elif "binary" in payload:
            self._incoming.put_nowait(WSMessage(WSMsgType.BINARY, b"", None))
        elif "close" in payload:
            self.end()

    def end(self) -> None:
        """The client's side is gone (it closed, or its node died): the handler sees the connection close."""
        if not self._ended:
            self._ended = True
            self._incoming.put_nowait(_closing(WSCloseCode.GOING_AWAY, ""))

    @property
    def ended(self) -> bool:
        return self._ended


class DoorLink(LinkEnd):
    """The door's end: what the room node says to the client, queued for the WebSocket's writer."""

    def __init__(self, link: str, me: str, room_node: str, publish: Publish, *, resend_after: float) -> None:
        super().__init__(link, me, room_node, publish, resend_after=resend_after)
        # For the client: ("text", str) to send, ("close", (code, reason)) to close with.
        self.outgoing: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.finished = False  # the client's WebSocket is closed, or about to be
        self.room_closed = False  # the room node knows the link is over (it closed it, or was told)

    def deliver(self, payload: Payload) -> None:
        if "text" in payload and isinstance(payload["text"], str):
            if self.outgoing.qsize() >= MAX_BEHIND:
                # The client does not read what it is sent: it is closed rather than let the queue grow.
                self.lost(*BEHIND)
            elif not self.finished:
                self.outgoing.put_nowait(("text", payload["text"]))
        elif "close" in payload:
            self.room_closed = True
            close = payload["close"]
            ok = isinstance(close, list) and len(close) == 2 and isinstance(close[0], int)
            self.lost(*(close if ok else LOST))

    def lost(self, code: int, reason: str) -> None:
        """Close the client's WebSocket with this code (the room node closed it, or cannot be reached)."""
        if not self.finished:
            self.finished = True
            self.outgoing.put_nowait(("close", (code, str(reason))))


__all__ = ["LOST", "DoorLink", "LinkBroken", "LinkEnd", "Received", "RemoteSocket", "parse_frame"]
