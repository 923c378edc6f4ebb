"""DeviceManager, emulated devices and the emulated radio: configuration and behaviour that need no bus."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cabine.demo.emulated import EmulatedDevice, EmulatedKind, default_address, make_devices
from cabine.demo.radio import EmulatedRadio, EmulationError
from gateway.devices.gatt import (
    BLOOD_PRESSURE_MEASUREMENT,
    PLX_CONTINUOUS_MEASUREMENT,
    TEMPERATURE_TYPE,
    decode,
)
from gateway.devices.manager import Backoff, DeviceManager, DeviceManagerError, DeviceState
from gateway.devices.readings import ReadingKind, TimeSource
from gateway.errors import ConfigError

NOON = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)


def test_backoff_doubles_up_to_its_maximum_and_never_overflows() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, maximum=30.0)
    assert [backoff.delay(n) for n in range(9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.delay(10_000) == 30.0
    assert Backoff(initial=1.0, factor=1.0, maximum=1.0).delay(50) == 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"initial": 0.0}, "initial delay must be > 0 seconds, got 0.0"),
        ({"factor": 0.5}, "factor must be >= 1, got 0.5"),
        ({"initial": 5.0, "maximum": 1.0}, "maximum must be >= the initial delay 5.0, got 1.0"),
        ({"maximum": float("inf")}, "maximum must be >= the initial delay 0.5, got inf"),
    ],
)
def test_backoff_rejects_bad_settings(options: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Backoff(**options)


async def test_manager_normalizes_the_allowlist_and_starts_with_unseen_devices() -> None:
    manager = DeviceManager([" ca:b1:0e:00:00:01 ", "CA:B1:0E:00:00:02"])
    assert manager.allowlist == {"CA:B1:0E:00:00:01", "CA:B1:0E:00:00:02"}
    assert manager.states()["CA:B1:0E:00:00:01"] == DeviceState("CA:B1:0E:00:00:01")
    with pytest.raises(TypeError):
        manager.states()["x"] = DeviceState("x")  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (["  "], {}, "an allowlisted device address is empty"),
        ([], {"connect_timeout": 0}, "timeouts must be > 0 seconds"),
        ([], {"max_queued": 0}, "max_queued must be >= 1, got 0"),
    ],
)
async def test_manager_rejects_bad_settings(args: list[str], options: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DeviceManager(args, **options)  # type: ignore[arg-type]


async def test_a_closed_manager_ends_its_iterators_and_cannot_start() -> None:
    manager = DeviceManager(["CA:B1:0E:00:00:01"])
    await manager.close()
    await manager.close()
    assert [r async for r in manager.readings()] == []
    assert [r async for r in manager.readings()] == []
    assert [s.address async for s in manager.state_changes()] == ["CA:B1:0E:00:00:01"]
    with pytest.raises(DeviceManagerError, match="closed"):
        await manager.start()


def test_blood_pressure_monitor_starts_with_stored_readings_kept_until_delivered() -> None:
    monitor = EmulatedDevice(EmulatedKind.BLOOD_PRESSURE, clock=lambda: NOON)
    stored = list(monitor.pending())
    assert [m.seq for m in stored] == [1, 2]
    assert [m.measured_at for m in stored] == [
        datetime(2025, 3, 14, 11, 0, tzinfo=UTC),
        NOON.replace(minute=30, hour=11),
    ]
    monitor.delivered(stored[0])
    assert list(monitor.pending()) == stored[1:]
    assert EmulatedDevice(EmulatedKind.THERMOMETER).taken == []


def test_measurements_decode_to_plausible_values_with_distinct_device_times() -> None:
    devices = make_devices(["thermometer", "blood-pressure", "oximeter", "scale"])
    for device in devices:
        first, second = device.measure(), device.measure()
        assert first.measured_at is not None and second.measured_at is not None
        assert second.measured_at > first.measured_at
        reading = decode(first.uuid16, first.payload, device=device.identity, received_at=NOON)
        assert reading.time_source is TimeSource.DEVICE
        low, high = {
            ReadingKind.BODY_TEMPERATURE: (35.5, 38.0),
            ReadingKind.BLOOD_PRESSURE: (90, 150),
            ReadingKind.OXYGEN_SATURATION: (90, 100),
            ReadingKind.BODY_WEIGHT: (40, 120),
        }[reading.kind]
        assert reading.primary.value is not None and low <= reading.primary.value <= high
    oximeter = devices[2]
    sample = oximeter.measure(continuous=True)
    assert (sample.uuid16, sample.measured_at, sample.indicate) == (PLX_CONTINUOUS_MEASUREMENT, None, False)
    assert sample not in list(oximeter.pending())  # notifications are not kept


def test_emulated_device_rejects_what_a_real_one_cannot_do() -> None:
    with pytest.raises(ConfigError, match="only an oximeter sends continuous measurements, not a scale"):
        EmulatedDevice("scale").measure(continuous=True)
    with pytest.raises(ConfigError, match="unknown emulated device kind 'fridge'"):
        EmulatedDevice("fridge")
    with pytest.raises(ConfigError, match="battery must be a percentage"):
        EmulatedDevice("scale", battery=101)
    with pytest.raises(ConfigError, match="does not push values"):
        EmulatedDevice("thermometer").take_raw(b"\x00", TEMPERATURE_TYPE)
    with pytest.raises(ConfigError, match=r"device index must be in 0\.\.255"):
        default_address("scale", 256)
    raw = EmulatedDevice("blood-pressure", stored=0).take_raw(b"\x00")
    assert (raw.seq, raw.uuid16, raw.indicate) == (1, BLOOD_PRESSURE_MEASUREMENT, True)


def test_make_devices_gives_two_of_a_kind_distinct_addresses() -> None:
    first, second = make_devices(["thermometer", "thermometer"])
    assert (first.address, second.address) == ("CA:B1:0E:00:00:01", "CA:B1:0E:00:01:01")


async def test_emulated_radio_checks_its_settings_and_needs_starting() -> None:
    with pytest.raises(ConfigError, match="at least one device"):
        EmulatedRadio([])
    with pytest.raises(ConfigError, match="distinct addresses"):
        EmulatedRadio([EmulatedDevice("scale"), EmulatedDevice("scale")])
    with pytest.raises(ConfigError, match="period must be > 0 seconds"):
        EmulatedRadio.of_kinds(["scale"], period=0)
    radio = EmulatedRadio.of_kinds(["scale"])
    with pytest.raises(ConfigError, match="no emulated thermometer on this radio"):
        radio.device("thermometer")
    with pytest.raises(EmulationError, match="not started"):
        radio.trigger("scale")
    await radio.close()
    await radio.close()
