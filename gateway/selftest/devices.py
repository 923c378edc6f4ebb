"""One check per allowlisted Bluetooth device: seen, connected, and its battery level.

The probe reads a device manager's states: the running gateway's own manager, or one started for the check.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Final, Protocol, runtime_checkable

from gateway.devices.manager import DeviceState
from gateway.selftest.report import failed, ok, warning
from signaling.protocol import SelftestCheck

PREFIX: Final = "device:"
# Under this the device may die during a consultation: worth a warning to the operator, not a failed check.
LOW_BATTERY: Final = 20
_ADDRESS: Final = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


class DeviceStates(Protocol):
    """What the check reads: every known device's state, by address (DeviceManager has it)."""

    def states(self) -> Mapping[str, DeviceState]: ...


OpenDevices = Callable[[], AbstractAsyncContextManager[DeviceStates]]
"""Starts a device manager for the duration of the check (standalone self-test)."""


@runtime_checkable
class _OffersServices(Protocol):
    """A device state that names the allowlisted services the device offers ("thermometer"...)."""

    @property
    def services(self) -> Collection[str]: ...


def check_name(entry: str) -> str:
    """The check's name for an allowlist entry: `device:AA:BB:CC:DD:EE:FF` or `device:thermometer`."""
    return PREFIX + (entry.upper() if _ADDRESS.fullmatch(entry) else entry)


def _rank(state: DeviceState) -> tuple[bool, bool, bool]:
    return (state.connected, state.battery_percent is not None, state.seen)


def find_device(entry: str, states: Mapping[str, DeviceState]) -> DeviceState | None:
    """The state of the device an allowlist entry names: by address, or the best one offering a service."""
    if _ADDRESS.fullmatch(entry):
        return states.get(entry.upper())
    offering = [s for s in states.values() if isinstance(s, _OffersServices) and entry in s.services]
    return max(offering, key=_rank, default=None)


def device_check(
    entry: str, state: DeviceState | None, *, timeout: float, required: bool = True, low_battery: int = LOW_BATTERY
) -> SelftestCheck:
    """The verdict on one allowlisted device after waiting up to `timeout` seconds."""
    name = check_name(entry)
    if state is None or not state.seen:
        return failed(
            name, f"not seen within {timeout:g} s (switched off, out of range, or battery flat?)", required=required
        )
    who = state.name or "the device"
    if not _ADDRESS.fullmatch(entry):
        who = f"{who} ({state.address})"
    if not state.connected:
        return failed(name, f"{who} seen but not connected within {timeout:g} s", required=required)
    battery = state.battery_percent
    if battery is None:
        return ok(name, f"{who} connected, battery level unknown", required=required)
    if battery < low_battery:
        return warning(name, f"{who} connected, battery low: {battery} %", required=required)
    return ok(name, f"{who} connected, battery {battery} %", required=required)


def _settled(state: DeviceState | None, connected_for: float, battery_grace: float) -> bool:
    """Nothing more to wait for: connected, and the battery read (or given up after `battery_grace`)."""
    return (
        state is not None and state.connected and (state.battery_percent is not None or connected_for >= battery_grace)
    )


async def watch_devices(
    entries: Sequence[str],
    source: DeviceStates,
    *,
    timeout: float,
    battery_grace: float = 3.0,
    poll: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, DeviceState | None]:
    """Each entry's device state once all are connected with a battery level, or after `timeout` seconds."""
    start = clock()
    connected_at: dict[str, float] = {}
    while True:
        states = source.states()
        now = clock()
        found = {entry: find_device(entry, states) for entry in entries}
        for entry, state in found.items():
            if state is not None and state.connected:
                connected_at.setdefault(entry, now)
            else:
                connected_at.pop(entry, None)
        settled = all(_settled(found[e], now - connected_at.get(e, now), battery_grace) for e in entries)
        if settled or now - start >= timeout:
            return found
        await asyncio.sleep(poll)


async def probe_devices(
    entries: Sequence[str],
    *,
    live: DeviceStates | None,
    open_devices: OpenDevices,
    timeout: float = 10.0,
    battery_grace: float = 3.0,
    required: bool = True,
    low_battery: int = LOW_BATTERY,
) -> list[SelftestCheck]:
    """One check per entry, from the running manager (`live`) or from one opened for the check."""
    if not entries:
        return []
    if live is not None:
        found = await watch_devices(entries, live, timeout=timeout, battery_grace=battery_grace)
    else:
        try:
            async with open_devices() as source:
                found = await watch_devices(entries, source, timeout=timeout, battery_grace=battery_grace)
        except Exception as exc:  # bleak's errors for a missing adapter or bus, or anything else: say which
            reason = f"Bluetooth unavailable ({type(exc).__name__}: {exc})"
            return [failed(check_name(entry), reason, required=required) for entry in entries]
    return [
        device_check(entry, found[entry], timeout=timeout, required=required, low_battery=low_battery)
        for entry in entries
    ]
