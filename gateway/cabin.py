"""The cabin gateway: keeps the signaling connection, runs one call per admitted professional, routes readings."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from gateway.config import CabinConfig
from gateway.devices.readings import Reading
from gateway.ice import host_addresses
from gateway.lifecycle import AsyncResource, cancel_and_wait
from gateway.media.sources import MediaSources
from gateway.session import CallSession, CallStats, SessionError
from gateway.signaling_client import SignalingClient, SignalingRefused, SignalingUnavailable
from gateway.vitals import VitalsOutbox
from signaling.protocol import (
    Answer,
    AppointmentInfo,
    AppointmentKind,
    Bye,
    Candidate,
    Error,
    HelpRequest,
    HelpStatus,
    Message,
    Offer,
    PeerJoined,
    PeerLeft,
    Presence,
    Role,
    RoomState,
    Schedule,
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


class DeviceStateSource(Protocol):
    """Where device states come from (the bleak device manager)."""

    def state_changes(self) -> AsyncIterator[DeviceStateLike]: ...


class ReadingSource(Protocol):
    """Where decoded readings come from: the bleak device manager, or an emulator."""

    def readings(self) -> AsyncIterator[Reading]: ...


MeasurementHandler = Callable[[str], Awaitable[None]]
EARLY_CHECKIN = timedelta(minutes=15)
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
        readings: ReadingSource | None = None,
        on_measurement_request: MeasurementHandler | None = None,
        vitals_grace: float = 300.0,
        trigger: MeasurementHandler | None = None,
        self_view: bool = False,
        device_states: DeviceStateSource | None = None,
    ) -> None:
        self.config = config
        self.label = f"cabin {config.cabin_id[:12]}"
        self._readings = readings
        self._device_states = device_states
        # Latest state of each medical device (connected, battery): no health data, shown to the doctor.
        self.devices: dict[str, dict[str, object]] = {}
        self._on_request = on_measurement_request
        # Asks a device to measure (the demo's emulated devices); real devices are used by the citizen instead.
        self._trigger = trigger
        # A cabin screen shows the citizen their own image: the camera is then shared through a relay.
        self._self_view = self_view
        self._vitals_grace = vitals_grace
        self._client: SignalingClient | None = None
        self.sessions: dict[str, CallSession] = {}
        self._outboxes: dict[str, VitalsOutbox] = {}
        self._forget: dict[str, asyncio.TimerHandle] = {}
        self.finished_calls: list[CallStats] = []
        # Kinds of measurement the professional asked for, in order (no values: these are requests only).
        self.measurement_requests: list[str] = []
        self.readings_discarded = 0
        self.connected = asyncio.Event()
        self.session_started = asyncio.Event()
        self.refused: str | None = None
        self.schedule: tuple[AppointmentInfo, ...] = ()
        self.room_states: dict[str, RoomState] = {}
        self.checked_in: set[str] = set()
        # For the cabin screen, memory only, dropped with the appointment's readings: the open measurement request,
        # the latest reading sent in each appointment, how each call ended for good, and a call for help.
        self.prompt: MeasurementPrompt | None = None
        self.latest_reading: dict[str, Reading] = {}
        self.ended: dict[str, str] = {}
        self.help: HelpCall | None = None
        self._help_sent_at = -HELP_REPEAT_SECONDS
        # Set on every change of schedule, room state or call; the kiosk screen waits on it.
        self.changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stack = ExitStack()
        self._closed = False

    async def __aenter__(self) -> CabinGateway:
        self._stack.enter_context(host_addresses(self.config.ice_addresses, add_loopback=True))
        self._tasks.append(asyncio.create_task(self._signaling_loop(), name="cabin-signaling"))
        if self._readings is not None:
            self._tasks.append(asyncio.create_task(self._readings_loop(self._readings), name="cabin-readings"))
        if self._device_states is not None:
            self._tasks.append(asyncio.create_task(self._devices_loop(self._device_states), name="cabin-devices"))
        return self

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await cancel_and_wait(self._tasks)
        for appointment_id in list(self.sessions):
            await self._end_session(appointment_id)
        for handle in self._forget.values():
            handle.cancel()
        for outbox in self._outboxes.values():
            outbox.clear()
        self._outboxes.clear()
        if self._client is not None:
            await self._client.close()
        self._stack.close()

    # --- signaling -------------------------------------------------------------------------------------------

    async def _signaling_loop(self) -> None:
        delay = 0.5
        while True:
            try:
                async with SignalingClient(self.config) as client:
                    self._client = client
                    self.connected.set()
                    self._notify()
                    delay = 0.5
                    log.info("%s: connected to signaling", self.label)
                    for appointment_id in sorted(self.checked_in):
                        await self._send(Presence(appointment_id=appointment_id, present=True))
                    if self.help is not None:
                        # Signaling may have restarted (alerts are in its memory): ask again; an open alert is kept.
                        await self._send(HelpRequest(appointment_id=self.help.appointment_id))
                    async for message in client.messages():
                        await self._handle(message)
            except SignalingRefused as exc:
                # A refused credential will not become valid by retrying quickly; retry slowly, loudly.
                self.refused = str(exc)
                log.error("%s: %s", self.label, exc)
                delay = self.config.reconnect_max_delay
            except SignalingUnavailable as exc:
                log.warning("%s: %s; retrying in %.1f s", self.label, exc, delay)
            finally:
                self._client = None
                if self.connected.is_set():
                    self.connected.clear()
                    self._notify()
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, self.config.reconnect_max_delay)

    async def _send(self, message: Message) -> None:
        if self._client is None:
            log.info("%s: signaling down, %s not sent", self.label, message.type)
            return
        try:
            await self._client.send(message)
        except SignalingUnavailable as exc:
            log.info("%s: %s", self.label, exc)

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
        if appointment_id in self.sessions:
            await self._send(Bye(appointment_id=appointment_id, reason="citizen left"))
        await self._end_session(appointment_id)
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
            if self.config.auto_checkin:
                for info in self.open_appointments():
                    if info.id not in self.checked_in:
                        await self.check_in(info.id)
            self._notify()
        elif isinstance(message, RoomState):
            self.room_states[message.appointment_id] = message
            self._notify()
        elif isinstance(message, PeerJoined) and message.role is Role.PROFESSIONAL:
            await self._start_session(message)
        elif isinstance(message, Answer):
            session = self.sessions.get(message.appointment_id)
            if session is None:
                return
            try:
                await session.accept_answer(message.sdp)
            except SessionError as exc:
                log.warning("%s: %s", session.label, exc)
                await self._end_session(message.appointment_id)
                await self._send(Bye(appointment_id=message.appointment_id, reason="answer refused"))
        elif isinstance(message, Candidate):
            session = self.sessions.get(message.appointment_id)
            if session is not None:
                try:
                    await session.add_candidate(message.candidate, message.sdp_mid, message.sdp_mline_index)
                except SessionError as exc:
                    log.info("%s: %s", session.label, exc)
        elif isinstance(message, PeerLeft) and message.role is Role.PROFESSIONAL:
            await self._end_session(message.appointment_id)
            self._schedule_forget(message.appointment_id)
        elif isinstance(message, Bye):
            self.ended[message.appointment_id] = "cancelled" if message.reason == "cancelled" else "professional"
            await self._end_session(message.appointment_id)
            self._forget_vitals(message.appointment_id)
            if message.reason == "cancelled":
                self.checked_in.discard(message.appointment_id)
            self._notify()
        elif isinstance(message, HelpStatus):
            self._help_status(message)
        elif isinstance(message, Error):
            log.warning("%s: signaling says: %s (%s)", self.label, message.message, message.code)

    # --- calls -----------------------------------------------------------------------------------------------

    async def _start_session(self, joined: PeerJoined) -> None:
        appointment_id = joined.appointment_id
        await self._end_session(appointment_id)
        handle = self._forget.pop(appointment_id, None)
        if handle is not None:
            handle.cancel()
        self.ended.pop(appointment_id, None)
        outbox = None
        if joined.kind is AppointmentKind.MEDICAL:
            outbox = self._outboxes.setdefault(appointment_id, VitalsOutbox())
        sources = MediaSources(
            self.config.video, self.config.audio, self.config.video_format, stamp=self.config.stamp_video
        )
        await sources.__aenter__()
        session = CallSession(
            appointment_id,
            joined.kind,
            joined.ice_servers,
            sources,
            outbox=outbox,
            on_measurement_request=self._measurement_requested,
            self_view=self._self_view,
            video_codec=self.config.video_codec,
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
        log.info("%s: offering a %s call", session.label, joined.kind)
        await self._send(Offer(appointment_id=appointment_id, sdp=sdp))
        self.session_started.set()
        self._notify()

    async def _end_session(self, appointment_id: str) -> None:
        session = self.sessions.pop(appointment_id, None)
        if self.prompt is not None and self.prompt.appointment_id == appointment_id:
            self.prompt = None  # the professional is gone: they will ask again if they come back
        if session is not None:
            await session.close()
            self.finished_calls.append(session.stats)
            log.info("%s: call ended", session.label)
            self._notify()

    def _schedule_forget(self, appointment_id: str) -> None:
        if appointment_id not in self._outboxes:
            return
        loop = asyncio.get_running_loop()
        self._forget[appointment_id] = loop.call_later(self._vitals_grace, self._forget_vitals, appointment_id)

    def _forget_vitals(self, appointment_id: str) -> None:
        """Drop the appointment's unacknowledged readings: nothing about the citizen stays on the PC."""
        handle = self._forget.pop(appointment_id, None)
        if handle is not None:
            handle.cancel()
        outbox = self._outboxes.pop(appointment_id, None)
        if outbox is not None:
            outbox.clear()
        self.latest_reading.pop(appointment_id, None)
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

    def medical_session(self) -> CallSession | None:
        for session in self.sessions.values():
            if session.kind is AppointmentKind.MEDICAL:
                return session
        return None

    async def _devices_loop(self, source: DeviceStateSource) -> None:
        async for state in source.state_changes():
            wire: dict[str, object] = {
                "address": state.address,
                "name": state.name,
                "connected": state.connected,
                "battery": state.battery_percent,
            }
            self.devices[state.address] = wire
            session = self.medical_session()
            if session is not None:
                session.push_device_state(wire)

    async def _readings_loop(self, source: ReadingSource) -> None:
        async for reading in source.readings():
            session = self.medical_session()
            if session is None:
                # No medical call: the reading goes nowhere and is not kept.
                self.readings_discarded += 1
                continue
            session.push_reading(reading)
            self.latest_reading[session.appointment_id] = reading
            prompt = self.prompt
            if prompt is not None and prompt.appointment_id == session.appointment_id and prompt.kind == reading.kind:
                self.prompt = None
            self._notify()
