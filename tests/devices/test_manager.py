"""DeviceManager through real bleak (BlueZ backend, unmodified) against BlueZ emulated by bluezoo: no radio.

Each test starts its own private dbus-daemon and bluezoo (about 0.3 s). Nothing is skipped: a missing
dbus-daemon or bluezoo fails the test with EmulationError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping

import pytest

from cabine.demo.emulated import EmulatedDevice, EmulatedKind, Measurement, default_address
from cabine.demo.radio import EmulatedRadio, emulated_devices
from gateway.devices.gatt import decode
from gateway.devices.manager import Backoff, DeviceManager, DeviceManagerError, DeviceState
from gateway.devices.readings import Reading, ReadingKind, TimeSource
from tests.conftest import wait_until

TIMEOUT = 10.0
FAST = Backoff(initial=0.05, maximum=0.5)


async def take(readings: AsyncIterator[Reading], count: int) -> list[Reading]:
    """The next `count` readings, failing after TIMEOUT seconds."""

    async def collect() -> list[Reading]:
        return [await anext(readings) for _ in range(count)]

    return await asyncio.wait_for(collect(), TIMEOUT)


async def until_states(manager: DeviceManager, predicate: Callable[[Mapping[str, DeviceState]], bool]) -> None:
    """Wait, on the manager's change iterator, until `predicate(manager.states())` holds."""

    async def watch() -> None:
        async with contextlib.aclosing(manager.state_changes()) as changes:
            async for _ in changes:
                if predicate(manager.states()):
                    return

    await asyncio.wait_for(watch(), TIMEOUT)


def all_connected(addresses: tuple[str, ...]) -> Callable[[Mapping[str, DeviceState]], bool]:
    return lambda states: all(states[a].connected for a in addresses)


def expected(measurement: Measurement, reading: Reading) -> Reading:
    """The reading the emulator's bytes decode to, with the reading's own identity and reception time."""
    return decode(measurement.uuid16, measurement.payload, device=reading.device, received_at=reading.measured_at)


async def test_connects_only_to_allowlisted_devices_and_logs_a_stranger_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.devices.manager")
    stranger = EmulatedDevice(EmulatedKind.THERMOMETER, address=default_address(EmulatedKind.THERMOMETER, 1))
    own = [EmulatedDevice(kind) for kind in EmulatedKind]
    async with EmulatedRadio([*own, stranger]) as radio:
        allowed = tuple(device.address for device in own)
        async with radio.device_manager(allowlist=[a.lower() for a in allowed], backoff=FAST) as manager:
            await until_states(manager, all_connected(allowed))
            await wait_until(
                lambda: any(stranger.address in r.getMessage() for r in caplog.records),
                timeout=TIMEOUT,
                what="the stranger to be logged",
            )
            assert set(manager.states()) == set(allowed)
            assert all(state.seen and state.name for state in manager.states().values())
            ignored = [r for r in caplog.records if stranger.address in r.getMessage()]
            assert [r.getMessage() for r in ignored] == [f"[cabin -] ignoring {stranger.address}: not on the allowlist"]
            assert all(radio.subscribed(device.address) for device in own)
            assert not radio.subscribed(stranger.address)


async def test_readings_of_all_four_kinds_carry_device_information_and_battery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway")
    async with EmulatedRadio.of_kinds() as radio, radio.device_manager(backoff=FAST) as manager:
        async with contextlib.aclosing(manager.readings()) as readings:
            stored = await take(readings, 2)  # the blood-pressure monitor's memory, sent on subscription
            await until_states(manager, all_connected(radio.addresses))
            sent = [
                radio.trigger(EmulatedKind.THERMOMETER),
                radio.trigger(EmulatedKind.OXIMETER),
                radio.trigger(EmulatedKind.OXIMETER, continuous=True),
                radio.trigger(EmulatedKind.SCALE),
                radio.trigger(EmulatedKind.BLOOD_PRESSURE),
            ]
            received = stored + await take(readings, len(sent))

        assert {r.kind for r in received} == set(ReadingKind) - {ReadingKind.HEART_RATE}
        matched = []
        for reading in received:
            device = radio.device(reading.device.address)
            assert reading.device == device.identity  # name from the advertisement, the rest from 0x180A
            (measurement,) = [m for m in device.taken if expected(m, reading) == reading]
            matched.append((device.address, measurement.seq))
            if measurement.measured_at is None:
                assert reading.time_source is TimeSource.RECEPTION
            else:
                assert (reading.measured_at, reading.time_source) == (measurement.measured_at, TimeSource.DEVICE)
        assert sorted(matched) == sorted((d.address, m.seq) for d in radio.devices for m in d.taken)

        assert {a: s.battery_percent for a, s in manager.states().items()} == dict.fromkeys(radio.addresses, 87)
        radio.set_battery(EmulatedKind.SCALE, 41)
        scale = radio.device(EmulatedKind.SCALE).address
        await until_states(manager, lambda states: states[scale].battery_percent == 41)

        # Health data never reaches the logs: no measured value, no payload bytes.
        logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("gateway"))
        for reading in received:
            for quantity in reading.quantities:
                if quantity.value is not None and quantity.value >= 30:
                    assert f"{quantity.value:g}" not in logged
        for device in radio.devices:
            for measurement in device.taken:
                assert measurement.payload.hex() not in logged


async def test_stored_readings_sent_at_connection_are_all_kept_in_order() -> None:
    monitor = EmulatedDevice(EmulatedKind.BLOOD_PRESSURE, stored=5)
    async with (
        EmulatedRadio([monitor]) as radio,
        radio.device_manager(backoff=FAST) as manager,
        contextlib.aclosing(manager.readings()) as readings,
    ):
        received = await take(readings, 5)
    assert [r.measured_at for r in received] == [m.measured_at for m in monitor.taken]
    assert all(r.device.model == "BP-1" for r in received)  # identity read after, applied to early readings
    assert list(monitor.pending()) == []  # every indication was confirmed


async def test_link_loss_then_reconnection_resumes_readings_without_duplicates_or_losses() -> None:
    monitor = EmulatedDevice(EmulatedKind.BLOOD_PRESSURE, stored=2)
    address = monitor.address
    backoff = Backoff(initial=0.3, maximum=1.0)
    async with (
        EmulatedRadio([monitor]) as radio,
        radio.device_manager(backoff=backoff) as manager,
        contextlib.aclosing(manager.readings()) as readings,
    ):
        received = await take(readings, 2)
        radio.trigger(EmulatedKind.BLOOD_PRESSURE)
        received += await take(readings, 1)

        await radio.drop_link(EmulatedKind.BLOOD_PRESSURE)
        await until_states(manager, lambda states: not states[address].connected)
        # Taken while the link is down: kept in the monitor's memory, sent when the gateway is back.
        radio.trigger(EmulatedKind.BLOOD_PRESSURE)
        radio.trigger(EmulatedKind.BLOOD_PRESSURE)
        await until_states(manager, lambda states: states[address].connected)
        radio.trigger(EmulatedKind.BLOOD_PRESSURE)
        received += await take(readings, 3)

    assert [r.measured_at for r in received] == [m.measured_at for m in monitor.taken]
    assert len({r.measured_at for r in received}) == 6


# A gateway that dies with a device connected: BlueZ keeps the link (bluez/bluez#89), so the device stops
# advertising and no scan finds it again.
_DYING_GATEWAY = """
import asyncio, sys
from bleak import BleakClient, BleakScanner

async def main():
    device = await BleakScanner.find_device_by_address(sys.argv[1], timeout=10, bluez={"adapter": sys.argv[2]})
    client = BleakClient(device)
    await client.connect()
    await client.start_notify("00002a1c-0000-1000-8000-00805f9b34fb", lambda *_: None)
    print("connected", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_device_left_connected_by_a_dead_gateway_is_taken_over(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.devices.manager")
    thermometer = EmulatedDevice(EmulatedKind.THERMOMETER)
    async with EmulatedRadio([thermometer]) as radio:
        dying = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _DYING_GATEWAY, thermometer.address, radio.adapter, stdout=asyncio.subprocess.PIPE
        )
        try:
            assert dying.stdout is not None
            assert await asyncio.wait_for(dying.stdout.readline(), TIMEOUT) == b"connected\n"
        finally:
            dying.kill()
            await dying.wait()
        # As BlueZ does, the emulator ends the dead client's notification session (the link stays up).
        await wait_until(
            lambda: not radio.subscribed(thermometer.address), timeout=TIMEOUT, what="the dead client's session to end"
        )
        # Taken while no gateway listens: the thermometer keeps it until a central subscribes again.
        radio.trigger(EmulatedKind.THERMOMETER)
        async with (
            radio.device_manager(backoff=FAST) as manager,
            contextlib.aclosing(manager.readings()) as readings,
        ):
            await until_states(manager, all_connected((thermometer.address,)))
            received = await take(readings, 1)
            for _ in range(2):
                radio.trigger(EmulatedKind.THERMOMETER)
                received += await take(readings, 1)
        # Each measurement once: the dead process's subscription is not counted a second time.
        assert [r.measured_at for r in received] == [m.measured_at for m in thermometer.taken]
        assert any("still connected to the adapter, taken over" in r.getMessage() for r in caplog.records)


async def test_an_undecodable_payload_is_counted_and_logged_without_its_bytes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway")
    bad = bytes.fromhex("06aabbcc")  # flags promise a timestamp and a type, the payload stops short
    async with EmulatedRadio.of_kinds(["thermometer"]) as radio, radio.device_manager(backoff=FAST) as manager:
        async with contextlib.aclosing(manager.readings()) as readings:
            radio.send_raw(EmulatedKind.THERMOMETER, bad)
            good = radio.trigger(EmulatedKind.THERMOMETER)
            (reading,) = await take(readings, 1)
        assert reading.measured_at == good.measured_at
        assert manager.decode_failures == 1
        assert manager.states()[radio.addresses[0]].connected
    messages = [r.getMessage() for r in caplog.records if "could not decode" in r.getMessage()]
    assert len(messages) == 1
    assert "0x2A1C Temperature Measurement (4 bytes)" in messages[0]
    assert "aabbcc" not in caplog.text.lower()


async def test_close_ends_the_iterators_and_leaves_nothing_running() -> None:
    before = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    radio = EmulatedRadio.of_kinds(["blood-pressure"])
    async with radio:
        assert os.environ["DBUS_SYSTEM_BUS_ADDRESS"] == radio.bus_address
        manager = radio.device_manager(backoff=FAST)
        async with manager:
            readings = manager.readings()
            await take(readings, 2)
            with pytest.raises(DeviceManagerError, match="already being iterated"):
                await anext(manager.readings())
            changes = manager.state_changes()
            assert (await anext(changes)).connected

            async def next_reading() -> Reading:
                return await anext(readings)

            consumer = asyncio.create_task(next_reading())
            await asyncio.sleep(0)  # let the consumer block on the queue
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(consumer, TIMEOUT)

        async def rest() -> list[DeviceState]:
            return [state async for state in changes]

        assert [s.connected for s in await asyncio.wait_for(rest(), TIMEOUT)] == [False]
        await manager.close()  # twice is fine
        assert not manager.states()[radio.addresses[0]].connected
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("ble-")] == []
    await radio.close()  # twice is fine
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("emulated-")] == []
    assert os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") == before


async def test_emulated_devices_helper_yields_a_started_manager_with_periodic_measurements() -> None:
    async with (
        emulated_devices(["thermometer", "scale"], period=0.2, backoff=FAST) as manager,
        contextlib.aclosing(manager.readings()) as readings,
    ):
        received = await take(readings, 4)
    assert {r.kind for r in received} == {ReadingKind.BODY_TEMPERATURE, ReadingKind.BODY_WEIGHT}
