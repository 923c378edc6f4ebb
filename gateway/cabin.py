"""The cabin gateway: keeps the signaling connection, runs one call per admitted professional, routes readings."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from gateway.backoff import Backoff
from gateway.config import CabinConfig, config_digest
from gateway.devices.readings import Reading
from gateway.documents.channel import DocumentsChannel
from gateway.documents.desk import DocumentDesk
from gateway.documents.held import HeldDocuments
from gateway.documents.photo import PhotoError
from gateway.documents.printer import CupsPrinter, Printed, Printer
from gateway.documents.scanner import SaneScanner, Scanner
from gateway.errors import ConfigError
from gateway.heartbeat import PERIOD as HEARTBEAT_PERIOD
from gateway.heartbeat import HeartbeatLoop
from gateway.ice import host_addresses
from gateway.journal import JournalError, ReadingJournal, journal_path
from gateway.lifecycle import AsyncResource, cancel_and_wait
from gateway.link import (
    RESTART_GRACE,
    RETRY,
    SIGNALING_PROBE_TIMEOUT,
    WATCH_INTERVAL,
    CallLink,
    Verdict,
    judge,
    silent,
)
from gateway.media.sources import MediaSources
from gateway.remote_config import RemoteSettings, parse_remote
from gateway.selftest.ice import probe_url
from gateway.session import CallSession, CallStats, SessionError, VideoRejected
from gateway.signaling_client import SignalingClient, SignalingRefused, SignalingUnavailable
from gateway.vitals import VitalsOutbox
from signaling.protocol import (
    Answer,
    AppointmentInfo,
    AppointmentKind,
    Bye,
    CallProblem,
    Candidate,
    ConfigState,
    ConfigStatus,
    Configure,
    Error,
    Heartbeat,
    HelpRequest,
    HelpStatus,
    IcePolicy,
    Incident,
    IncidentKind,
    Message,
    Offer,
    PeerJoined,
    PeerLeft,
    Presence,
    Problem,
    Restart,
    Role,
    RoomState,
    Schedule,
    SelftestReport,
    SelftestRequest,
    Welcome,
)

log = logging.getLogger("cabine.gateway")


class DeviceStateLike(Protocol):
    @property
    def address(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def connected(self) -> bool: ...
    @property
    def battery_percent(self) -> int | None: ...


MeasurementHandler = Callable[[str], Awaitable[None]]
SelftestHandler = Callable[[str | None], Awaitable[SelftestReport]]
EARLY_CHECKIN = timedelta(minutes=15)
# Signaling is retried for ever: quickly at first, then every ten seconds or so (jitter spreads a whole fleet).
SIGNALING_RETRY = Backoff(initial=0.5, factor=2.0, maximum=10.0, jitter=0.2)
# What the cabin remembers about past calls and requests, for status and tests: bounded, never health data.
HISTORY = 100
MAX_DEVICES = 64
# Presses of "call for help" closer than this are one call: signaling's rate limit must never cut the cabin off.
HELP_REPEAT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class MeasurementPrompt:
    """The professional asked for a measurement; the cabin screen guides the citizen until the reading arrives."""

    appointment_id: str
    kind: str
    asked_at: datetime


@dataclass(frozen=True, slots=True)
class HelpCall:
    """The citizen called for help: `alert_id` is None until signaling has accepted it (an operator is alerted)."""

    requested_at: datetime
    appointment_id: str | None
    alert_id: str | None = None


class CabinGateway(AsyncResource):
    """An async context manager that runs the cabin until closed; close() is idempotent."""

    def __init__(
        self,
        config: CabinConfig,
        *,
        on_measurement_request: MeasurementHandler | None = None,
        vitals_grace: float = 300.0,
        trigger: MeasurementHandler | None = None,
        self_view: bool = False,
        selftest: SelftestHandler | None = None,
        heartbeat_period: float = HEARTBEAT_PERIOD,
        printer: Printer | None = None,
        scanner: Scanner | None = None,
    ) -> None:
        """`printer` and `scanner`: the configuration's CUPS queue and SANE device unless given (the demo's)."""
        self.config = config
        # What heartbeats name the configuration by (remote configuration numbers its versions; a file has a digest).
        self.config_version = config_digest(config)
        self.label = f"cabin {config.cabin_id[:12]}"
        # Latest state of each medical device (connected, battery): no health data, shown to the doctor.
        self.devices: dict[str, dict[str, object]] = {}
        # When each device's last reading arrived (the cabin's clock), for the heartbeat: the time, never the value.
        self.last_reading_at: dict[str, datetime] = {}
        self._on_request = on_measurement_request
        # Asks a device to measure (the demo's emulated devices); real devices are used by the citizen instead.
        self._trigger = trigger
        # A cabin screen shows the citizen their own image: the camera is then shared through a relay.
        self._self_view = self_view
        self._selftest = selftest
        self._vitals_grace = vitals_grace
        self._client: SignalingClient | None = None
        self.welcome: Welcome | None = None
        self.sessions: dict[str, CallSession] = {}
        # The admitted appointments whose call the cabin keeps up, each with its supervising task.
        self.links: dict[str, CallLink] = {}
        self._supervisors: dict[str, asyncio.Task[None]] = {}
        self._kicks: dict[str, asyncio.Event] = {}
        self._outboxes: dict[str, VitalsOutbox] = {}
        # Readings waiting for the doctor's acknowledgement, on the runtime directory's tmpfs (None: memory only).
        self._journal: ReadingJournal | None = None
        self._forget: dict[str, asyncio.TimerHandle] = {}
        self.finished_calls: collections.deque[CallStats] = collections.deque(maxlen=HISTORY)
        # Kinds of measurement the professional asked for, in order (no values: these are requests only).
        self.measurement_requests: collections.deque[str] = collections.deque(maxlen=HISTORY)
        self.readings_discarded = 0
        # Messages from signaling that could not be handled (logged, refused, and the loop went on).
        self.messages_failed = 0
        self.connected = asyncio.Event()
        self.session_started = asyncio.Event()
        self.refused: str | None = None
        self.schedule: tuple[AppointmentInfo, ...] = ()
        self.room_states: dict[str, RoomState] = {}
        self.checked_in: set[str] = set()
        # Open incidents (camera unavailable, a device missing...), re-sent after every reconnection.
        self.incidents: dict[tuple[IncidentKind, str], Incident] = {}
        self.last_selftest: SelftestReport | None = None
        # For the cabin screen, memory only, dropped with the appointment's readings: the open measurement request,
        # the latest reading sent in each appointment, how each call ended for good, and a call for help.
        self.prompt: MeasurementPrompt | None = None
        self.latest_reading: dict[str, Reading] = {}
        # The documents of each appointment, both ways, in memory only, wiped with the appointment.
        if printer is None and config.printer_queue is not None:
            printer = CupsPrinter(config.printer_queue)
        if scanner is None and config.scanner_device is not None:
            scanner = SaneScanner(config.scanner_device)
        self.desk = DocumentDesk(
            printer=printer,
            scanner=scanner,
            channel_of=self._documents_channel,
            photo_of=self._take_photo,
            notify=self._notify,
            label=self.label,
        )
        self.ended: dict[str, str] = {}
        self.help: HelpCall | None = None
        self._help_sent_at = -HELP_REPEAT_SECONDS
        # Set on every change of schedule, room state or call; the kiosk screen waits on it.
        self.changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._stack = ExitStack()
        self._closed = False
        self.heartbeats = HeartbeatLoop(self, period=heartbeat_period)
        # A configuration from afar that waits for the call in progress to end; and who applies the parts of it
        # that are not the calls' (the cabin screen's languages, the device allowlist).
        self.pending_config: RemoteSettings | None = None
        self.config_status: ConfigStatus | None = None
        self.on_config: Callable[[RemoteSettings], Awaitable[None]] | None = None

    async def __aenter__(self) -> CabinGateway:
        self._stack.enter_context(host_addresses(self.config.ice_addresses, add_loopback=True))
        self._open_journal()
        self._tasks.append(asyncio.create_task(self._signaling_loop(), name="cabin-signaling"))
        self.heartbeats.start()
        return self

    async def close(self) -> None:
        """End every call, release the camera and microphone, forget the readings; safe twice, even after a failure.

        Each step runs even if an earlier one failed: a device must never stay held by a cabin that stopped.
        """
        if self._closed:
            return
        self._closed = True
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("stopping the heartbeat", self.heartbeats.stop),
            (
                "stopping the loops",
                lambda: cancel_and_wait([*self._tasks, *self._side_tasks, *self._supervisors.values()]),
            ),
        ]
        steps += [(f"ending call {a[:12]}", functools.partial(self._end_session, a)) for a in list(self.sessions)]
        self.links.clear()
        if self._client is not None:
            steps.append(("closing signaling", self._client.close))
        for what, step in steps:
            try:
                await step()
            except Exception:
                log.exception("%s: %s failed during shutdown; going on", self.label, what)
        for handle in self._forget.values():
            handle.cancel()
        if self._journal is None:
            for outbox in self._outboxes.values():
                outbox.clear()
        else:
            # Journaled readings stay for the next start (a restart must lose none); the next start wipes those of
            # appointments that are over, and systemd removes the runtime directory when the service is stopped.
            self._journal.close()
        self._outboxes.clear()
        self.latest_reading.clear()
        self.desk.clear()
        self._stack.close()

    # --- signaling -------------------------------------------------------------------------------------------

    async def _signaling_loop(self) -> None:
        """Connect, serve, and reconnect with backoff and jitter, for as long as the cabin runs."""
        failures = 0
        while True:
            try:
                async with SignalingClient(self.config) as client:
                    self._client = client
                    self.welcome = client.welcome
                    self.refused = None
                    self.connected.set()
                    self._notify()
                    failures = 0
                    log.info("%s: connected to signaling", self.label)
                    await self._after_connect()
                    async for message in client.messages():
                        await self._handle_safely(message)
            except SignalingRefused as exc:
                # A refused credential will not become valid by retrying quickly; retry slowly, loudly.
                self.refused = str(exc)
                log.error("%s: %s", self.label, exc)
                failures = max(failures, 99)
            except SignalingUnavailable as exc:
                log.warning("%s: %s", self.label, exc)
            except Exception:
                # A bug must not leave the cabin offline until someone drives to the town hall: log it, go on.
                log.exception("%s: unexpected error in the signaling loop", self.label)
            finally:
                self._client = None
                if self.connected.is_set():
                    self.connected.clear()
                    self._notify()
            delay = SIGNALING_RETRY.jittered(failures)
            failures += 1
            log.info("%s: reconnecting to signaling in %.1f s", self.label, delay)
            await asyncio.sleep(delay)

    async def _after_connect(self) -> None:
        """Tell a (possibly restarted) signaling server what it must know: presence, help, open incidents."""
        for appointment_id in sorted(self.checked_in):
            await self._send(Presence(appointment_id=appointment_id, present=True))
        if self.help is not None:
            # Signaling may have restarted (alerts are in its memory): ask again; an open alert is kept.
            await self._send(HelpRequest(appointment_id=self.help.appointment_id))
        for incident in list(self.incidents.values()):
            await self._send(incident)
        if self.last_selftest is not None:
            await self._send(self.last_selftest)

    async def _handle_safely(self, message: Message) -> None:
        """Handle one message; a failure is logged and that message refused, and the loop goes on."""
        try:
            await self._handle(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.messages_failed += 1
            log.exception("%s: could not handle a %r message from signaling", self.label, message.type)
            appointment_id = getattr(message, "appointment_id", None)
            if isinstance(message, Offer | Answer | Candidate | PeerJoined) and isinstance(appointment_id, str):
                # The call cannot go on from a half-handled negotiation: end it cleanly; the professional retries.
                try:
                    await self._end_session(appointment_id)
                finally:
                    await self._send(Bye(appointment_id=appointment_id, reason=f"cabin error: {type(exc).__name__}"))

    @property
    def signaling(self) -> SignalingClient | None:
        """The current signaling connection (None while disconnected): its welcome and round trip."""
        return self._client

    async def _send(self, message: Message) -> None:
        if self._client is None:
            log.info("%s: signaling down, %s not sent", self.label, message.type)
            return
        try:
            await self._client.send(message)
        except SignalingUnavailable as exc:
            log.info("%s: %s", self.label, exc)

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        """A short task of the cabin's (a self-test, a hook): kept, and cancelled on close."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def report_incident(self, kind: IncidentKind, open_: bool, *, subject: str = "", detail: str = "") -> None:
        """Open or clear an incident for the operator; open ones are re-sent after each reconnection."""
        key = (kind, subject)
        if open_:
            incident = Incident(kind=kind, open=True, subject=subject, detail=detail[:500])
            if self.incidents.get(key) == incident:
                return
            self.incidents[key] = incident
        elif self.incidents.pop(key, None) is None:
            return
        else:
            incident = Incident(kind=kind, open=False, subject=subject)
        self._notify()
        self._spawn(self._send(incident), f"incident-{kind}")

    async def _configure(self, message: Configure) -> None:
        """Check a configuration from afar; apply it now, or when the call in progress ends; or refuse it."""
        if self.config_status is not None and self.config_status.version == message.version:
            await self._send(self.config_status)  # sent again after a reconnection: already handled
            return
        try:
            remote = parse_remote(message.version, message.settings, self.config)
        except ConfigError as exc:
            log.warning("%s: configuration v%d refused: %s", self.label, message.version, exc)
            await self._config_said(ConfigStatus(message.version, ConfigState.REFUSED, str(exc)[:500]))
            return
        if self.sessions or self.links:
            self.pending_config = remote
            log.info("%s: configuration v%d applies when the call ends", self.label, message.version)
            await self._config_said(ConfigStatus(message.version, ConfigState.PENDING))
            return
        await self._apply_config(remote)

    async def _apply_config(self, remote: RemoteSettings) -> None:
        self.pending_config = None
        try:
            if self.on_config is not None:
                await self.on_config(remote)
        except Exception as exc:
            log.exception("%s: configuration v%d could not be applied", self.label, remote.version)
            await self._config_said(ConfigStatus(remote.version, ConfigState.REFUSED, f"not applied: {exc}"[:500]))
            return
        self.config = remote.applied_to(self.config)
        self.config_version = f"v{remote.version}"
        log.info("%s: configuration v%d applied", self.label, remote.version)
        await self._config_said(ConfigStatus(remote.version, ConfigState.APPLIED))

    async def _config_said(self, status: ConfigStatus) -> None:
        self.config_status = status
        self._notify()
        await self._send(status)

    @property
    def documents(self) -> dict[str, HeldDocuments]:
        """The documents of each appointment (the desk's), for the cabin screen."""
        return self.desk.held

    async def print_document(self, appointment_id: str, document_id: str) -> Printed:
        """Print a document the professional sent (the citizen pressed "Imprimer"): see DocumentDesk."""
        return await self.desk.print_document(appointment_id, document_id)

    def _documents_channel(self, appointment_id: str) -> DocumentsChannel | None:
        session = self.sessions.get(appointment_id)
        return None if session is None else session.documents

    async def _take_photo(self, appointment_id: str) -> bytes:
        session = self.sessions.get(appointment_id)
        if session is None:
            raise PhotoError("no call in progress")
        return await session.take_photo()

    async def send_heartbeat(self, heartbeat: Heartbeat) -> None:
        await self._send(heartbeat)

    def media_present(self, kind: str) -> bool:
        """Whether the camera ("video") or microphone ("audio") is there: its device exists and no call found it
        gone (what a call captures, the heartbeat tells apart)."""
        spec = self.config.video if kind == "video" else self.config.audio
        incident = IncidentKind.CAMERA_UNAVAILABLE if kind == "video" else IncidentKind.MICROPHONE_UNAVAILABLE
        if (incident, "") in self.incidents:
            return False
        try:
            spec.check_available()
        except ConfigError:
            return False
        return True

    def _media_health(self, kind: str, available: bool, reason: str) -> None:
        incident = IncidentKind.CAMERA_UNAVAILABLE if kind == "video" else IncidentKind.MICROPHONE_UNAVAILABLE
        self.report_incident(incident, not available, detail=reason)

    async def publish_selftest(self, report: SelftestReport) -> None:
        """Keep the latest self-test and send it to signaling (now, or after the next reconnection)."""
        self.last_selftest = report
        await self._send(report)

    async def _run_selftest(self, request_id: str) -> None:
        if self._selftest is None:
            log.warning("%s: self-test asked for, but this cabin has none", self.label)
            return
        report = await self._selftest(request_id)
        await self.publish_selftest(report)

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def check_in(self, appointment_id: str) -> None:
        """The citizen is in the cabin for this appointment: the professional can admit them."""
        self.checked_in.add(appointment_id)
        self.ended.pop(appointment_id, None)
        await self._send(Presence(appointment_id=appointment_id, present=True))
        self._notify()

    async def check_out(self, appointment_id: str) -> None:
        """The citizen left: end any call and forget everything about the appointment's readings."""
        self.checked_in.discard(appointment_id)
        self.ended.setdefault(appointment_id, "citizen")
        if appointment_id in self.sessions or appointment_id in self.links:
            await self._send(Bye(appointment_id=appointment_id, reason="citizen left"))
        await self._end_link(appointment_id)
        self._forget_vitals(appointment_id)
        await self._send(Presence(appointment_id=appointment_id, present=False))
        self._notify()

    async def request_help(self, appointment_id: str | None) -> bool:
        """The citizen calls for help; returns whether the request could be sent to signaling now.

        It is sent again on every reconnection until an operator resolves the alert.
        """
        current = self.help
        self.help = HelpCall(
            requested_at=datetime.now(UTC),
            appointment_id=appointment_id,
            alert_id=None if current is None else current.alert_id,
        )
        log.warning("%s: the citizen calls for help", self.label)
        sent = self._client is not None
        now = time.monotonic()
        if now - self._help_sent_at >= HELP_REPEAT_SECONDS:
            self._help_sent_at = now
            await self._send(HelpRequest(appointment_id=appointment_id))
        self._notify()
        return sent

    def open_appointments(self, now: datetime | None = None) -> list[AppointmentInfo]:
        """Appointments whose window is open now (15 minutes before the start to the end)."""
        now = now or datetime.now(UTC)
        return [
            a
            for a in self.schedule
            if datetime.fromisoformat(a.starts_at) - EARLY_CHECKIN <= now < datetime.fromisoformat(a.ends_at)
        ]

    async def _handle(self, message: Message) -> None:
        if isinstance(message, Schedule):
            self.schedule = message.appointments
            known = {a.id for a in message.appointments}
            for appointment_id in list(self.checked_in):
                if appointment_id not in known:
                    self.checked_in.discard(appointment_id)
            for appointment_id in list(self.ended):
                if appointment_id not in known:
                    del self.ended[appointment_id]
            for appointment_id in list(self.room_states):
                if appointment_id not in known:
                    del self.room_states[appointment_id]
            for appointment_id in list(self._outboxes):
                if appointment_id not in known and appointment_id not in self.links:
                    # Over (or cancelled) while no call runs for it: its readings go (journal included).
                    self._forget_vitals(appointment_id)
            if self.config.auto_checkin:
                for info in self.open_appointments():
                    if info.id not in self.checked_in:
                        await self.check_in(info.id)
            self._notify()
        elif isinstance(message, RoomState):
            self.room_states[message.appointment_id] = message
            self._notify()
        elif isinstance(message, PeerJoined) and message.role is Role.PROFESSIONAL:
            self._professional_here(message)
        elif isinstance(message, Restart):
            self._restart_requested(message.appointment_id)
        elif isinstance(message, Answer):
            await self._answer(message)
        elif isinstance(message, Candidate):
            session = self.sessions.get(message.appointment_id)
            if session is not None:
                try:
                    await session.add_candidate(message.candidate, message.sdp_mid, message.sdp_mline_index)
                except SessionError as exc:
                    log.info("%s: %s", session.label, exc)
        elif isinstance(message, PeerLeft) and message.role is Role.PROFESSIONAL:
            # Their signaling connection went; the call itself may still flow (a blip): the watch decides.
            link = self.links.get(message.appointment_id)
            if link is not None:
                link.professional_present = False
            self._schedule_forget(message.appointment_id)
            self._notify()
        elif isinstance(message, Bye):
            self.ended[message.appointment_id] = "cancelled" if message.reason == "cancelled" else "professional"
            await self._end_link(message.appointment_id)
            self._forget_vitals(message.appointment_id)
            if message.reason in ("cancelled", "over"):
                # Cancelled, or its time is over (signaling forgot the room): nobody can come back to it.
                self.checked_in.discard(message.appointment_id)
            self._notify()
        elif isinstance(message, CallProblem):
            log.warning("%s: the professional's side reports %s: %s", self.label, message.problem, message.detail)
        elif isinstance(message, HelpStatus):
            self._help_status(message)
        elif isinstance(message, Configure):
            await self._configure(message)
        elif isinstance(message, SelftestRequest):
            self._spawn(self._run_selftest(message.request_id), "cabin-selftest")
        elif isinstance(message, Error):
            log.warning("%s: signaling says: %s (%s)", self.label, message.message, message.code)

    # --- calls -----------------------------------------------------------------------------------------------

    def _professional_here(self, joined: PeerJoined) -> None:
        """The professional is (again) in the room: keep a call up with them, or make sure the one we have works."""
        appointment_id = joined.appointment_id
        handle = self._forget.pop(appointment_id, None)
        if handle is not None:
            handle.cancel()
        self.ended.pop(appointment_id, None)
        relay = joined.ice_policy is IcePolicy.RELAY or self.config.relay_only
        policy = IcePolicy.RELAY if relay else IcePolicy.ALL
        link = self.links.get(appointment_id)
        if link is None:
            link = CallLink(appointment_id, joined.kind, joined.ice_servers, policy)
            self.links[appointment_id] = link
            self._kicks[appointment_id] = asyncio.Event()
            task = asyncio.create_task(self._supervise(link), name=f"call-{appointment_id[:12]}")
            self._supervisors[appointment_id] = task
        else:
            # Fresh credentials for the next attempt; a call whose media flow is left alone (a signaling blip).
            link.ice_servers, link.ice_policy, link.kind = joined.ice_servers, policy, joined.kind
            link.professional_present = True
            if not self._alive(self.sessions.get(appointment_id)):
                self._kicks[appointment_id].set()
        if joined.kind is AppointmentKind.MEDICAL:
            self._outbox(appointment_id)
        self._notify()

    def _restart_requested(self, appointment_id: str) -> None:
        """The professional's page has no working connection (it was reloaded, or its path died): offer again."""
        link, session = self.links.get(appointment_id), self.sessions.get(appointment_id)
        if link is None:
            return
        if session is not None and time.monotonic() - session.started_at < RESTART_GRACE:
            return  # our own new offer is on its way: it answers this request
        log.info("%s: the professional asks for a new connection", session.label if session else self.label)
        self._kicks[appointment_id].set()

    @staticmethod
    def _alive(session: CallSession | None) -> bool:
        if session is None or session.ended.is_set() or not session.connected.is_set():
            return False
        return not silent(time.monotonic(), session.last_inbound)

    async def _answer(self, message: Answer) -> None:
        session, link = self.sessions.get(message.appointment_id), self.links.get(message.appointment_id)
        if session is None or link is None:
            return
        if session.answered:
            # An answer to an earlier offer, crossing our newer one: the current attempt goes on.
            log.info("%s: ignored an answer to an earlier offer", session.label)
            return
        try:
            await session.accept_answer(message.sdp)
        except VideoRejected as exc:
            # Sound without picture is better than a black screen: offer again without video; the professional's
            # page says why there is no picture and what to do.
            log.warning("%s: %s; offering the call again without video", session.label, exc)
            link.video = False
            self._kicks[message.appointment_id].set()
        except SessionError as exc:
            # Not a reason to end the appointment: the answer may cross a restart (a gateway that came back, a page
            # that reloaded). This attempt ends; the supervisor offers again after its backoff.
            log.warning("%s: %s; offering again", session.label, exc)
            await session.close()

    async def _supervise(self, link: CallLink) -> None:
        """Keep the appointment's call up: offer, watch, and offer again whenever the path dies, until the end."""
        kick = self._kicks[link.appointment_id]
        while True:
            try:
                await self._until_ready(link, kick)
                kick.clear()
                verdict = await self._attempt(link, kick)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug in one attempt must not end the appointment's call for good: log it, try again.
                log.exception("%s: a call attempt failed unexpectedly", self.label)
                verdict = Verdict.TIMEOUT
            await self._end_session(link.appointment_id)
            if verdict is Verdict.CONNECTED:  # kicked while connected: the next attempt starts at once
                continue
            if kick.is_set():
                continue
            link.failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(kick.wait(), RETRY.jittered(link.failures - 1))

    async def _until_ready(self, link: CallLink, kick: asyncio.Event) -> None:
        """Wait until an offer can reach the professional: signaling is up and they are in the room."""
        while self._client is None or not link.professional_present:
            changed = self.changed
            waits = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(kick.wait())]
            try:
                # Bounded all the same: a missed notification only delays, never stops, the call's return.
                await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await cancel_and_wait(waits)

    async def _attempt(self, link: CallLink, kick: asyncio.Event) -> Verdict:
        """One peer connection: offer it, then watch it until it dies, times out, or a restart is asked for."""
        session = await self._open_session(link)
        if session is None:
            return Verdict.TIMEOUT
        was_connected = False
        while True:
            try:
                await asyncio.wait_for(kick.wait(), WATCH_INTERVAL)
                return Verdict.CONNECTED if was_connected else Verdict.TIMEOUT
            except TimeoutError:
                pass
            now = time.monotonic()
            verdict = judge(
                now=now,
                started_at=session.started_at,
                connected=session.connected.is_set(),
                failed=session.ended.is_set(),
                last_inbound=session.last_inbound,
                was_connected=was_connected,
            )
            if verdict is Verdict.CONNECTED:
                was_connected = True
                self._connected(link, session)
            elif verdict is Verdict.DEAD:
                log.warning(
                    "%s: nothing from the professional for %.1f s: reconnecting",
                    session.label,
                    now - session.last_inbound,
                )
                self._notify()
                self._spawn(self._probe_signaling(), "signaling-probe")
                return verdict
            elif verdict is Verdict.TIMEOUT:
                log.info("%s: not connected within %.0f s; trying again", session.label, now - session.started_at)
                return verdict

    def _connected(self, link: CallLink, session: CallSession) -> None:
        link.failures = 0
        if link.problem is not None:
            link.problem = None
            self.report_incident(IncidentKind.TURN_REFUSED, False)
        # How the call travels (direct or relayed, UDP or TCP): no health data, and what an operator asks first.
        log.info("%s: connected through %s", session.label, session.selected_path() or "an unknown path")
        self._notify()

    async def _open_session(self, link: CallLink) -> CallSession | None:
        """Make a peer connection and send its offer; None when it cannot work (no relay where one is needed)."""
        appointment_id = link.appointment_id
        link.attempts += 1
        outbox = self._outbox(appointment_id) if link.kind is AppointmentKind.MEDICAL else None
        sources = MediaSources(
            self.config.video,
            self.config.audio,
            self.config.video_format,
            stamp=self.config.stamp_video,
            on_health=self._media_health,
        )
        await sources.__aenter__()
        session = CallSession(
            appointment_id,
            link.kind,
            link.ice_servers,
            sources,
            outbox=outbox,
            on_measurement_request=self._measurement_requested,
            self_view=self._self_view,
            video_codec=self.config.video_codec,
            video=link.video,
            ice_policy=link.ice_policy,
            adapt_video=self.config.adapt_video,
            on_screen_share=lambda sharing: self._notify(),
            on_document=functools.partial(self.desk.received, appointment_id),
            on_document_control=functools.partial(self.desk.control, appointment_id),
            sound=self.config.sound,
        )
        self.sessions[appointment_id] = session
        if outbox is not None:
            for state in self.devices.values():
                session.push_device_state(state)
        try:
            sdp = await session.create_offer()
        except Exception:
            await self._end_session(appointment_id)
            raise
        if link.ice_policy is IcePolicy.RELAY and "relay" not in session.local_candidate_types():
            # No relay candidate: the TURN server refused us or cannot be reached; an offer could never connect.
            await self._relay_problem(link, session.label)
            return None
        log.info("%s: offering a %s call (attempt %d)", session.label, link.kind, link.attempts)
        await self._send(Offer(appointment_id=appointment_id, sdp=sdp))
        self.session_started.set()
        self._notify()
        return session

    async def _relay_problem(self, link: CallLink, label: str) -> None:
        """Find out why TURN gave no relay, tell the professional and the operator in plain words."""
        turn = next(
            ((url, s) for s in link.ice_servers for url in s.urls if url.startswith("turn") and s.username),
            None,
        )
        if turn is None:
            problem, detail = Problem.TURN_UNREACHABLE, "relay-only, but no TURN server with credentials"
        else:
            url, server = turn
            result = await probe_url(url, server.username, server.credential, timeout=3.0)
            refused = "refused the credentials" in result.detail
            problem = Problem.TURN_REFUSED if refused else Problem.TURN_UNREACHABLE
            detail = f"{url}: {result.detail}"
        log.error("%s: no TURN relay (%s): %s", label, problem, detail)
        if link.problem != problem:
            link.problem = problem
            self._notify()
            if problem is Problem.TURN_REFUSED:
                self.report_incident(IncidentKind.TURN_REFUSED, True, detail=detail)
            await self._send(CallProblem(appointment_id=link.appointment_id, problem=problem, detail=detail))

    async def _probe_signaling(self) -> None:
        """Media died: if signaling is dead too (the cabin's whole link went), reconnect it now, not in 15 s."""
        client = self._client
        if client is None:
            return
        try:
            await client.probe(SIGNALING_PROBE_TIMEOUT)
        except SignalingUnavailable as exc:
            log.info("%s: %s", self.label, exc)

    def _outbox(self, appointment_id: str) -> VitalsOutbox:
        outbox = self._outboxes.get(appointment_id)
        if outbox is None:
            outbox = self._outboxes[appointment_id] = self._new_outbox(appointment_id)
        return outbox

    def _new_outbox(self, appointment_id: str) -> VitalsOutbox:
        if self._journal is not None:
            try:
                return VitalsOutbox(self._journal, appointment_id)
            except JournalError as exc:
                log.error("%s: apt %s: readings kept in memory only: %s", self.label, appointment_id[:12], exc)
        return VitalsOutbox()

    def _open_journal(self) -> None:
        """Open the readings journal; readings of a call cut by a restart are replayed when the doctor is back."""
        if self.config.runtime_dir is None:
            return
        try:
            self._journal = ReadingJournal.open(journal_path(self.config.runtime_dir), reset_if_corrupt=True)
        except JournalError as exc:
            log.error("%s: readings kept in memory only: %s", self.label, exc)
            return
        for appointment_id in self._journal.appointments():
            self._outboxes[appointment_id] = self._new_outbox(appointment_id)
            log.info("%s: apt %s: readings journaled before a restart are kept", self.label, appointment_id[:12])

    async def _end_link(self, appointment_id: str) -> None:
        """Stop keeping this appointment's call up, and end the call; its documents are forgotten."""
        self.links.pop(appointment_id, None)
        if self.desk.forget(appointment_id):
            self._notify()
        self._kicks.pop(appointment_id, None)
        task = self._supervisors.pop(appointment_id, None)
        if task is not None and task is not asyncio.current_task():
            await cancel_and_wait([task])
        await self._end_session(appointment_id)

    async def _end_session(self, appointment_id: str) -> None:
        session = self.sessions.pop(appointment_id, None)
        if (
            self.prompt is not None
            and self.prompt.appointment_id == appointment_id
            and appointment_id not in self.links
        ):
            self.prompt = None  # the professional is gone: they will ask again if they come back
        if session is not None:
            await session.close()
            self.finished_calls.append(session.stats)
            log.info("%s: call ended", session.label)
            self._notify()
        if self.pending_config is not None and not self.sessions and not self.links and not self._closed:
            await self._apply_config(self.pending_config)

    def _schedule_forget(self, appointment_id: str) -> None:
        if appointment_id not in self._outboxes:
            return
        loop = asyncio.get_running_loop()
        self._forget[appointment_id] = loop.call_later(self._vitals_grace, self._forget_vitals, appointment_id)

    def _forget_vitals(self, appointment_id: str) -> None:
        """Drop the appointment's unacknowledged readings: nothing about the citizen stays on the PC."""
        if appointment_id in self.links and not self.links[appointment_id].professional_present:
            # The professional never came back: stop trying to reach them.
            self._spawn(self._end_link(appointment_id), "end-call")
        handle = self._forget.pop(appointment_id, None)
        if handle is not None:
            handle.cancel()
        outbox = self._outboxes.pop(appointment_id, None)
        if outbox is not None:
            outbox.clear()
        self.latest_reading.pop(appointment_id, None)
        self.desk.forget(appointment_id)
        if self.prompt is not None and self.prompt.appointment_id == appointment_id:
            self.prompt = None

    async def _measurement_requested(self, kind: str) -> None:
        self.measurement_requests.append(kind)
        session = self.medical_session()
        if session is not None:
            self.prompt = MeasurementPrompt(session.appointment_id, kind, datetime.now(UTC))
        self._notify()
        for hook in (self._on_request, self._trigger):
            if hook is None:
                continue
            try:
                await hook(kind)
            except Exception:
                log.exception("%s: the measurement request hook failed", self.label)

    def _help_status(self, status: HelpStatus) -> None:
        current = self.help
        if status.open:
            if current is None:
                # Accepted after a restart of the gateway's memory, or asked from elsewhere: show it all the same.
                current = HelpCall(requested_at=datetime.now(UTC), appointment_id=None)
            self.help = replace(current, alert_id=status.alert_id)
            log.info("%s: help request accepted (alert %s)", self.label, status.alert_id)
        elif current is not None and current.alert_id in (status.alert_id, None):
            self.help = None
            log.info("%s: help request resolved (alert %s)", self.label, status.alert_id)
        self._notify()

    def pending_readings(self, appointment_id: str) -> int:
        """Readings of this appointment still held in memory (0 once the appointment is over)."""
        outbox = self._outboxes.get(appointment_id)
        return 0 if outbox is None else outbox.pending + len(outbox.history)

    def medical_link(self) -> CallLink | None:
        """The medical appointment whose call the cabin keeps up now, if any (readings go to it)."""
        return next((link for link in self.links.values() if link.kind is AppointmentKind.MEDICAL), None)

    def medical_session(self) -> CallSession | None:
        link = self.medical_link()
        return None if link is None else self.sessions.get(link.appointment_id)

    def device_state(self, state: DeviceStateLike) -> None:
        """A medical device's state changed (seen, connected, battery): tell the doctor if a medical call runs."""
        if state.address not in self.devices and len(self.devices) >= MAX_DEVICES:
            return
        wire: dict[str, object] = {
            "address": state.address,
            "name": state.name,
            "connected": state.connected,
            "battery": state.battery_percent,
        }
        seen = getattr(state, "seen", None)
        if isinstance(seen, bool):
            wire["seen"] = seen
        changed = self.devices.get(state.address) != wire
        self.devices[state.address] = wire
        if changed:
            self._notify()
        session = self.medical_session()
        if session is not None:
            session.push_device_state(wire)

    def deliver_reading(self, reading: Reading) -> None:
        """A reading from a device: to the medical call if one is kept up (even while it reconnects: it waits in
        the outbox), else nowhere (it is not kept)."""
        address = reading.device.address
        if address in self.last_reading_at or len(self.last_reading_at) < MAX_DEVICES:
            self.last_reading_at[address] = datetime.now(UTC)
        link = self.medical_link()
        if link is None:
            self.readings_discarded += 1
            return
        appointment_id = link.appointment_id
        session = self.sessions.get(appointment_id)
        outbox = self._outbox(appointment_id)
        if session is not None:
            session.push_reading(reading)  # into the same outbox, and sent at once if the channel is open
        else:
            outbox.add(reading)
        # Its number only, never its value.
        log.info(
            "apt %s: reading %d kept until the doctor's page acknowledges it", appointment_id[:12], outbox.last_seq
        )
        self.latest_reading[appointment_id] = reading
        prompt = self.prompt
        if prompt is not None and prompt.appointment_id == appointment_id and prompt.kind == reading.kind:
            self.prompt = None
        self._notify()
