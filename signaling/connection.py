"""One authenticated WebSocket (a professional in one appointment, or a cabin), and how to close one with a reason."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from aiohttp import web

from signaling.models import Appointment
from signaling.node_link import RemoteSocket
from signaling.protocol import Error, Message, Role, dump
from signaling.ratelimit import TokenBucket

log = logging.getLogger("cabine.signaling")

# A client's WebSocket: connected to this node, or carried from another node of the cluster.
Socket = web.WebSocketResponse | RemoteSocket


@dataclass(eq=False, slots=True)
class Client:
    """One authenticated WebSocket: a professional in one appointment, or a cabin."""

    ws: Socket
    role: Role
    subject: str  # appointment id for a professional, cabin id for a cabin
    peer: str  # the client's address (behind a trusted proxy: the forwarded one)
    bucket: TokenBucket
    appointment: Appointment | None = None
    label: str = field(default="")

    async def send(self, message: Message) -> None:
        if self.ws.closed:
            return
        try:
            await self.ws.send_str(dump(message))
        except ConnectionError:
            log.info("%s: send failed, connection gone", self.label)


def _close_reason(text: str) -> bytes:
    # A WebSocket close reason is at most 123 bytes.
    return text.encode()[:123]


async def refuse(ws: Socket, code: int, message: str) -> None:
    """Say why in an error message, then close with the matching code."""
    if ws.closed:
        return
    with contextlib.suppress(ConnectionError):
        await ws.send_str(dump(Error(code=code, message=message)))
    await ws.close(code=code, message=_close_reason(message))
