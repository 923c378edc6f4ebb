"""The server's live state and what to tell whom when something changes.

The Hub holds the pure cores (rooms, alert book, self-test reports, proof replay cache) and does the I/O around
them: messages to connected clients, audit rows. The WebSocket handler (signaling/ws.py) and the REST handlers
(signaling/http/) call it; it calls neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from signaling.alerts import Alert, AlertBook, AlertKind
from signaling.cabin_auth import ReplayCache
from signaling.config import ServerConfig
from signaling.connection import Client, refuse
from signaling.errors import SignalingError
from signaling.models import AuditAction, AuditEvent
from signaling.protocol import (
    Bye,
    CloseCode,
    HelpRequest,
    HelpStatus,
    IceServer,
    Incident,
    PeerJoined,
    Role,
    Schedule,
    SelftestReport,
    SelftestRequest,
)
from signaling.rooms import Room, RoomError, Rooms
from signaling.selftests import ReceivedReport, SelftestBook
from signaling.tokens import TokenError, TokenRefusal
from signaling.turn import ice_servers

log = logging.getLogger("cabine.signaling")

SCHEDULE_HORIZON = timedelta(hours=24)


class CabinNotConnected(SignalingError, LookupError):
    """The cabin has no connection to signaling now (or lost it before answering)."""


class SelftestTimeout(SignalingError, TimeoutError):
    """The cabin did not answer a self-test request in time."""


def server_time(now: datetime) -> str:
    """`now` as ISO 8601 UTC with milliseconds, e.g. 2026-11-26T08:30:00.123Z (for the cabin's clock check)."""
    return now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(eq=False, slots=True)
class _PendingSelftest:
    """One self-test request sent to a cabin; several operators asking at once wait for the same answer."""

    request_id: str
    asked: Client
    future: asyncio.Future[ReceivedReport]
    waiters: int = field(default=0)


class Hub:
    """The server's live state: rooms, cabins, alerts, self-tests, and what to tell whom when something changes."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.rooms: Rooms[Client] = Rooms()
        self.replays = ReplayCache()
        self.alerts = AlertBook()
        self.selftests = SelftestBook()
        self._pending: dict[str, _PendingSelftest] = {}  # by cabin id: at most one request in flight per cabin

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

    def ice_servers_for(self, role: Role, subject: str, until: datetime | None = None) -> tuple[IceServer, ...]:
        """The STUN/TURN servers for one participant; TURN credentials last at least until `until` (+ overtime)."""
        config = self.config
        # The name only helps reading coturn's log: a fingerprint, not an appointment id.
        name = f"{role.value}-{hashlib.sha256(subject.encode()).hexdigest()[:10]}"
        end = None if until is None else until + config.overtime
        return ice_servers(config.ice_servers, config.turn, name=name, now=config.clock(), until=end)

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
                self.config.store.set_admitted(room.appointment_id, self.config.clock())
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
                ice_servers=self.ice_servers_for(Role.CABIN, room.cabin_id, room.ends_at),
                ice_policy=self.config.ice_policy,
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

    # --- housekeeping ----------------------------------------------------------------------------------------

    async def sweep(self) -> None:
        """Forget what is over: rooms whose appointment ended (telling both ends), expired proof ids."""
        now = self.config.clock()
        for room in self.rooms.sweep(now, self.config.overtime):
            log.info("apt %s: over, room closed", room.appointment_id[:12])
            cabin = self.rooms.cabin(room.cabin_id)
            if cabin is not None:
                await cabin.send(Bye(appointment_id=room.appointment_id, reason="over"))
            if room.professional is not None:
                self.audit(
                    AuditAction.LEFT,
                    "professional",
                    appointment_id=room.appointment_id,
                    cabin_id=room.cabin_id,
                    address=room.professional.peer,
                    detail="the appointment's time is over",
                )
                await refuse(room.professional.ws, CloseCode.FORBIDDEN, str(TokenError(TokenRefusal.OUTSIDE_WINDOW)))
        self.replays.prune(now.timestamp())

    async def housekeeping(self) -> None:
        """What the periodic task does: keep connected cabins' screens current, forget what is over."""
        await self.refresh_schedules()
        await self.sweep()

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

    async def run_selftest(self, cabin_id: str) -> ReceivedReport:
        """Ask the connected cabin for a self-test and wait (config.selftest_timeout) for its report.

        Raises:
            CabinNotConnected: the cabin is not connected, or went away before answering.
            SelftestTimeout: no report in time.
        """
        cabin = self.rooms.cabin(cabin_id)
        if cabin is None:
            raise CabinNotConnected(f"cabin {cabin_id!r} is not connected")
        pending = self._pending.get(cabin_id)
        if pending is None:
            request_id = "st_" + secrets.token_hex(6)
            pending = _PendingSelftest(request_id, cabin, asyncio.get_running_loop().create_future())
            self._pending[cabin_id] = pending
            log.info("%s: self-test %s requested", cabin.label, request_id)
            await cabin.send(SelftestRequest(request_id=request_id))
        pending.waiters += 1
        timeout = self.config.selftest_timeout
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), timeout)
        except TimeoutError:
            raise SelftestTimeout(f"cabin {cabin_id!r} did not answer the self-test within {timeout:g} s") from None
        finally:
            pending.waiters -= 1
            if pending.waiters == 0 and self._pending.get(cabin_id) is pending:
                del self._pending[cabin_id]
                pending.future.cancel()

    # --- what cabins say -------------------------------------------------------------------------------------

    async def help_requested(self, client: Client, message: HelpRequest) -> None:
        """A cabin's call for help: open or repeat its alert, audit it, and tell the cabin it was received.

        A call for help is never refused: an appointment id that is not the cabin's is dropped, the alert still
        opens.
        """
        cabin_id = client.subject
        appointment_id = message.appointment_id
        detail = ""
        if appointment_id is not None:
            appointment = self.config.store.get_appointment(appointment_id)
            if appointment is None or appointment.cabin_id != cabin_id:
                detail = "named an appointment that is not this cabin's; "
                appointment_id = None
        alert, new = self.alerts.raise_alert(cabin_id, appointment_id, self.config.clock())
        log.warning("%s: CALL FOR HELP, alert %s (press %d)", client.label, alert.id, alert.presses)
        self.audit(
            AuditAction.HELP_REQUESTED,
            "citizen",
            appointment_id=appointment_id,
            cabin_id=cabin_id,
            address=client.peer,
            detail=f"{detail}alert {alert.id}" + ("" if new else f", press {alert.presses}"),
        )
        await client.send(HelpStatus(alert_id=alert.id, open=True))

    async def alert_resolved(self, alert: Alert) -> None:
        """An operator resolved `alert`: a cabin's screen stops saying that help is coming."""
        cabin = self.rooms.cabin(alert.cabin_id)
        if cabin is not None and alert.kind is AlertKind.HELP:
            await cabin.send(HelpStatus(alert_id=alert.id, open=False))

    def incident(self, client: Client, message: Incident) -> None:
        """A cabin opens or clears an incident: the operators' alert follows (one per cabin, kind and subject)."""
        cabin_id, now = client.subject, self.config.clock()
        what = message.kind.value + (f" {message.subject}" if message.subject else "")
        if message.open:
            alert, new = self.alerts.open_incident(cabin_id, message.kind, message.subject, message.detail, now)
            if alert is None:
                log.warning("%s: incident %s dropped: too many open for this cabin", client.label, what)
            elif new:
                log.warning("%s: INCIDENT %s, alert %s", client.label, what, alert.id)
                self.audit(
                    AuditAction.INCIDENT_OPENED,
                    "cabin",
                    cabin_id=cabin_id,
                    address=client.peer,
                    detail=f"{what}; alert {alert.id}",
                )
            return
        cleared = self.alerts.clear_incident(cabin_id, message.kind, message.subject, now)
        if cleared is not None:
            log.info("%s: incident %s over, alert %s closed", client.label, what, cleared.id)
            self.audit(
                AuditAction.INCIDENT_CLEARED,
                "cabin",
                cabin_id=cabin_id,
                address=client.peer,
                detail=f"{what}; alert {cleared.id}",
            )

    def selftest_reported(self, client: Client, report: SelftestReport) -> None:
        """Keep the cabin's latest self-test report; answer the operator waiting for it, if any."""
        received = ReceivedReport(cabin_id=client.subject, report=report, received_at=self.config.clock())
        self.selftests.record(received)
        failed = received.failed
        log.info(
            "%s: self-test %s: %s",
            client.label,
            report.request_id or "at start-up",
            "passed" if report.ok else "FAILED" + (f" ({', '.join(failed)})" if failed else ""),
        )
        pending = self._pending.get(client.subject)
        if pending is not None and pending.request_id == report.request_id and not pending.future.done():
            pending.future.set_result(received)

    def cabin_gone(self, client: Client) -> None:
        """A cabin's connection ended: nobody will answer the self-test it was asked for."""
        pending = self._pending.get(client.subject)
        if pending is not None and pending.asked is client and not pending.future.done():
            pending.future.set_exception(CabinNotConnected(f"cabin {client.subject!r} disconnected before answering"))

    async def close_all(self) -> None:
        for pending in list(self._pending.values()):
            self.cabin_gone(pending.asked)
        for client in self.rooms.connections():
            await client.ws.close(code=CloseCode.GOING_AWAY, message=b"server shutting down")
