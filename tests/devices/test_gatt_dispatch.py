"""The `decode` dispatcher, UUID parsing, the UUID table, and the package's layout (one module per profile)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from gateway.devices import gatt
from gateway.devices.gatt import (
    BLOOD_PRESSURE_MEASUREMENT,
    CHARACTERISTIC_NAMES,
    MEASUREMENT_CHARACTERISTICS,
    SERVICE_NAMES,
    TEMPERATURE_MEASUREMENT,
    characteristic_label,
    decode,
    parse_uuid16,
    uuid128,
)
from gateway.devices.readings import DeviceIdentity, ReadingKind
from gateway.errors import DecodeError

DEVICE = DeviceIdentity(address="x")
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2A35",
        "2a35",
        "0x2A35",
        "0X2a35",
        " 2A35 ",
        "00002a35-0000-1000-8000-00805f9b34fb",
        "00002A35-0000-1000-8000-00805F9B34FB",
    ],
)
def test_parse_uuid16_forms(text: str) -> None:
    assert parse_uuid16(text) == 0x2A35


@pytest.mark.parametrize("text", ["", "2A3", "2A355", "0x", "zz12", "2A35h", "0x2A35 junk", "00002a35-0000-1000-8000"])
def test_parse_uuid16_rejects(text: str) -> None:
    with pytest.raises(DecodeError, match="is not a UUID: expected 4 hex digits like 2A35 or 0x2A35"):
        parse_uuid16(text)


def test_parse_uuid16_rejects_vendor_uuid() -> None:
    with pytest.raises(DecodeError, match="is not a 16-bit Bluetooth UUID"):
        parse_uuid16("00008a21-0000-1000-8000-00805f9b34fc")


def test_uuid128() -> None:
    assert uuid128(0x2A1C) == "00002a1c-0000-1000-8000-00805f9b34fb"
    assert parse_uuid16(uuid128(0x180D)) == 0x180D
    with pytest.raises(ValueError, match="16-bit UUID"):
        uuid128(0x10000)


def test_tables() -> None:
    assert gatt.TEMPERATURE_MEASUREMENT == 0x2A1C
    assert gatt.BLOOD_PRESSURE_MEASUREMENT == 0x2A35
    assert gatt.PLX_SPOT_CHECK_MEASUREMENT == 0x2A5E
    assert gatt.PLX_CONTINUOUS_MEASUREMENT == 0x2A5F
    assert gatt.HEART_RATE_MEASUREMENT == 0x2A37
    assert gatt.WEIGHT_MEASUREMENT == 0x2A9D
    assert gatt.BATTERY_LEVEL == 0x2A19
    assert gatt.TEMPERATURE_TYPE == 0x2A1D
    assert MEASUREMENT_CHARACTERISTICS[TEMPERATURE_MEASUREMENT] == gatt.HEALTH_THERMOMETER_SERVICE == 0x1809
    assert MEASUREMENT_CHARACTERISTICS[BLOOD_PRESSURE_MEASUREMENT] == 0x1810
    assert MEASUREMENT_CHARACTERISTICS[gatt.PLX_SPOT_CHECK_MEASUREMENT] == 0x1822
    assert MEASUREMENT_CHARACTERISTICS[gatt.HEART_RATE_MEASUREMENT] == 0x180D
    assert MEASUREMENT_CHARACTERISTICS[gatt.WEIGHT_MEASUREMENT] == 0x181D
    assert set(MEASUREMENT_CHARACTERISTICS.values()) <= set(SERVICE_NAMES)
    assert set(MEASUREMENT_CHARACTERISTICS) <= set(CHARACTERISTIC_NAMES)
    assert characteristic_label(0x2A35) == "0x2A35 Blood Pressure Measurement"
    assert characteristic_label(0xFFF1) == "0xFFF1"


@pytest.mark.parametrize(
    ("uuid16", "payload", "kind"),
    [
        (0x2A1C, bytes.fromhex("006D0100FF"), ReadingKind.BODY_TEMPERATURE),
        (0x2A35, bytes.fromhex("00BDF00B009FF0"), ReadingKind.BLOOD_PRESSURE),
        (0x2A5E, bytes.fromhex("0061004800"), ReadingKind.OXYGEN_SATURATION),
        (0x2A5F, bytes.fromhex("0061004800"), ReadingKind.OXYGEN_SATURATION),
        (0x2A37, bytes.fromhex("0048"), ReadingKind.HEART_RATE),
        (0x2A9D, bytes.fromhex("00B036"), ReadingKind.BODY_WEIGHT),
    ],
)
def test_dispatch(uuid16: int, payload: bytes, kind: ReadingKind) -> None:
    assert decode(uuid16, payload, device=DEVICE, received_at=NOW).kind is kind
    assert decode(uuid16, bytearray(payload), device=DEVICE, received_at=NOW).kind is kind


def test_dispatch_non_measurement() -> None:
    with pytest.raises(DecodeError, match="characteristic 0x2A19 Battery Level is not a measurement characteristic"):
        decode(0x2A19, b"\x64", device=DEVICE, received_at=NOW)


def test_dispatch_unknown() -> None:
    with pytest.raises(DecodeError, match="characteristic 0x1234 is not known"):
        decode(0x1234, b"\x00", device=DEVICE, received_at=NOW)


def test_one_module_per_profile() -> None:
    assert {
        decoder.__module__.rsplit(".", 1)[1]
        for decoder in (
            gatt.decode_temperature,
            gatt.decode_temperature_type,
            gatt.decode_blood_pressure,
            gatt.decode_plx_spot_check,
            gatt.decode_plx_continuous,
            gatt.decode_heart_rate,
            gatt.decode_weight,
            gatt.decode_battery_level,
            gatt.apply_device_information,
        )
    } == {"temperature", "blood_pressure", "pulse_oximeter", "heart_rate", "weight", "battery", "device_information"}
    assert all(hasattr(gatt, name) for name in gatt.__all__)


def test_the_decoders_are_pure() -> None:
    code = (
        "import json, sys; import gateway.devices.gatt; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('asyncio', 'socket', 'selectors', 'bleak', 'aiohttp', 'aiortc', 'dbus_fast'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(loaded.stdout) == []
