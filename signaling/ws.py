"""The WebSocket endpoints: authenticate with the first message, run the waiting room, relay within one room.

The live state and what to tell whom is the Hub's (signaling/hub.py); this module reads messages and dispatches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import WSMsgType, web

from signaling.cabin_auth import TooManyProofs, claimed_cabin, verify_cabin_proof
from signaling.cluster import Cluster
from signaling.connection import Client, Socket, refuse
from signaling.hub import Hub, server_time
from signaling.keys import CONFIG, HUB
from signaling.models import Appointment, AuditAction
from signaling.protocol import (
    Admit,
    Answer,
    Bye,
    CallProblem,
    Candidate,
    CloseCode,
    ConfigStatus,
    Error,
    Heartbeat,
    Hello,
    HelpRequest,
    Incident,
    Message,
    Offer,
    PeerLeft,
    Ping,
    Pong,
    Presence,
    ProtocolError,
    Restart,
    Role,
    SelftestReport,
    Welcome,
    parse,
)
from signaling.ratelimit import TokenBucket
from signaling.rooms import RoomError, Slot
from signaling.tokens import TokenError, TokenRefusal, fingerprint, peek_role

log = logging.getLogger("cabine.signaling")

# Refusals that are guesses, not honest mistakes (an expired or cancelled link is not counted).
_GUESSES = frozenset(
    (TokenRefusal.MALFORMED, TokenRefusal.BAD_SIGNATURE, TokenRefusal.UNKNOWN_CABIN, TokenRefusal.REPLAYED)
)


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
    cluster = hub.cluster
    if cluster is not None and not cluster.is_room_node:
        await _carry(hub, cluster, ws, role, peer)
    else:
        await serve_socket(hub, ws, role, peer)
    return ws


async def serve_socket(hub: Hub, ws: Socket, role: Role, peer: str) -> None:
    """Authenticate and serve one client, connected here or carried by another node (a RemoteSocket)."""
    client: Client | None = None
    try:
        if await hub.turned_away(peer):
            log.warning("turned away a %s from %s: too many refusals in the last minute", role.value, peer)
            await refuse(ws, CloseCode.RATE_LIMITED, "too many refused attempts from this address; wait a minute")
            return
        client = await _authenticate(hub, ws, role, peer)
        if client is not None:
            await _serve(hub, client)
    finally:
        if client is not None:
            await _leave(hub, client)
        if not ws.closed:
            await ws.close()


async def _carry(hub: Hub, cluster: Cluster, ws: web.WebSocketResponse, role: Role, peer: str) -> None:
    """This node is a door: carry the client to the room node, both ways, until either end closes."""
    link = cluster.open_door(role.value, peer)
    if link is None:
        await refuse(ws, CloseCode.TRY_AGAIN_LATER, "no signaling node runs the rooms yet; connect again")
        return
    config = hub.config
    bucket = TokenBucket(config.rate_burst, config.rate_per_second)

    async def from_client() -> None:
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    if not bucket.take(time.monotonic()):
                        log.warning("door: too many messages from %s, closing", peer)
                        link.lost(CloseCode.RATE_LIMITED, "too many messages")
                        return
                    cluster.send(link, {"text": msg.data})
                elif msg.type is WSMsgType.BINARY:
                    cluster.send(link, {"binary": True})
                else:
                    return
        finally:
            link.outgoing.put_nowait(("gone", None))

    reader = asyncio.create_task(from_client(), name="door-reader")
    try:
        while True:
            kind, value = await link.outgoing.get()
            if kind == "text":
                with contextlib.suppress(ConnectionError):
                    await ws.send_str(value)
            elif kind == "close":
                code, reason = value
                await ws.close(code=code, message=reason.encode()[:123])
                break
            else:
                break
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        cluster.close_door(link)
        if not ws.closed:
            await ws.close()


async def _hello(hub: Hub, ws: Socket) -> Hello | None:
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


async def _refuse_token(hub: Hub, ws: Socket, role: Role, peer: str, token: str, exc: TokenError) -> None:
    code = CloseCode.UNAUTHORIZED if exc.status == 401 else CloseCode.FORBIDDEN
    log.info("refused %s from %s: %s (token %s)", role, peer, exc.reason, fingerprint(token))
    if exc.reason in _GUESSES:
        await hub.refused(peer)
    hub.audit(AuditAction.REFUSED, role.value, address=peer, detail=exc.reason.value)
    hub.metrics.refusals.labels(role=role.value, reason=exc.reason.value).inc()
    await refuse(ws, code, str(exc))


async def _authenticate(hub: Hub, ws: Socket, role: Role, peer: str) -> Client | None:
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
            claimed_id = claimed_cabin(hello.token)
            known = None if claimed_id is None else await hub.store.get_cabin(claimed_id)
            found = {known.id: known} if known is not None else {}
            subject = verify_cabin_proof(hello.token, lookup=found.get, now=now, replays=hub.replays).id
    except TokenError as exc:
        await _refuse_token(hub, ws, role, peer, hello.token, exc)
        return None
    except TooManyProofs as exc:
        log.warning("refused a cabin from %s: %s", peer, exc)
        hub.audit(AuditAction.REFUSED, role.value, address=peer, detail="too many live proofs")
        hub.metrics.refusals.labels(role=role.value, reason="too-many-proofs").inc()
        await refuse(ws, CloseCode.RATE_LIMITED, str(exc))
        return None
    client = Client(
        ws=ws, role=role, subject=subject, peer=peer, bucket=TokenBucket(config.rate_burst, config.rate_per_second)
    )
    if role is Role.PROFESSIONAL:
        return await _admit_professional(hub, client, hello.token)
    return await _admit_cabin(hub, client)


async def _admit_professional(hub: Hub, client: Client, token: str) -> Client | None:
    config, rooms = hub.config, hub.rooms
    appointment = await hub.store.get_appointment(client.subject)
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
        room = rooms.attach_professional(await _slot(hub, appointment), client)
    except RoomError as exc:
        log.info("%s: refused a second professional from %s", client.label, client.peer)
        hub.audit(
            AuditAction.REFUSED,
            "professional",
            appointment_id=appointment.id,
            address=client.peer,
            detail="second professional on the same link",
        )
        hub.metrics.refusals.labels(role="professional", reason="second-professional").inc()
        await refuse(client.ws, exc.code, str(exc))
        return None
    log.info("%s: professional joined from %s", client.label, client.peer)
    hub.professional_joined(appointment)
    hub.audit(
        AuditAction.JOINED,
        "professional",
        appointment_id=appointment.id,
        cabin_id=appointment.cabin_id,
        address=client.peer,
    )
    await client.send(
        Welcome(
            role=client.role,
            ice_servers=hub.ice_servers_for(client.role, appointment.id, appointment.ends_at),
            appointment=appointment.info(),
            ice_policy=config.ice_policy,
        )
    )
    await hub.tell_cabin_check(client, appointment)
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
    hub.cabin_connected(client)
    welcome = Welcome(
        role=client.role,
        ice_servers=hub.ice_servers_for(client.role, client.subject),
        cabin_id=client.subject,
        server_time=server_time(hub.config.clock()),
        ice_policy=hub.config.ice_policy,
    )
    await client.send(welcome)
    await hub.send_schedule(client)
    await hub.send_config(client.subject)
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


async def _slot(hub: Hub, appointment: Appointment) -> Slot:
    """What the room needs of its appointment; in a cluster, with whether the citizen checked in on a previous room
    node (the cabin says it again when it reconnects, but the professional may be back first)."""
    present = False
    if hub.cluster is not None and hub.rooms.room(appointment.id) is None:
        present = await hub.cluster.recall_presence(appointment.id)
    return Slot(
        appointment.id,
        appointment.cabin_id,
        appointment.kind,
        appointment.ends_at,
        appointment.admitted_at is not None,
        citizen_present=present,
    )


async def _dispatch(hub: Hub, client: Client, message: Message) -> None:
    rooms = hub.rooms
    if isinstance(message, Ping):
        await client.send(Pong(id=message.id))
    elif isinstance(message, Offer | Answer | Candidate | Bye | CallProblem | Restart):
        if client.role is Role.PROFESSIONAL and message.appointment_id != client.subject:
            raise _Refusal("not your appointment", CloseCode.FORBIDDEN)
        target = rooms.route(message.appointment_id, client.role, message.type, client)
        await target.send(message)
        if isinstance(message, Bye) and client.role is Role.PROFESSIONAL:
            # The professional ended the consultation (a cabin's bye is an error, and the call may start again).
            room = rooms.room(message.appointment_id)
            if room is not None:
                hub.call_ended(room, "ended by the professional")
        hub.metrics.relayed.labels(type=message.type).inc()
        if isinstance(message, Restart):
            hub.metrics.restarts.inc()
    elif isinstance(message, Admit) and client.role is Role.PROFESSIONAL:
        if message.appointment_id != client.subject:
            raise _Refusal("not your appointment", CloseCode.FORBIDDEN)
        room = rooms.admit(message.appointment_id, client)
        await hub.store.set_admitted(room.appointment_id, hub.config.clock())
        log.info("%s: citizen admitted", client.label)
        hub.citizen_admitted(room, "professional")
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
        appointment = await hub.store.get_appointment(message.appointment_id)
        if appointment is None or appointment.cabin_id != client.subject:
            raise _Refusal("not your appointment", CloseCode.FORBIDDEN)
        if message.present and not appointment.is_open(hub.config.clock()):
            await client.send(Error(code=CloseCode.FORBIDDEN, message="this appointment is not open now"))
            return
        room = rooms.set_presence(await _slot(hub, appointment), message.present, client)
        if hub.cluster is not None:
            until = appointment.ends_at + hub.config.overtime
            await hub.cluster.remember_presence(appointment.id, message.present, until)
        # Every admission is written to the store, so the appointment just read says whether there is one to end.
        if not message.present and appointment.admitted_at is not None:
            # The next person in the cabin must be admitted anew, even after a restart of signaling.
            await hub.store.set_admitted(appointment.id, None)
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
        await hub.help_requested(client, message)
    elif isinstance(message, SelftestReport) and client.role is Role.CABIN:
        hub.selftest_reported(client, message)
    elif isinstance(message, Incident) and client.role is Role.CABIN:
        hub.incident(client, message)
    elif isinstance(message, Heartbeat) and client.role is Role.CABIN:
        hub.heartbeat(client, message)
    elif isinstance(message, ConfigStatus) and client.role is Role.CABIN:
        hub.config_reported(client, message)
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
        hub.cabin_gone(client)
        rooms_left = rooms.detach_cabin(client.subject, client)
        if rooms_left or rooms.cabin(client.subject) is None:
            hub.audit(AuditAction.CABIN_DISCONNECTED, "cabin", cabin_id=client.subject, address=client.peer)
        if rooms.cabin(client.subject) is None:
            hub.cabin_disconnected(client.subject)
        for room in rooms_left:
            if room.professional is not None:
                await room.professional.send(PeerLeft(appointment_id=room.appointment_id, role=Role.CABIN))
                await room.professional.send(rooms.state(room))
