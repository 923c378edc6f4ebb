"""The cabin's composition root: configuration in, a running cabin out.

`Cabin` builds everything a cabin has, from its configuration: the call machinery and the signaling connection
(`CabinGateway`, which opens the camera and microphone for each call), the Bluetooth medical devices (`DeviceService`
over bleak, with the cabin's allowlist), the cabin screen (`KioskServer` on loopback), and the self-test at start-up
and on request. `cabine gateway` runs it on a cabin PC; `cabine demo` runs the very same root, with emulated parts
swapped in where the demonstration machine lacks the real ones (an emulated BlueZ for the devices, payloads straight
to the decoders, a hook that makes an emulated device measure).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from gateway.allocator import trim_periodically
from gateway.cabin import CabinGateway, MeasurementHandler
from gateway.config import CabinConfig, ScreenSettings
from gateway.devices.readings import Reading
from gateway.devices.service import DeviceService
from gateway.documents.printer import Printer
from gateway.documents.scanner import Scanner
from gateway.kiosk import KioskServer
from gateway.lifecycle import AsyncResource, cancel_and_wait
from gateway.remote_config import RemoteSettings
from signaling.protocol import IncidentKind, SelftestReport

log = logging.getLogger("cabine.gateway")

# The self-test at start-up waits this long for signaling (its checks include signaling and the ICE servers).
STARTUP_SELFTEST_WAIT = 20.0
# The self-test runs by itself this long before each appointment: time for the operator to act on a failure.
SELFTEST_LEAD = timedelta(minutes=10)
# How often the schedule is looked at for an appointment coming up (also at each change of schedule).
SCHEDULE_LOOK = 30.0

SelftestRunner = Callable[["Cabin", str | None], Awaitable[SelftestReport]]
NO_SCREEN = ScreenSettings(port=0)


class ReadingSource(Protocol):
    """Readings that come from somewhere else than the cabin's Bluetooth (the demo's direct payloads, a benchmark)."""

    def readings(self) -> AsyncIterator[Reading]: ...


class Cabin(AsyncResource):
    """A whole cabin, started from its configuration; an async context manager whose close() is safe twice.

    Args:
        config: the resolved configuration (settings and key).
        screen: the cabin screen's port (0: none) and languages.
        readings: readings from outside the Bluetooth path (demo, benchmarks); the allowlist's devices are used too.
        on_measurement_request: awaited with the kind the professional asks for (the demo's emulated devices).
        selftest: runs the self-test (at start-up and when signaling asks); None: the cabin has none.
        screen_socket: the cabin screen's listening socket, bound beforehand (so nothing changed if it failed).
        printer, scanner: instead of the configuration's CUPS queue and SANE device (the demo's test ones).
    """

    def __init__(
        self,
        config: CabinConfig,
        *,
        screen: ScreenSettings = NO_SCREEN,
        readings: ReadingSource | None = None,
        on_measurement_request: MeasurementHandler | None = None,
        selftest: SelftestRunner | None = None,
        selftest_at_start: bool = True,
        selftest_lead: timedelta = SELFTEST_LEAD,
        screen_socket: socket.socket | None = None,
        printer: Printer | None = None,
        scanner: Scanner | None = None,
    ) -> None:
        self._screen = screen
        self._readings = readings
        self._selftest = selftest
        self._selftest_at_start = selftest_at_start and selftest is not None
        self._selftest_lead = selftest_lead
        # Appointments whose self-test ran already (bounded: the schedule holds a day at most).
        self.tested_before: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._screen_socket = screen_socket
        self.gateway = CabinGateway(
            config,
            trigger=on_measurement_request,
            self_view=screen.port != 0,
            selftest=self.run_selftest if selftest is not None else None,
            printer=printer,
            scanner=scanner,
        )
        self.gateway.on_config = self._apply_config
        self.devices: DeviceService | None = None
        self.kiosk: KioskServer | None = None
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    async def __aenter__(self) -> Cabin:
        """Start the screen first (its port is the one thing that can fail), then devices and signaling.

        Raises:
            OSError: the cabin screen's port cannot be bound.
        """
        try:
            if self._screen.port:
                self.kiosk = await self._stack.enter_async_context(
                    KioskServer(
                        self.gateway,
                        port=self._screen.port,
                        languages=self._screen.languages,
                        sock=self._screen_socket,
                    )
                )
            await self._stack.enter_async_context(self.gateway)
            if self.config.devices:
                self.devices = await self._stack.enter_async_context(
                    DeviceService(
                        self.config.devices,
                        self.gateway,
                        adapter=self.config.bluetooth_adapter,
                        cabin_id=self.config.cabin_id,
                        on_health=self._bluetooth_health,
                    )
                )
            if self._readings is not None:
                self._tasks.append(asyncio.create_task(self._pump(self._readings), name="cabin-readings"))
            if self._selftest_at_start:
                self._tasks.append(asyncio.create_task(self._startup_selftest(), name="cabin-startup-selftest"))
            if self._selftest is not None:
                self._tasks.append(asyncio.create_task(self._selftest_before_appointments(), name="cabin-pretest"))
            self._tasks.append(asyncio.create_task(trim_periodically(), name="cabin-malloc-trim"))
        except BaseException:
            await self.close()
            raise
        log.info("cabin %s: started", self.config.cabin_id)
        return self

    async def close(self) -> None:
        """Stop everything, in reverse order; each part is closed even if another failed."""
        if self._closed:
            return
        self._closed = True
        try:
            await cancel_and_wait(self._tasks)
        finally:
            await self._stack.aclose()

    @property
    def config(self) -> CabinConfig:
        """What the cabin runs with now: its file's settings, with those an operator changed from afar."""
        return self.gateway.config

    # --- parts ---------------------------------------------------------------------------------------------

    async def _apply_config(self, remote: RemoteSettings) -> None:
        """The parts of a configuration from afar that are not the calls': the screen's languages, the devices.

        Raises:
            ConfigError: languages the screen cannot offer.
        """
        if remote.languages is not None and self.kiosk is not None:
            self.kiosk.set_languages(remote.languages)
        if remote.allow is not None and self.devices is not None:
            await self.devices.set_allowlist(remote.allow)

    def _bluetooth_health(self, available: bool, reason: str) -> None:
        self.gateway.report_incident(IncidentKind.BLUETOOTH_UNAVAILABLE, not available, detail=reason)

    async def _pump(self, source: ReadingSource) -> None:
        async for reading in source.readings():
            try:
                self.gateway.deliver_reading(reading)
            except Exception:
                log.exception("cabin %s: delivering a reading failed", self.config.cabin_id)

    async def run_selftest(self, request_id: str | None = None) -> SelftestReport:
        """Run the self-test now and send its report to signaling.

        Raises:
            RuntimeError: this cabin was built without a self-test.
        """
        if self._selftest is None:
            raise RuntimeError("this cabin has no self-test")
        report = await self._selftest(self, request_id)
        await self.gateway.publish_selftest(report)
        return report

    def appointments_due_for_a_test(self, now: datetime) -> list[str]:
        """The appointments starting within the lead time whose self-test has not run yet."""
        due = []
        for info in self.gateway.schedule:
            if info.id in self.tested_before:
                continue
            try:
                starts = datetime.fromisoformat(info.starts_at.replace("Z", "+00:00"))
            except ValueError:
                continue
            if starts - self._selftest_lead <= now < starts:
                due.append(info.id)
        return due

    async def _selftest_before_appointments(self) -> None:
        """Before each appointment, the self-test runs by itself: a failure reaches the operator, and the
        professional's console, before the citizen is in the cabin. One failure never stops the loop."""
        while True:
            changed = self.gateway.changed
            try:
                for appointment_id in self.appointments_due_for_a_test(datetime.now(UTC)):
                    self.tested_before[appointment_id] = None
                    while len(self.tested_before) > 200:
                        self.tested_before.popitem(last=False)
                    report = await self.run_selftest(f"before-{appointment_id[:48]}")
                    log.log(
                        logging.INFO if report.ok else logging.WARNING,
                        "cabin %s: self-test before appointment %s: %s",
                        self.config.cabin_id,
                        appointment_id[:12],
                        "passed" if report.ok else "FAILED",
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cabin %s: the self-test before an appointment failed to run", self.config.cabin_id)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SCHEDULE_LOOK):
                    await changed.wait()

    async def _startup_selftest(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STARTUP_SELFTEST_WAIT):
                await self.gateway.connected.wait()
        try:
            report = await self.run_selftest(None)
        except Exception:
            log.exception("cabin %s: the start-up self-test failed to run", self.config.cabin_id)
            return
        failed = [check.name for check in report.checks if check.status == "failed"]
        if report.ok:
            log.info("cabin %s: self-test passed", self.config.cabin_id)
        else:
            log.warning("cabin %s: self-test FAILED: %s", self.config.cabin_id, ", ".join(failed))
