"""Running a self-test: every probe at once, each bounded in time and unable to raise, into one report."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from gateway.config import DeviceAllowlist
from gateway.devices.manager import DeviceManager
from gateway.selftest import adapter, camera, clock, devices, ice, microphone, signaling_link, sound
from gateway.selftest.loudspeaker import AlsaPath, LoudspeakerError
from gateway.selftest.plan import SelftestPlan
from gateway.selftest.report import failed, make_report, skipped, unexpected, warning
from signaling.protocol import SelftestCheck, SelftestReport

log = logging.getLogger("cabine.gateway.selftest")

# Beyond its own timeouts, a probe gets this long (closing devices, sockets) before it is cut short.
_GRACE = 3.0


async def guarded(
    names: Sequence[str], probe: Callable[[], Awaitable[list[SelftestCheck]]], *, timeout: float, required: bool = True
) -> list[SelftestCheck]:
    """Run a probe that makes the checks `names`; a probe that overruns or raises fails them all, saying why."""
    try:
        async with asyncio.timeout(timeout):
            return await probe()
    except TimeoutError:
        return [failed(name, f"did not finish within {timeout:g} s", required=required) for name in names]
    except Exception as exc:  # a bug or an unforeseen error must cost one check, not the self-test
        log.exception("self-test: %s raised", ", ".join(names))
        return [unexpected(name, exc, required=required) for name in names]


def _own_devices(plan: SelftestPlan) -> AbstractAsyncContextManager[devices.DeviceStates]:
    """A device manager for the duration of the check (the standalone self-test).

    Raises:
        ConfigError: an entry is neither an address nor a known service.
    """
    allow = DeviceAllowlist.parse(plan.devices)
    return DeviceManager(
        allow.addresses, services=allow.service_uuids, adapter=plan.adapter, connect_timeout=plan.timeouts.device
    )


async def _bluetooth(plan: SelftestPlan) -> list[SelftestCheck]:
    t = plan.timeouts
    required = plan.devices_required
    device_names = [devices.check_name(entry) for entry in plan.devices]

    async def adapter_probe() -> list[SelftestCheck]:
        return [await adapter.probe_adapter(plan.adapter, needed=bool(plan.devices), required=required)]

    async def devices_probe() -> list[SelftestCheck]:
        return await devices.probe_devices(
            plan.devices,
            live=plan.live_devices,
            open_devices=plan.open_devices or (lambda: _own_devices(plan)),
            timeout=t.device,
            battery_grace=t.battery,
            required=required,
            low_battery=plan.low_battery_percent,
        )

    found = await asyncio.gather(
        guarded([adapter.NAME], adapter_probe, timeout=t.adapter + _GRACE, required=required),
        guarded(device_names, devices_probe, timeout=t.device + t.battery + _GRACE, required=required),
    )
    return [c for checks in found for c in checks]


async def _network(plan: SelftestPlan) -> list[SelftestCheck]:
    """Signaling first; then, from its Welcome, the ICE servers and the clock."""
    t = plan.timeouts
    contact: signaling_link.SignalingContact | None = None

    async def signaling_probe() -> list[SelftestCheck]:
        nonlocal contact
        check, contact = await signaling_link.probe_signaling(
            connect=plan.connect_signaling, live=plan.live_signaling, timeout=t.signaling, wall_clock=plan.wall_clock
        )
        return [check]

    first = await guarded([signaling_link.NAME], signaling_probe, timeout=t.signaling + _GRACE)

    async def ice_probe() -> list[SelftestCheck]:
        if contact is None:
            return [skipped(ice.NAME, "no welcome from signaling, so no ICE servers to try")]
        return [await ice.probe_ice(contact.welcome.ice_servers, timeout=t.ice, tls=plan.ice_tls)]

    async def clock_probe() -> list[SelftestCheck]:
        return [clock.clock_check(contact)]

    rest = await asyncio.gather(
        guarded([ice.NAME], ice_probe, timeout=t.ice + _GRACE),
        guarded([clock.NAME], clock_probe, timeout=_GRACE),
    )
    return first + [c for checks in rest for c in checks]


async def _media(plan: SelftestPlan) -> list[SelftestCheck]:
    t = plan.timeouts

    async def camera_probe() -> list[SelftestCheck]:
        return [
            await camera.probe_camera(
                plan.camera,
                plan.camera_format,
                live=plan.live_camera,
                first_frame_timeout=t.camera_first_frame,
                duration=t.camera_measure,
            )
        ]

    async def microphone_probe() -> list[SelftestCheck]:
        return [
            await microphone.probe_microphone(
                plan.microphone,
                live=plan.live_microphone,
                threshold=plan.microphone_threshold_dbfs,
                first_frame_timeout=t.microphone_first_frame,
                duration=t.microphone_measure,
            )
        ]

    async def sound_probe() -> list[SelftestCheck]:
        path = plan.sound_path
        if path is None and plan.microphone.kind == "room":
            path = sound.RoomPath()
        elif path is None and plan.microphone.kind == "alsa" and plan.loudspeaker:
            if plan.live_microphone is not None and plan.live_microphone() is not None:
                return [skipped(sound.NAME, "a call holds the loudspeaker and the microphone: checked between calls")]
            path = AlsaPath(plan.loudspeaker, plan.microphone.device)
        try:
            return [await sound.probe_sound(path, plan.sound_settings)]
        except LoudspeakerError as exc:
            return [warning(sound.NAME, f"the sound path cannot be tried: {exc}", required=False)]

    # Opening and the first frame have a timeout each; a microphone's sound may take twice its duration, plus 1 s.
    camera_limit = 2 * t.camera_first_frame + t.camera_measure + _GRACE
    microphone_limit = 2 * t.microphone_first_frame + 2 * t.microphone_measure + 1 + _GRACE
    # Played and recorded in real time on a cabin: the sweep, the voice, the echo's tail and the silence, twice.
    sound_limit = 2 * (sound.SWEEP_SECONDS + sound.VOICE_SECONDS + sound.MAX_DELAY + sound.QUIET_SECONDS) + _GRACE
    found = await asyncio.gather(
        guarded([camera.NAME], camera_probe, timeout=camera_limit),
        guarded([microphone.NAME], microphone_probe, timeout=microphone_limit),
        guarded([sound.NAME], sound_probe, timeout=sound_limit),
    )
    return [c for checks in found for c in checks]


async def run_selftest(plan: SelftestPlan, *, request_id: str | None = None) -> SelftestReport:
    """Check everything a call needs, concurrently; the report says what works (ok: nothing required failed).

    Never raises (but for cancellation): a probe's failure, timeout or bug is one failed check.
    """
    async with asyncio.TaskGroup() as group:
        media = group.create_task(_media(plan))
        bluetooth = group.create_task(_bluetooth(plan))
        network = group.create_task(_network(plan))
    checks = media.result() + bluetooth.result() + network.result()
    report = make_report(checks, finished_at=plan.wall_clock(), request_id=request_id)
    log.info("self-test %s: %s", "passed" if report.ok else "failed", ", ".join(f"{c.name} {c.status}" for c in checks))
    return report
