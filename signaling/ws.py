"""The WebSocket endpoints: authenticate with the first message, run the waiting room, relay within one room."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import WSMsgType, web

from signaling.alerts import AlertBook, help_requested
from signaling.cabin_auth import ReplayCache, verify_cabin_proof
from signaling.config import ServerConfig
from signaling.models import Appointment, AuditAction, AuditEvent
from signaling.protocol import (
    Admit,
    Answer,
    Bye,
    Candidate,
    CloseCode,
    Error,
    Hello,
    HelpRequest,
    Message,
    Offer,
    PeerJoined,
    PeerLeft,
    Presence,
    ProtocolError,
    Role,
    Schedule,
    Welcome,
    dump,
    parse,
)
from signaling.ratelimit import TokenBucket
from signaling.rooms import Room, RoomError, Rooms
from signaling.tokens import TokenError, TokenRefusal, fingerprint, peek_role

log = logging.getLogger("cabine.signaling")

SCHEDULE_HORIZON = timedelta(hours=24)


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


async def refuse(ws: web.WebSocketResponse, code: int, message: str) -> None:
    """Say why in an error message, then close with the matching code."""
    if ws.closed:
        return
    with contextlib.suppress(ConnectionError):
        await ws.send_str(dump(Error(code=code, message=message)))
    await ws.close(code=code, message=_close_reason(message))


class Hub:
    """The server's live state: rooms, cabins, and what to tell whom when something changes."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.rooms: Rooms[Client] = Rooms()
        self.replays = ReplayCache()
        self.alerts = AlertBook()

    def audit(
        self,
        action: AuditAction,
        actor: str,
        *,
        appointment_id: str | None = None,
        cabin_id: str | None = None,
        address: str | None = None,
        detail: str = "",
    ) -> None:
        self.config.store.audit(
            AuditEvent(
                at=self.config.clock(),
                action=action,
                actor=actor,
                appointment_id=appointment_id,
                cabin_id=cabin_id,
                address=address,
                detail=detail[:500],
            )
        )

    # --- telling both ends -----------------------------------------------------------------------------------

    async def publish_state(self, room: Room[Client]) -> None:
        state = self.rooms.state(room)
        if room.professional is not None:
            await room.professional.send(state)
        cabin = self.rooms.cabin(room.cabin_id)
        if cabin is not None:
            await cabin.send(state)

    async def start_call_if_ready(self, room: Room[Client]) -> None:
        """Once admitted and both ends are here, tell each: the cabin then makes its offer."""
        if self.config.auto_admit and not room.admitted and room.professional is not None:
            with contextlib.suppress(RoomError):
                self.rooms.admit(room.appointment_id, room.professional)
                self.audit(AuditAction.ADMITTED, "system", appointment_id=room.appointment_id, detail="auto")
                await self.publish_state(room)
        if not self.rooms.ready(room):
            return
        pro, cabin = room.professional, self.rooms.cabin(room.cabin_id)
        if pro is None or cabin is None:
            return
        await pro.send(PeerJoined(appointment_id=room.appointment_id, role=Role.CABIN, kind=room.kind))
        await cabin.send(
            PeerJoined(
                appointment_id=room.appointment_id,
                role=Role.PROFESSIONAL,
                kind=room.kind,
                ice_servers=self.config.ice_servers,
            )
        )

    def schedule_for(self, cabin_id: str) -> Schedule:
        now = self.config.clock()
        upcoming = self.config.store.list_appointments(
            cabin_id=cabin_id, since=now - timedelta(hours=8), until=now + SCHEDULE_HORIZON, include_cancelled=False
        )
        return Schedule(appointments=tuple(a.info() for a in upcoming if a.ends_at > now))

    async def refresh_schedules(self) -> None:
        for cabin_id in list(self.rooms.cabin_ids()):
            cabin = self.rooms.cabin(cabin_id)
            if cabin is not None:
                await cabin.send(self.schedule_for(cabin_id))

    # --- operator actions ------------------------------------------------------------------------------------

    async def appointment_cancelled(self, appointment_id: str) -> None:
        """End an ongoing call and turn away its professional: a cancelled appointment's link is revoked."""
        room = self.rooms.end(appointment_id)
        if room is None:
            return
        reason = str(TokenError(TokenRefusal.REVOKED))
        cabin = self.rooms.cabin(room.cabin_id)
        if cabin is not None:
            await cabin.send(Bye(appointment_id=appointment_id, reason="cancelled"))
            await cabin.send(self.schedule_for(room.cabin_id))
        if room.professional is not None:
            log.info("%s: cancelled, closing the professional's connection", room.professional.label)
            await refuse(room.professional.ws, CloseCode.FORBIDDEN, reason)

    async def cabin_disabled(self, cabin_id: str) -> None:
        """The operator disabled the cabin or replaced its key: its current connection must not go on."""
        cabin = self.rooms.cabin(cabin_id)
        if cabin is not None:
            await refuse(cabin.ws, CloseCode.FORBIDDEN, "closed by the operator: cabin disabled or its key replaced")

    async def appointment_created(self, appointment_id: str) -> None:
        appointment = self.config.store.get_appointment(appointment_id)
        cabin = None if appointment is None else self.rooms.cabin(appointment.cabin_id)
        if appointment is not None and cabin is not None:
            await cabin.send(self.schedule_for(appointment.cabin_id))

    async def close_all(self) -> None:
        for client in self.rooms.connections():
            await client.ws.close(code=CloseCode.GOING_AWAY, message=b"server shutting down")


HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
CONFIG: web.AppKey[ServerConfig] = web.AppKey("config", ServerConfig)


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
    hub = request.app[HUB]
    peer = request.remote or "?"
    client: Client | None = None
    try:
        client = await _authenticate(hub, ws, role, peer)
        if client is not None:
            await _serve(hub, client)
    finally:
        if client is not None:
            await _leave(hub, client)
        if not ws.closed:
            await ws.close()
    return ws


async def _hello(hub: Hub, ws: web.WebSocketResponse) -> Hello | None:
    try:
        msg = await ws.receive(timeout=hub.config.hello_timeout)
    except TimeoutError:
        await refuse(ws, CloseCode.AUTH_TIMEOUT, "no hello within the time allowed")
        return None
    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        return None
    if msg.type is not WSMsgType.TEXT:
        await refuse(ws, CloseCode.PROTOCOL_ERROR, "expected a text message")
        return None
    try:
        hello = parse(msg.data)
    except ProtocolError as exc:
        await refuse(ws, exc.code, str(exc))
        return None
    if not isinstance(hello, Hello):
        await refuse(ws, CloseCode.UNAUTHORIZED, "the first message must be 'hello' with a token")
        return None
    return hello


async def _refuse_token(
    hub: Hub, ws: web.WebSocketResponse, role: Role, peer: str, token: str, exc: TokenError
) -> None:
    code = CloseCode.UNAUTHORIZED if exc.status == 401 else CloseCode.FORBIDDEN
    log.info("refused %s from %s: %s (token %s)", role, peer, exc.reason, fingerprint(token))
    hub.audit(AuditAction.REFUSED, role.value, address=peer, detail=exc.reason.value)
    await refuse(ws, code, str(exc))


async def _authenticate(hub: Hub, ws: web.WebSocketResponse, role: Role, peer: str) -> Client | None:
    hello = await _hello(hub, ws)
    if hello is None:
        return None
    config = hub.config
    claimed = peek_role(hello.token)
    try:
        if claimed is not None and claimed != role.value:
            raise TokenError(TokenRefusal.WRONG_ROLE)
        now = config.clock()
        if role is Role.PROFESSIONAL:
            subject = config.signer.verify(hello.token, role=role, now=now).subject
        else:
            subject = verify_cabin_proof(hello.token, lookup=config.store.get_cabin, now=now, replays=hub.replays).id
    except TokenError as exc:
        await _refuse_token(hub, ws, role, peer, hello.token, exc)
        return None
    client = Client(
        ws=ws, role=role, subject=subject, peer=peer, bucket=TokenBucket(config.rate_burst, config.rate_per_second)
    )
    if role is Role.PROFESSIONAL:
        return await _admit_professional(hub, client, hello.token)
    return await _admit_cabin(hub, client)


async def _admit_professional(hub: Hub, client: Client, token: str) -> Client | None:
    config, rooms = hub.config, hub.rooms
    appointment = config.store.get_appointment(client.subject)
    try:
        if appointment is None:
            raise TokenError(TokenRefusal.REVOKED, "unknown appointment")
        if appointment.cancelled:
            raise TokenError(TokenRefusal.REVOKED)
        if not appointment.is_open(config.clock()):
            raise TokenError(TokenRefusal.OUTSIDE_WINDOW)
    except TokenError as exc:
        await _refuse_token(hub, client.ws, client.role, client.peer, token, exc)
        return None
    client.appointment = appointment
    client.label = f"apt {appointment.id[:12]}"
    try:
        room = rooms.attach_professional(appointment.id, appointment.cabin_id, appointment.kind, client)
    except RoomError as exc:
        log.info("%s: refused a second professional from %s", client.label, client.peer)
        hub.audit(
            AuditAction.REFUSED,
            "professional",
            appointment_id=appointment.id,
            address=client.peer,
            detail="second professional on the same link",
        )
        await refuse(client.ws, exc.code, str(exc))
        return None
    log.info("%s: professional joined from %s", client.label, client.peer)
    hub.audit(
        AuditAction.JOINED,
        "professional",
        appointment_id=appointment.id,
        cabin_id=appointment.cabin_id,
        address=client.peer,
    )
    await client.send(Welcome(role=client.role, ice_servers=config.ice_servers, appointment=appointment.info()))
    await hub.publish_state(room)
    await hub.start_call_if_ready(room)
    return client


async def _admit_cabin(hub: Hub, client: Client) -> Client:
    rooms = hub.rooms
    client.label = f"cabin {client.subject[:12]}"
    previous = rooms.attach_cabin(client.subject, client)
    if previous is not None:
        log.info("%s: replaced by a new connection from %s", client.label, client.peer)
        await refuse(previous.ws, CloseCode.CONFLICT, "replaced by a newer connection of this cabin")
    log.info("%s: connected from %s", client.label, client.peer)
    hub.audit(AuditAction.CABIN_CONNECTED, "cabin", cabin_id=client.subject, address=client.peer)
    await client.send(Welcome(role=client.role, ice_servers=hub.config.ice_servers, cabin_id=client.subject))
    await client.send(hub.schedule_for(client.subject))
    for room in rooms.rooms_of_cabin(client.subject):
        await hub.publish_state(room)
        await hub.start_call_if_ready(room)
    return client


async def _serve(hub: Hub, client: Client) -> None:
    ws = client.ws
    async for msg in ws:
        if msg.type is WSMsgType.ERROR:
            log.info("%s: connection error", client.label)
            return
        if msg.type is not WSMsgType.TEXT:
            await refuse(ws, CloseCode.PROTOCOL_ERROR, "expected a text message")
            return
        if not client.bucket.take(time.monotonic()):
            log.warning("%s: too many messages from %s, closing", client.label, client.peer)
            await refuse(ws, CloseCode.RATE_LIMITED, "too many messages")
            return
        try:
            message = parse(msg.data)
        except ProtocolError as exc:
            log.info("%s: protocol error: %s", client.label, exc)
            await refuse(ws, exc.code, str(exc))
            return
        try:
            await _dispatch(hub, client, message)
        except RoomError as exc:
            if exc.code is CloseCode.FORBIDDEN:
                await refuse(ws, exc.code, str(exc))
                return
            await client.send(Error(code=exc.code, message=str(exc)))
        except _Refusal as exc:
            await refuse(ws, exc.code, str(exc))
            return


class _Refusal(Exception):
    def __init__(self, message: str, code: CloseCode = CloseCode.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


async def _dispatch(hub: Hub, client: Client, message: Message) -> None:
    rooms = hub.rooms
    if isinstance(message, Offer | Answer | Candidate | Bye):
        if client.role is Role.PROFESSIONAL and message.appointment_id != client.subject:
            raise _Refusal("not your appointment", CloseCode.FORBIDDEN)
        target = rooms.route(message.appointment_id, client.role, message.type, client)
        await target.send(message)
    elif isinstance(message, Admit) and client.role is Role.PROFESSIONAL:
        if message.appointment_id != client.subject:
            raise _Refusal("not your appointment", CloseCode.FORBIDDEN)
        room = rooms.admit(message.appointment_id, client)
        log.info("%s: citizen admitted", client.label)
        hub.audit(
            AuditAction.ADMITTED,
            "professional",
            appointment_id=room.appointment_id,
            cabin_id=room.cabin_id,
            address=client.peer,
        )
        await hub.publish_state(room)
        await hub.start_call_if_ready(room)
    elif isinstance(message, Presence) and client.role is Role.CABIN:
        appointment = hub.config.store.get_appointment(message.appointment_id)
        if appointment is None or appointment.cabin_id != client.subject:
            raise _Refusal("not your appointment", CloseCode.FORBIDDEN)
        if message.present and not appointment.is_open(hub.config.clock()):
            await client.send(Error(code=CloseCode.FORBIDDEN, message="this appointment is not open now"))
            return
        room = rooms.set_presence(appointment.id, appointment.cabin_id, appointment.kind, message.present, client)
        hub.audit(
            AuditAction.JOINED if message.present else AuditAction.LEFT,
            "citizen",
            appointment_id=appointment.id,
            cabin_id=client.subject,
            address=client.peer,
        )
        await hub.publish_state(room)
        await hub.start_call_if_ready(room)
    elif isinstance(message, HelpRequest) and client.role is Role.CABIN:
        await help_requested(hub, client, message)
    else:
        raise _Refusal(f"'{message.type}' is not expected from a {client.role.value}")


async def _leave(hub: Hub, client: Client) -> None:
    rooms = hub.rooms
    if client.role is Role.PROFESSIONAL:
        room = rooms.detach_professional(client.subject, client)
        if room is not None:
            log.info("%s: professional left", client.label)
            hub.audit(
                AuditAction.LEFT,
                "professional",
                appointment_id=room.appointment_id,
                cabin_id=room.cabin_id,
                address=client.peer,
            )
            cabin = rooms.cabin(room.cabin_id)
            if cabin is not None:
                await cabin.send(PeerLeft(appointment_id=room.appointment_id, role=Role.PROFESSIONAL))
                await cabin.send(rooms.state(room))
    else:
        rooms_left = rooms.detach_cabin(client.subject, client)
        if rooms_left or rooms.cabin(client.subject) is None:
            hub.audit(AuditAction.CABIN_DISCONNECTED, "cabin", cabin_id=client.subject, address=client.peer)
        for room in rooms_left:
            if room.professional is not None:
                await room.professional.send(PeerLeft(appointment_id=room.appointment_id, role=Role.CABIN))
                await room.professional.send(rooms.state(room))
