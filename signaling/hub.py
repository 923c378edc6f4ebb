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
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from signaling.alerts import Alert, AlertBook, AlertKind
from signaling.async_store import AsyncStore
from signaling.bookings import AppointmentLedger, Event
from signaling.cabin_auth import ReplayCache
from signaling.cluster import Cluster
from signaling.config import ServerConfig
from signaling.connection import Client, refuse
from signaling.errors import SignalingError
from signaling.fleet import BATTERY_LOW_PERCENT, Condition, Fleet
from signaling.limits import RefusalWindow
from signaling.metrics import FleetCollector, Metrics
from signaling.models import Appointment, AuditAction, AuditEvent
from signaling.protocol import (
    AppointmentKind,
    Bye,
    CabinCheck,
    CloseCode,
    ConfigState,
    ConfigStatus,
    Configure,
    Heartbeat,
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
from signaling.webhooks import WebhookSender

log = logging.getLogger("cabine.signaling")

SCHEDULE_HORIZON = timedelta(hours=24)
# A failed self-test older than this is not told to a professional who joins (the cabin tests itself again before
# each appointment).
SELFTEST_NEWS = timedelta(hours=2)
# What a professional of each kind of appointment is told about: the medical devices matter to doctors only.
_NOT_FOR_PROFESSIONALS = ("clock",)


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
        self.fleet = Fleet(
            config.clock(), offline_after=config.offline_after, device_missing_after=config.device_missing_after
        )
        # What booking systems are told about appointments (and whether a professional is back on one).
        self.bookings = AppointmentLedger(config.clock())
        # The conditions each cabin's alerts stand for now (fleet kinds and failed self-tests); only cabins with some.
        self._conditions: dict[str, dict[Condition, str]] = {}
        self.metrics = Metrics()
        self.metrics.watch(FleetCollector(self.fleet, self.alerts, lambda: len(self.rooms), config.clock))
        # Replaced at every change the operators' dashboard shows; its live view waits on it.
        self.changed = asyncio.Event()
        self.changes = 0  # counts notify(): the dashboards' shared snapshot is rebuilt once per change
        # The latest fleet snapshot sent to dashboards: (change count, monotonic time built, its text).
        self.snapshot: tuple[int, float, str] | None = None
        # What each cabin last said of the configuration sent from afar: (version, state, reason).
        self.config_status: dict[str, ConfigStatus] = {}
        # The schedule last sent to each connected cabin, and which of its appointments were open then.
        self._schedules: dict[str, tuple[Schedule, frozenset[str]]] = {}
        # Each cabin's battery threshold set from afar (the fleet's default otherwise).
        self._battery_low: dict[str, int] = {}
        self._sends: set[asyncio.Future[None]] = set()
        self.webhooks = WebhookSender(
            config.webhooks, on_outcome=lambda outcome: self.metrics.webhooks.labels(outcome=outcome).inc()
        )
        self.live_views = 0  # dashboards open over a WebSocket (bounded by signaling/http/fleet.py)
        # The store, off the event loop: its calls run on a thread of their own.
        self.store = AsyncStore(config.store)
        self.closing = False
        # Several nodes: the cluster this node is part of (set while the app runs with --redis).
        self.cluster: Cluster | None = None
        self._refusals = RefusalWindow()

    def taking_over(self) -> None:
        """This node now runs a cluster's rooms: cabins are watched, and endings told, from now on (the previous room
        node told what came before; the cabins are on their way back)."""
        now = self.config.clock()
        self.fleet.restart(now)
        self.alerts.forget_open()
        self._conditions.clear()
        self.bookings.checked_until = now
        self.notify()

    # --- addresses that keep guessing ------------------------------------------------------------------------

    async def refused(self, address: str) -> None:
        """Count a refused attempt (a wrong link, a forged proof, a wrong enrollment code) from `address`."""
        if self.cluster is not None:
            await self.cluster.count(f"refused:{address}", 60.0)
        else:
            self._refusals.add(address, time.monotonic())

    async def turned_away(self, address: str) -> bool:
        """Whether `address` was refused too often in the last minute to be heard now."""
        if self.cluster is not None:
            count = await self.cluster.peek(f"refused:{address}")
        else:
            count = self._refusals.count(address, time.monotonic())
        return count >= self.config.refusals_per_minute

    def notify(self) -> None:
        """Something the dashboard shows changed: wake its live views."""
        self.changes += 1
        self.changed.set()
        self.changed = asyncio.Event()

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
        self.store.audit(
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
        self.notify()
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
                await self.store.set_admitted(room.appointment_id, self.config.clock())
                self.audit(AuditAction.ADMITTED, "system", appointment_id=room.appointment_id, detail="auto")
                self.citizen_admitted(room, "system")
                await self.publish_state(room)
        if not self.rooms.ready(room):
            return
        pro, cabin = room.professional, self.rooms.cabin(room.cabin_id)
        if pro is None or cabin is None:
            return
        self.metrics.sessions.labels(kind=room.kind.value).inc()
        self.bookings.call_started(room)
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

    async def _upcoming(self, now: datetime, cabin_id: str | None = None) -> list[Appointment]:
        """The appointments of the cabin's schedule (of every cabin's, without `cabin_id`), in start order."""
        return await self.store.list_appointments(
            cabin_id=cabin_id, since=now - timedelta(hours=8), until=now + SCHEDULE_HORIZON, include_cancelled=False
        )

    @staticmethod
    def _schedule(appointments: list[Appointment], now: datetime) -> tuple[Schedule, frozenset[str]]:
        """A cabin's schedule from its appointments, and which of them are open now."""
        current = [a for a in appointments if a.ends_at > now]
        opened = frozenset(a.id for a in current if a.is_open(now))
        return Schedule(appointments=tuple(a.info() for a in current)), opened

    async def send_schedule(self, cabin: Client) -> None:
        """Send a connected cabin its schedule now (it connected, or an appointment of its was added or cancelled)."""
        now = self.config.clock()
        schedule = self._schedule(await self._upcoming(now, cabin.subject), now)
        self._schedules[cabin.subject] = schedule
        await cabin.send(schedule[0])

    async def refresh_schedules(self) -> None:
        """Tell each connected cabin its schedule again if it changed, or if one of its windows opened or closed.

        One query for every cabin: with thousands connected, one per cabin every refresh kept the store busy for
        seconds, and professionals' joins waited behind it.
        """
        connected = self.rooms.cabin_ids()
        if not connected:
            return
        now = self.config.clock()
        by_cabin: dict[str, list[Appointment]] = {}
        for appointment in await self._upcoming(now):
            by_cabin.setdefault(appointment.cabin_id, []).append(appointment)
        for cabin_id in connected:
            cabin = self.rooms.cabin(cabin_id)
            schedule = self._schedule(by_cabin.get(cabin_id, []), now)
            if cabin is None or self._schedules.get(cabin_id) == schedule:
                continue
            self._schedules[cabin_id] = schedule
            await cabin.send(schedule[0])

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
        await self.check_fleet()
        ended = await self.store.list_appointments(
            since=self.bookings.checked_until, until=now, include_cancelled=False
        )
        for event in self.bookings.endings(ended, now, self._citizen_present):
            self._tell(event)

    async def check_fleet(self) -> None:
        """Raise or clear every cabin's offline alert (and the others the fleet derives) as time goes by."""
        watched = {c.id for c in await self.store.list_cabins() if c.enrolled and not c.disabled}
        changed = [
            self._reconcile(cabin_id, watched=cabin_id in watched) for cabin_id in watched | set(self._conditions)
        ]
        if any(changed):
            self.notify()

    def _reconcile(self, cabin_id: str, *, watched: bool = True, selftest: dict[Condition, str] | None = None) -> bool:
        """Make the cabin's fleet alerts (and, given `selftest`, its self-test alert) match its conditions now;
        whether an alert changed (the caller tells the dashboards).

        An alert opens when its condition appears and closes when it goes: an operator who resolved one while the
        condition held is not asked again until the condition comes back.
        """
        now = self.config.clock()
        before = self._conditions.get(cabin_id, {})
        battery_low = self._battery_low.get(cabin_id, BATTERY_LOW_PERCENT)
        wanted = self.fleet.conditions(cabin_id, now, battery_low=battery_low) if watched else {}
        kept_selftest = {k: v for k, v in before.items() if k[0] is AlertKind.SELFTEST_FAILED}
        wanted.update(kept_selftest if selftest is None else selftest)
        changed = False
        for (kind, subject), detail in wanted.items():
            if (kind, subject) in before:
                # The condition goes on: its open alert shows the latest words; one an operator resolved stays so.
                if before[(kind, subject)] != detail and self.alerts.get(cabin_id, kind, subject) is not None:
                    self.alerts.open_condition(cabin_id, kind, subject, detail, now, repeat=False)
                    changed = True
                continue
            alert, new = self.alerts.open_condition(cabin_id, kind, subject, detail, now, repeat=False)
            changed = True
            if alert is not None and new:
                log.warning("cabin %s: ALERT %s %s: %s", cabin_id[:12], kind.value, subject, detail)
                self.audit(
                    AuditAction.INCIDENT_OPENED, "signaling", cabin_id=cabin_id, detail=f"{kind.value}: {detail}"
                )
                self.on_alert(alert)
        for kind, subject in before.keys() - wanted.keys():
            cleared = self.alerts.clear_condition(cabin_id, kind, subject, now, "signaling")
            changed = True
            if cleared is not None:
                log.info("cabin %s: alert %s %s over", cabin_id[:12], kind.value, subject)
                self.audit(AuditAction.INCIDENT_CLEARED, "signaling", cabin_id=cabin_id, detail=kind.value)
                self.on_alert(cleared)
        if wanted:
            self._conditions[cabin_id] = wanted
        else:
            self._conditions.pop(cabin_id, None)
        return changed

    def on_alert(self, alert: Alert) -> None:
        """An alert opened or closed: the booking systems' webhooks are told (no health data in an alert)."""
        self.webhooks.send(
            "alert.opened" if alert.open else "alert.closed",
            {
                "alert_id": alert.id,
                "cabin_id": alert.cabin_id,
                "kind": alert.kind.value,
                "subject": alert.subject,
                "detail": alert.detail,
                "appointment_id": alert.appointment_id,
            },
            self.config.clock(),
        )

    def _tell(self, event: Event | None) -> None:
        """Send an appointment event to the booking systems (nothing if there is none)."""
        if event is not None:
            self.webhooks.send(event[0], event[1], self.config.clock())

    def _citizen_present(self, appointment_id: str) -> bool:
        room = self.rooms.room(appointment_id)
        return room is not None and room.citizen_present

    def call_ended(self, room: Room[Client], reason: str) -> None:
        """The call of this room is over (the professional's bye): told once."""
        self._tell(self.bookings.call_ended(room, reason))

    def citizen_admitted(self, room: Room[Client], by: str) -> None:
        self._tell(self.bookings.citizen_admitted(room, by))

    async def housekeeping(self) -> None:
        """What the periodic task does: keep connected cabins' screens current, forget what is over."""
        await self.refresh_schedules()
        await self.sweep()

    # --- operator actions ------------------------------------------------------------------------------------

    async def appointment_cancelled(self, appointment_id: str) -> None:
        """End an ongoing call and turn away its professional: a cancelled appointment's link is revoked."""
        self.notify()
        appointment = await self.store.get_appointment(appointment_id)
        if appointment is not None:
            self._tell(self.bookings.cancelled(appointment))
        room = self.rooms.end(appointment_id)
        if room is None:
            return
        reason = str(TokenError(TokenRefusal.REVOKED))
        cabin = self.rooms.cabin(room.cabin_id)
        if cabin is not None:
            await cabin.send(Bye(appointment_id=appointment_id, reason="cancelled"))
            await self.send_schedule(cabin)
        if room.professional is not None:
            log.info("%s: cancelled, closing the professional's connection", room.professional.label)
            await refuse(room.professional.ws, CloseCode.FORBIDDEN, reason)

    async def cabin_disabled(self, cabin_id: str) -> None:
        """The operator disabled the cabin or replaced its key: its current connection must not go on."""
        cabin = self.rooms.cabin(cabin_id)
        if cabin is not None:
            await refuse(cabin.ws, CloseCode.FORBIDDEN, "closed by the operator: cabin disabled or its key replaced")

    async def appointment_created(self, appointment_id: str) -> None:
        self.notify()
        appointment = await self.store.get_appointment(appointment_id)
        cabin = None if appointment is None else self.rooms.cabin(appointment.cabin_id)
        if appointment is not None and cabin is not None:
            await self.send_schedule(cabin)

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
            appointment = await self.store.get_appointment(appointment_id)
            if appointment is None or appointment.cabin_id != cabin_id:
                detail = "named an appointment that is not this cabin's; "
                appointment_id = None
        alert, new = self.alerts.raise_alert(cabin_id, appointment_id, self.config.clock())
        self.notify()
        if new:
            self.on_alert(alert)
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
        self.notify()
        self.on_alert(alert)
        cabin = self.rooms.cabin(alert.cabin_id)
        if cabin is not None and alert.kind is AlertKind.HELP:
            await cabin.send(HelpStatus(alert_id=alert.id, open=False))

    def incident(self, client: Client, message: Incident) -> None:
        """A cabin opens or clears an incident: the operators' alert follows (one per cabin, kind and subject)."""
        cabin_id, now = client.subject, self.config.clock()
        what = message.kind.value + (f" {message.subject}" if message.subject else "")
        self.notify()
        if message.open:
            alert, new = self.alerts.open_incident(cabin_id, message.kind, message.subject, message.detail, now)
            if alert is None:
                log.warning("%s: incident %s dropped: too many open for this cabin", client.label, what)
            elif new:
                self.on_alert(alert)
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
            self.on_alert(cleared)
            log.info("%s: incident %s over, alert %s closed", client.label, what, cleared.id)
            self.audit(
                AuditAction.INCIDENT_CLEARED,
                "cabin",
                cabin_id=cabin_id,
                address=client.peer,
                detail=f"{what}; alert {cleared.id}",
            )

    def professional_joined(self, appointment: Appointment) -> None:
        """Count the join; a professional back on the same appointment is a reconnection."""
        self.metrics.joins.labels(role="professional").inc()
        again, event = self.bookings.professional_joined(appointment)
        if again:
            self.metrics.reconnections.labels(role="professional").inc()
        self._tell(event)
        self.notify()

    async def config_json(self, cabin_id: str) -> dict[str, object]:
        """The cabin's configuration set from afar as the dashboard shows it: latest version, what the cabin runs
        (its heartbeat says), and what it did with the latest (applied, pending until the call ends, refused)."""
        versions = await self.store.cabin_settings(cabin_id)
        latest = versions[0] if versions else None
        heartbeat = self.fleet.latest(cabin_id)
        said = self.config_status.get(cabin_id)
        if latest is None:
            state, reason = "none", None
        elif said is None or said.version != latest.version:
            state, reason = "pending", None
        else:
            state, reason = said.state.value, said.reason or None
        running = "" if heartbeat is None else heartbeat.heartbeat.config_version
        return {
            "version": None if latest is None else latest.version,
            "running": running,
            # The version set from afar the cabin runs (None: its own file, or not known yet).
            "running_version": int(running[1:]) if running[:1] == "v" and running[1:].isdigit() else None,
            "status": state,
            "refusal": reason if state == "refused" else None,
        }

    async def send_config(self, cabin_id: str) -> None:
        """Send the connected cabin its latest configuration set from afar (if any)."""
        cabin = self.rooms.cabin(cabin_id)
        versions = await self.store.cabin_settings(cabin_id)
        if versions:
            thresholds = versions[0].settings.get("thresholds", {})
            self._battery_low[cabin_id] = int(thresholds.get("battery_low", BATTERY_LOW_PERCENT))
        if cabin is not None and versions:
            await cabin.send(Configure(version=versions[0].version, settings=versions[0].settings))
            self._reconcile(cabin_id)  # its battery threshold may have changed
        self.notify()

    def config_reported(self, client: Client, status: ConfigStatus) -> None:
        """The cabin applied, deferred or refused a configuration: keep it for the dashboard, audit it."""
        previous = self.config_status.get(client.subject)
        self.config_status[client.subject] = status
        if previous == status:
            return
        action = {
            ConfigState.APPLIED: AuditAction.CONFIG_APPLIED,
            ConfigState.REFUSED: AuditAction.CONFIG_REFUSED,
        }.get(status.state)
        level = logging.WARNING if status.state is ConfigState.REFUSED else logging.INFO
        log.log(level, "%s: configuration v%d %s %s", client.label, status.version, status.state.value, status.reason)
        if action is not None:
            self.audit(action, "cabin", cabin_id=client.subject, detail=f"v{status.version} {status.reason}".strip())
        self.notify()

    @staticmethod
    def cabin_check(appointment_id: str, kind: AppointmentKind, received: ReceivedReport) -> CabinCheck:
        """What the professional of this appointment is told about the cabin's latest self-test."""
        failed = [
            name
            for name in received.failed
            if name not in _NOT_FOR_PROFESSIONALS
            and (kind is AppointmentKind.MEDICAL or not name.startswith("device:"))
        ]
        return CabinCheck(appointment_id=appointment_id, failed=tuple(failed))

    async def tell_cabin_check(self, client: Client, appointment: Appointment) -> None:
        """A professional joins: if the cabin's latest self-test (recent) found a part failing, say which."""
        received = self.selftests.latest(appointment.cabin_id)
        if received is None or received.report.ok or self.config.clock() - received.received_at > SELFTEST_NEWS:
            return
        check = self.cabin_check(appointment.id, appointment.kind, received)
        if check.failed:
            await client.send(check)

    def _spawn_send(self, client: Client, message: CabinCheck) -> None:
        task = asyncio.ensure_future(client.send(message))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def cabin_connected(self, client: Client) -> None:
        seen_before = self.fleet.life(client.subject) is not None
        self.fleet.connected(client.subject, self.config.clock())
        self.metrics.joins.labels(role="cabin").inc()
        if seen_before:
            self.metrics.reconnections.labels(role="cabin").inc()
        self._reconcile(client.subject)
        self.notify()

    def cabin_disconnected(self, cabin_id: str) -> None:
        """The cabin's last connection ended (a replaced connection does not count)."""
        self._schedules.pop(cabin_id, None)
        self.fleet.disconnected(cabin_id, self.config.clock())
        self._reconcile(cabin_id)
        self.notify()

    def heartbeat(self, client: Client, heartbeat: Heartbeat) -> None:
        """Keep the cabin's heartbeat; its battery and clock conditions follow."""
        self.fleet.record(client.subject, heartbeat, self.config.clock())
        self.metrics.heartbeats.inc()
        self._reconcile(client.subject)
        self.notify()

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
        failure: dict[Condition, str] = {}
        if not report.ok:
            failure[(AlertKind.SELFTEST_FAILED, "")] = received.summary()
        self._reconcile(client.subject, selftest=failure)
        self.notify()
        for room in self.rooms.rooms_of_cabin(client.subject):
            if room.professional is not None:
                self._spawn_send(room.professional, self.cabin_check(room.appointment_id, room.kind, received))
        pending = self._pending.get(client.subject)
        if pending is not None and pending.request_id == report.request_id and not pending.future.done():
            pending.future.set_result(received)

    def cabin_gone(self, client: Client) -> None:
        """A cabin's connection ended: nobody will answer the self-test it was asked for."""
        pending = self._pending.get(client.subject)
        if pending is not None and pending.asked is client and not pending.future.done():
            pending.future.set_exception(CabinNotConnected(f"cabin {client.subject!r} disconnected before answering"))

    async def close_all(self) -> None:
        self.closing = True
        await self.drop_all(CloseCode.GOING_AWAY, "server shutting down")

    async def drop_all(self, code: CloseCode, reason: str) -> None:
        """Close every connection (shutting down, or another node now runs the rooms: clients connect again)."""
        for pending in list(self._pending.values()):
            self.cabin_gone(pending.asked)
        for client in self.rooms.connections():
            await client.ws.close(code=code, message=reason.encode())
