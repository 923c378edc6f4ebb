"""The WebSocket handler: authenticate with the first message, then relay negotiation within one room."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from signaling.appointments import Appointment
from signaling.config import ServerConfig
from signaling.protocol import (
    Answer,
    Bye,
    Candidate,
    CloseCode,
    Error,
    Hello,
    Message,
    Offer,
    PeerJoined,
    PeerLeft,
    ProtocolError,
    Role,
    Welcome,
    dump,
    parse,
)
from signaling.ratelimit import TokenBucket
from signaling.rooms import Room, RoomError, Rooms
from signaling.tokens import TokenError, TokenRefusal, fingerprint

log = logging.getLogger("cabine.signaling")

ROOMS: web.AppKey[Rooms[Client]] = web.AppKey("rooms", Rooms)
CONFIG: web.AppKey[ServerConfig] = web.AppKey("config", ServerConfig)


@dataclass(eq=False, slots=True)
class Client:
    """One authenticated WebSocket: a professional in one appointment, or a cabin."""

    ws: web.WebSocketResponse
    role: Role
    subject: str  # appointment id for a professional, cabin id for a cabin
    peer: str
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


async def _refuse(ws: web.WebSocketResponse, code: int, message: str) -> None:
    if ws.closed:
        return
    with contextlib.suppress(ConnectionError):
        await ws.send_str(dump(Error(code=code, message=message)))
    await ws.close(code=code, message=_close_reason(message))


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """GET /ws/{role}: a professional's page or a cabin's gateway."""
    config = request.app[CONFIG]
    try:
        role = Role(request.match_info["role"])
    except ValueError:
        raise web.HTTPNotFound(text="Unknown endpoint.") from None
    # aiohttp closes with 1009 above this; ours is checked at 64 KiB for a clear 4413.
    ws = web.WebSocketResponse(heartbeat=config.heartbeat, max_msg_size=256 * 1024)
    await ws.prepare(request)
    peer = request.remote or "?"
    client: Client | None = None
    try:
        client = await _authenticate(request, ws, role, peer)
        if client is None:
            return ws
        await _serve(request, client)
    except asyncio.CancelledError:
        raise
    finally:
        if client is not None:
            await _leave(request.app, client)
        if not ws.closed:
            await ws.close()
    return ws


async def _authenticate(request: web.Request, ws: web.WebSocketResponse, role: Role, peer: str) -> Client | None:
    app = request.app
    config = app[CONFIG]
    try:
        msg = await ws.receive(timeout=config.hello_timeout)
    except TimeoutError:
        await _refuse(ws, CloseCode.AUTH_TIMEOUT, "no hello within the time allowed")
        return None
    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        return None
    if msg.type is not WSMsgType.TEXT:
        await _refuse(ws, CloseCode.PROTOCOL_ERROR, "expected a text message")
        return None
    try:
        hello = parse(msg.data)
    except ProtocolError as exc:
        await _refuse(ws, exc.code, str(exc))
        return None
    if not isinstance(hello, Hello):
        await _refuse(ws, CloseCode.UNAUTHORIZED, "the first message must be 'hello' with a token")
        return None
    now = config.clock()
    try:
        claims = config.signer.verify(hello.token, role=role, now=now)
    except TokenError as exc:
        code = CloseCode.UNAUTHORIZED if exc.status == 401 else CloseCode.FORBIDDEN
        log.info("refused %s from %s: %s (token %s)", role, peer, exc.reason, fingerprint(hello.token))
        await _refuse(ws, code, str(exc))
        return None
    client = Client(
        ws=ws,
        role=role,
        subject=claims.subject,
        peer=peer,
        bucket=TokenBucket(config.rate_burst, config.rate_per_second),
    )
    rooms = app[ROOMS]
    if role is Role.PROFESSIONAL:
        appointment = config.store.get(claims.subject)
        if appointment is None:
            await _refuse(ws, CloseCode.FORBIDDEN, "unknown appointment")
            return None
        if appointment.cancelled:
            await _refuse(ws, CloseCode.FORBIDDEN, str(TokenError(TokenRefusal.REVOKED)))
            return None
        if not appointment.opens_at <= now < appointment.ends_at:
            await _refuse(ws, CloseCode.FORBIDDEN, "outside the appointment's time window")
            return None
        client.appointment = appointment
        client.label = f"apt {appointment.id[:12]}"
        try:
            rooms.attach_professional(appointment.id, appointment.cabin_id, appointment.kind, client)
        except RoomError as exc:
            log.info("%s: refused a second professional from %s", client.label, peer)
            await _refuse(ws, exc.code, str(exc))
            return None
        log.info("%s: professional joined from %s", client.label, peer)
        await client.send(Welcome(role=role, ice_servers=config.ice_servers, appointment=appointment.info()))
        cabin = rooms.cabin(appointment.cabin_id)
        if cabin is not None:
            await _introduce(config, rooms.room(appointment.id), cabin, client)
    else:
        client.label = f"cabin {claims.subject[:12]}"
        previous = rooms.attach_cabin(claims.subject, client)
        if previous is not None:
            log.info("%s: replaced by a new connection from %s", client.label, peer)
            await _refuse(previous.ws, CloseCode.CONFLICT, "replaced by a newer connection of this cabin")
        log.info("%s: connected from %s", client.label, peer)
        await client.send(Welcome(role=role, ice_servers=config.ice_servers, cabin_id=claims.subject))
        for room in rooms.rooms_of_cabin(claims.subject):
            if room.professional is not None:
                await _introduce(config, room, client, room.professional)
    return client


async def _introduce(config: ServerConfig, room: Room[Client] | None, cabin: Client, pro: Client) -> None:
    """Tell each end of a room that the other is there; the cabin then makes its offer."""
    if room is None:
        return
    await pro.send(PeerJoined(appointment_id=room.appointment_id, role=Role.CABIN, kind=room.kind))
    await cabin.send(
        PeerJoined(
            appointment_id=room.appointment_id,
            role=Role.PROFESSIONAL,
            kind=room.kind,
            ice_servers=config.ice_servers,
        )
    )


async def _serve(request: web.Request, client: Client) -> None:
    rooms = request.app[ROOMS]
    ws = client.ws
    async for msg in ws:
        if msg.type is WSMsgType.ERROR:
            log.info("%s: connection error", client.label)
            return
        if msg.type is not WSMsgType.TEXT:
            await _refuse(ws, CloseCode.PROTOCOL_ERROR, "expected a text message")
            return
        if not client.bucket.take(time.monotonic()):
            log.warning("%s: too many messages from %s, closing", client.label, client.peer)
            await _refuse(ws, CloseCode.RATE_LIMITED, "too many messages")
            return
        try:
            message = parse(msg.data)
        except ProtocolError as exc:
            log.info("%s: protocol error: %s", client.label, exc)
            await _refuse(ws, exc.code, str(exc))
            return
        if not isinstance(message, Offer | Answer | Candidate | Bye):
            await _refuse(ws, CloseCode.PROTOCOL_ERROR, f"'{message.type}' is not expected here")
            return
        if client.role is Role.PROFESSIONAL and message.appointment_id != client.subject:
            await _refuse(ws, CloseCode.FORBIDDEN, "not your appointment")
            return
        try:
            target = rooms.route(message.appointment_id, client.role, message.type, client)
        except RoomError as exc:
            if exc.code is CloseCode.FORBIDDEN:
                await _refuse(ws, exc.code, str(exc))
                return
            await client.send(Error(code=exc.code, message=str(exc)))
            continue
        await target.send(message)


async def _leave(app: web.Application, client: Client) -> None:
    rooms = app[ROOMS]
    if client.role is Role.PROFESSIONAL:
        room = rooms.detach_professional(client.subject, client)
        if room is not None:
            log.info("%s: professional left", client.label)
            cabin = rooms.cabin(room.cabin_id)
            if cabin is not None:
                await cabin.send(PeerLeft(appointment_id=room.appointment_id, role=Role.PROFESSIONAL))
    else:
        for room in rooms.detach_cabin(client.subject, client):
            log.info("%s: cabin left apt %s", client.label, room.appointment_id[:12])
            if room.professional is not None:
                await room.professional.send(PeerLeft(appointment_id=room.appointment_id, role=Role.CABIN))
