"""The Bluetooth checks through real dbus_fast and bleak against BlueZ emulated by bluezoo (cabine.demo.radio).

Each test starts its own private dbus-daemon and bluezoo; a missing one fails the test (EmulationError).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from cabine.demo.emulated import EmulatedDevice, EmulatedKind
from cabine.demo.radio import EmulatedRadio
from gateway.devices.manager import DeviceManager, DeviceState
from gateway.selftest.adapter import probe_adapter
from gateway.selftest.devices import DeviceStates, probe_devices
from signaling.protocol import CheckStatus
from tests.conftest import wait_until

MISSING = "CA:B1:0E:00:99:99"  # no emulated device has it
TIMEOUT = 10.0


def own_manager(radio: EmulatedRadio, allow: tuple[str, ...]) -> AbstractAsyncContextManager[DeviceStates]:
    return radio.device_manager(allowlist=allow)


async def test_the_emulated_adapter_is_found_and_powered() -> None:
    async with EmulatedRadio.of_kinds(["thermometer"]) as radio:
        named = await probe_adapter(radio.adapter, needed=True)
        default = await probe_adapter(None, needed=True)
    assert named.status is CheckStatus.OK
    assert named.detail == "hci0 (00:00:5E:00:53:01) is powered"
    assert default.status is CheckStatus.OK and default.detail.endswith("is powered")


async def test_a_missing_or_unpowered_adapter_fails() -> None:
    async with EmulatedRadio.of_kinds(["thermometer"]) as radio:
        missing = await probe_adapter("hci9", needed=True)
        bus = await MessageBus(bus_address=radio.bus_address, bus_type=BusType.SYSTEM).connect()
        try:
            reply = await bus.call(
                Message(
                    destination="org.bluez",
                    path="/org/bluez/hci0",
                    interface="org.freedesktop.DBus.Properties",
                    member="Set",
                    signature="ssv",
                    body=["org.bluez.Adapter1", "Powered", Variant("b", False)],
                )
            )
            assert reply is not None and reply.message_type is MessageType.METHOD_RETURN
        finally:
            bus.disconnect()
            with contextlib.suppress(EOFError, OSError):
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
        off = await probe_adapter("hci0", needed=True)
    assert missing.status is CheckStatus.FAILED
    assert missing.detail == "no adapter hci9 (BlueZ has hci0, hci1)"
    assert off.status is CheckStatus.FAILED
    assert off.detail == "hci0 is off (turn it on: bluetoothctl power on)"


async def test_no_system_bus_or_no_bluez_fails_with_the_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    no_bus = await probe_adapter(None, needed=True)
    assert no_bus.status is CheckStatus.FAILED
    assert no_bus.detail.startswith("cannot reach the system D-Bus (FileNotFoundError")


async def test_a_bus_without_bluez_says_bluez_is_not_running(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    daemon = shutil.which("dbus-daemon")
    assert daemon is not None, "dbus-daemon is not installed (Debian package dbus-daemon)"
    process = await asyncio.create_subprocess_exec(
        daemon, "--session", "--nofork", "--nopidfile", "--nosyslog",
        f"--address=unix:path={tmp_path / 'bus'}", "--print-address=1",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        address = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode().strip()
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        check = await probe_adapter(None, needed=True)
    finally:
        process.terminate()
        await process.wait()
        assert process.stdout is not None
        await process.stdout.read()
    assert check.status is CheckStatus.FAILED
    assert check.detail == "BlueZ (bluetoothd) is not running"


async def test_the_adapter_is_skipped_without_devices() -> None:
    check = await probe_adapter(None, needed=False)
    assert (check.status, check.required, check.detail) == (
        CheckStatus.SKIPPED,
        False,
        "no Bluetooth device allowlisted",
    )


async def test_each_emulated_device_is_seen_connected_with_its_battery_and_a_missing_one_fails() -> None:
    devices = [
        EmulatedDevice(EmulatedKind.THERMOMETER),
        EmulatedDevice(EmulatedKind.BLOOD_PRESSURE, battery=12),
        EmulatedDevice(EmulatedKind.SCALE),
    ]
    async with EmulatedRadio(devices) as radio:
        allow = (*radio.addresses, MISSING)
        checks = await probe_devices(
            allow, live=None, open_devices=lambda: own_manager(radio, allow), timeout=4.0, battery_grace=2.0
        )
    by_name = {c.name: c for c in checks}
    assert list(by_name) == [f"device:{a}" for a in allow]
    thermometer, monitor, scale, missing = (by_name[f"device:{a}"] for a in allow)
    assert thermometer.status is CheckStatus.OK
    assert thermometer.detail.endswith("connected, battery 87 %")
    assert monitor.status is CheckStatus.WARNING
    assert monitor.detail.endswith("connected, battery low: 12 %")
    assert scale.status is CheckStatus.OK
    assert missing.status is CheckStatus.FAILED and missing.required
    assert missing.detail == "not seen within 4 s (switched off, out of range, or battery flat?)"


async def test_the_running_gateways_manager_is_read_not_restarted() -> None:
    async with (
        EmulatedRadio.of_kinds(["thermometer", "oximeter"]) as radio,
        radio.device_manager() as manager,
    ):
        await wait_until(
            lambda: all(s.connected and s.battery_percent is not None for s in manager.states().values()),
            timeout=TIMEOUT,
            what="both devices connected",
        )

        @contextlib.asynccontextmanager
        async def forbidden() -> AsyncIterator[DeviceStates]:
            raise AssertionError("a running gateway's devices must not be opened a second time")
            yield manager  # pragma: no cover

        checks = await probe_devices(
            (radio.addresses[0].lower(), MISSING), live=manager, open_devices=forbidden, timeout=1.0
        )
        still = manager.states()
    assert [(c.name, c.status) for c in checks] == [
        (f"device:{radio.addresses[0]}", CheckStatus.OK),
        (f"device:{MISSING}", CheckStatus.FAILED),
    ]
    assert all(state.connected for state in still.values())  # the check disturbed nothing


async def test_devices_fail_with_the_reason_when_bluetooth_cannot_start() -> None:
    async with EmulatedRadio.of_kinds(["thermometer"]) as radio:
        allow = radio.addresses

        def on_missing_adapter() -> DeviceManager:
            return DeviceManager(allow, adapter="hci9")

        checks = await probe_devices(allow, live=None, open_devices=on_missing_adapter, timeout=2.0, required=False)
    assert len(checks) == 1
    assert checks[0].status is CheckStatus.FAILED and not checks[0].required
    assert checks[0].detail.startswith("Bluetooth unavailable (")
    assert "hci9" in checks[0].detail


async def test_no_allowlist_means_no_device_checks() -> None:
    class Nothing:
        def states(self) -> Mapping[str, DeviceState]:
            raise AssertionError("not read")

    assert await probe_devices((), live=Nothing(), open_devices=lambda: own_manager_never(), timeout=1.0) == []


def own_manager_never() -> AbstractAsyncContextManager[DeviceStates]:
    raise AssertionError("not opened")
