"""The cabin's heartbeat: every few seconds, and at every change, tell signaling whether the cabin's parts work.

A heartbeat carries the software and configuration versions, the camera and microphone (present, and while a call
captures, frame rate and level), each medical device (seen, connected, battery, when its last reading came, never
the reading), the round trip and loss to signaling, the PC's load, memory, system disk and temperature, and whether
a call runs. Never who is in the cabin, never a health value.

`SystemProbe` reads the PC's figures (Linux /proc and /sys; None where the PC does not expose one). `HeartbeatLoop`
sends; `build_heartbeat` is pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from gateway.errors import GatewayError
from gateway.lifecycle import cancel_and_wait
from signaling.protocol import DeviceStatus, Heartbeat

if TYPE_CHECKING:
    from gateway.cabin import CabinGateway

log = logging.getLogger("cabine.gateway.heartbeat")

PERIOD: Final = 10.0
# At most one heartbeat per this many seconds, however often things change.
MIN_SPACING: Final = 1.0
PROBE_TIMEOUT: Final = 5.0
# The loss figure covers this many recent pings.
LOSS_WINDOW: Final = 20
QUIET_DB: Final = -120.0
THERMAL: Final = Path("/sys/class/thermal")


def software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cabine")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class SystemFigures:
    cpu: float | None = None
    memory: float | None = None
    disk: float | None = None
    temperature_c: float | None = None


class SystemProbe:
    """The PC's load (between two calls), memory, disk and temperature; None for what cannot be read."""

    def __init__(self, disk_path: Path, *, proc: Path = Path("/proc"), thermal: Path = THERMAL) -> None:
        self._disk_path, self._proc, self._thermal = disk_path, proc, thermal
        self._last_cpu: tuple[int, int] | None = None

    def figures(self) -> SystemFigures:
        return SystemFigures(self._cpu(), self._memory(), self._disk(), self._temperature())

    def _cpu(self) -> float | None:
        try:
            fields = (self._proc / "stat").read_text().split("\n", 1)[0].split()[1:]
            values = [int(v) for v in fields]
        except (OSError, ValueError):
            return None
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total = sum(values[:8])
        last, self._last_cpu = self._last_cpu, (idle, total)
        if last is None or total <= last[1]:
            return None
        return round(1.0 - (idle - last[0]) / (total - last[1]), 3)

    def _memory(self) -> float | None:
        try:
            info = dict(line.split(":", 1) for line in (self._proc / "meminfo").read_text().splitlines() if ":" in line)
            total = int(info["MemTotal"].split()[0])
            available = int(info["MemAvailable"].split()[0])
        except (OSError, KeyError, ValueError):
            return None
        return round(1.0 - available / total, 3) if total > 0 else None

    def _disk(self) -> float | None:
        path = self._disk_path
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            usage = shutil.disk_usage(path)
        except OSError:
            return None
        return round(usage.used / usage.total, 3) if usage.total else None

    def _temperature(self) -> float | None:
        """The hottest thermal zone (a fanless PC throttles, then stops, when it is too hot)."""
        hottest = None
        with contextlib.suppress(OSError):
            for zone in self._thermal.glob("thermal_zone*/temp"):
                with contextlib.suppress(OSError, ValueError):
                    value = int(zone.read_text().strip()) / 1000.0
                    hottest = value if hottest is None else max(hottest, value)
        return hottest


def build_heartbeat(
    *,
    software: str,
    uptime_s: float,
    config_version: str,
    now: datetime,
    camera_present: bool,
    microphone_present: bool,
    camera_fps: float | None,
    microphone_level_db: float | None,
    devices: Iterable[Mapping[str, object]],
    last_readings: Mapping[str, datetime],
    rtt_ms: float | None,
    loss: float | None,
    system: SystemFigures,
    in_session: bool,
) -> Heartbeat:
    """A heartbeat from what the cabin knows now. Pure."""
    statuses = []
    for device in devices:
        address = str(device.get("address", ""))
        if not address:
            continue
        battery = device.get("battery")
        last = last_readings.get(address)
        statuses.append(
            DeviceStatus(
                address=address[:64],
                name=str(device.get("name") or "")[:64],
                seen=bool(device.get("seen", device.get("connected", False))),
                connected=bool(device.get("connected", False)),
                battery=battery if isinstance(battery, int) and 0 <= battery <= 100 else None,
                last_reading_at=None if last is None else _iso(last),
            )
        )
    level = None if microphone_level_db is None else round(max(QUIET_DB, min(0.0, microphone_level_db)), 1)
    return Heartbeat(
        software=software,
        uptime_s=round(uptime_s, 1),
        config_version=config_version,
        sent_at=_iso(now),
        camera_present=camera_present,
        microphone_present=microphone_present,
        camera_fps=None if camera_fps is None else round(camera_fps, 1),
        microphone_level_db=level,
        devices=tuple(sorted(statuses, key=lambda d: d.address))[:32],
        rtt_ms=None if rtt_ms is None else round(rtt_ms, 1),
        loss=loss,
        cpu=system.cpu,
        memory=system.memory,
        disk=system.disk,
        temperature_c=None if system.temperature_c is None else round(system.temperature_c, 1),
        in_session=in_session,
    )


def steady_part(heartbeat: Heartbeat) -> Heartbeat:
    """The heartbeat without the figures that move all the time: a change in what remains is worth telling now."""
    return replace(
        heartbeat,
        uptime_s=0.0,
        sent_at="",
        camera_fps=None,
        microphone_level_db=None,
        rtt_ms=None,
        loss=None,
        cpu=None,
        memory=None,
        disk=None,
        temperature_c=None,
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HeartbeatLoop:
    """Sends the cabin's heartbeat every `period` seconds and soon after every change, while connected."""

    def __init__(
        self,
        cabin: CabinGateway,
        *,
        period: float = PERIOD,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        probe: SystemProbe | None = None,
    ) -> None:
        if period <= 0:
            raise GatewayError(f"the heartbeat period must be > 0 seconds, got {period}")
        self._cabin = cabin
        self.period = period
        self.wall_clock = wall_clock
        # The system disk: what fills up on an unattended PC (logs, updates); the runtime directory is a tmpfs.
        self._probe = probe or SystemProbe(Path(os.sep))
        # The PC's figures, read at each full beat only: a change (every reading moves a device's time) sends a
        # heartbeat within a second, and must not read /proc and /sys each time, nor make the load's window tiny.
        self._system = SystemFigures()
        self._software = software_version()
        self._started = time.monotonic()
        self._pings: deque[bool] = deque(maxlen=LOSS_WINDOW)
        self._rtt_ms: float | None = None
        self._steady: Heartbeat | None = None
        self._sent_on: object = None  # the signaling connection the last heartbeat went on
        self.sent = 0
        self.last: Heartbeat | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cabin-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    def heartbeat(self) -> Heartbeat:
        cabin = self._cabin
        session = next(iter(cabin.sessions.values()), None)
        fps = level = None
        if session is not None:
            stats = session.sources.video_meter.stats()
            fps = None if stats is None else stats.fps
            measured = session.sources.audio_meter.level()
            level = None if measured is None else measured.dbfs
        return build_heartbeat(
            software=self._software,
            uptime_s=time.monotonic() - self._started,
            config_version=cabin.config_version,
            now=self.wall_clock(),
            camera_present=cabin.media_present("video"),
            microphone_present=cabin.media_present("audio"),
            camera_fps=fps,
            microphone_level_db=level,
            devices=list(cabin.devices.values()),
            last_readings=cabin.last_reading_at,
            rtt_ms=self._rtt_ms,
            loss=round(self._pings.count(False) / len(self._pings), 3) if self._pings else None,
            system=self._system,
            in_session=bool(cabin.sessions),
        )

    async def _measure_round_trip(self) -> None:
        client = self._cabin.signaling
        if client is None:
            return
        try:
            self._rtt_ms = await client.probe(PROBE_TIMEOUT) * 1000.0
            self._pings.append(True)
        except GatewayError as exc:
            self._pings.append(False)
            self._rtt_ms = None
            log.info("%s: %s", self._cabin.label, exc)

    async def _run(self) -> None:
        """One failure never stops the heartbeat: it is logged and the next one is tried."""
        next_full = 0.0
        while True:
            changed = self._cabin.changed
            try:
                await self._cabin.connected.wait()
                now = time.monotonic()
                full = now >= next_full
                if full:
                    await self._measure_round_trip()
                    self._system = self._probe.figures()
                    next_full = now + self.period
                beat = self.heartbeat()
                steady = steady_part(beat)
                client = self._cabin.signaling
                if full or steady != self._steady or client is not self._sent_on:
                    await self._cabin.send_heartbeat(beat)
                    self._steady, self.last, self._sent_on = steady, beat, client
                    self.sent += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: a heartbeat failed; the next one will be tried", self._cabin.label)
            await asyncio.sleep(MIN_SPACING)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_full - time.monotonic())):
                    await changed.wait()
