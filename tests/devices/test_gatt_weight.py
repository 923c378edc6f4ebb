"""Weight Measurement (0x2A9D).

Vectors and their sources:
- [SigPython] RonanB96/bluetooth-sig-python, tests/gatt/characteristics/test_weight_measurement.py, tests 1-3:
  00 B0 36 = 70.0 kg; 01 54 3D = 157.00 lb; 02 B0 36 E7 07 0C 19 0E 1E 2D = 70.0 kg at 2023-12-25 14:30:45.
  (Its tests 4-6 use separate BMI and height flags, which is not the specification's layout: bit 3 announces
  BMI and height together. They are not used here.)
- [SpeziWeight] StanfordSpezi/SpeziBluetooth, Sources/SpeziBluetoothServices/Characteristics/WeightMeasurement.swift
  (flags bit 0 imperial, 1 timestamp, 2 user id, 3 BMI and height; resolutions 0.005 kg / 0.01 lb, height
  0.001 m / 0.1 in, BMI 0.1) and Tests/SpeziBluetoothServicesTests/WeightScaleTests.swift (weight 123, BMI 230,
  height 1760, user 23: bytes below laid out by that encoder).
- Bluetooth GATT Specification Supplement, Weight Measurement: "The special value of 0xFFFF can be used to
  indicate 'Measurement Unsuccessful'" (quoted in several open-source parsers).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.devices.gatt import WEIGHT_MEASUREMENT, decode, decode_weight
from gateway.devices.readings import DeviceIdentity, NoValue, Reading, ReadingKind, TimeSource
from gateway.errors import DecodeError

DEVICE = DeviceIdentity(address="00:11:22:33:44:55", manufacturer="A&D", model="UC-352BLE")
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def weight(payload: bytes) -> Reading:
    return decode_weight(payload, device=DEVICE, received_at=NOW)


def values(reading: Reading) -> list[tuple[str, float | None, str]]:
    return [(q.code, q.value, q.unit) for q in reading.quantities]


def test_sig_python_kg() -> None:
    reading = decode(WEIGHT_MEASUREMENT, bytes([0x00, 0xB0, 0x36]), device=DEVICE, received_at=NOW)  # [SigPython]
    assert reading.kind is ReadingKind.BODY_WEIGHT
    assert values(reading) == [("value", 70.0, "kg")]
    assert reading.time_source is TimeSource.RECEPTION


def test_sig_python_lb() -> None:
    assert values(weight(bytes([0x01, 0x54, 0x3D]))) == [("value", 157.0, "[lb_av]")]  # [SigPython]


def test_sig_python_timestamp() -> None:
    reading = weight(bytes([0x02, 0xB0, 0x36, 0xE7, 0x07, 0x0C, 0x19, 0x0E, 0x1E, 0x2D]))  # [SigPython]
    assert reading.measured_at == datetime(2023, 12, 25, 14, 30, 45, tzinfo=UTC)
    assert reading.time_source is TimeSource.DEVICE


def test_spezi_all_fields_si() -> None:
    # [SpeziWeight] weight 123 (x 0.005 kg), 13:12:12 with unknown date, user 23, BMI 230 (x 0.1), height 1760 mm.
    payload = bytes([0x0E, 123, 0]) + bytes([0, 0, 0, 0, 13, 12, 12]) + bytes([23]) + bytes([230, 0, 0xE0, 0x06])
    reading = weight(payload)
    assert values(reading) == [("value", 0.615, "kg"), ("bmi", 23.0, "kg/m2"), ("height", 1.76, "m")]
    assert dict(reading.details) == {"user-id": 23}
    assert reading.status == frozenset({"device-time-unknown"})
    assert reading.time_source is TimeSource.RECEPTION


def test_imperial_bmi_and_height_in_inches() -> None:
    reading = weight(bytes([0x09, 0x54, 0x3D, 0xF5, 0x00, 0xA8, 0x02]))
    assert values(reading) == [("value", 157.0, "[lb_av]"), ("bmi", 24.5, "kg/m2"), ("height", 68.0, "[in_i]")]


def test_resolution_is_exact() -> None:
    assert weight(bytes([0x00, 0xB1, 0x36])).primary.value == 70.005
    assert weight(bytes([0x00, 0x01, 0x00])).primary.value == 0.005
    assert weight(bytes([0x01, 0x1E, 0x56])).primary.value == 220.46


def test_measurement_unsuccessful() -> None:
    reading = weight(bytes([0x00, 0xFF, 0xFF]))
    assert reading.primary.value is None
    assert reading.primary.no_value is NoValue.NAN
    assert reading.status == frozenset({"measurement-unsuccessful"})


def test_unknown_user() -> None:
    reading = weight(bytes([0x04, 0xB0, 0x36, 0xFF]))
    assert reading.status == frozenset({"user-unknown"})
    assert reading.details == ()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (bytes([0x00, 0x01]), "payload is 2 bytes, flags 0x00 need 3"),
        (bytes([0x08, 0xB0, 0x36, 0xF5, 0x00]), "payload is 5 bytes, flags 0x08 need 7"),
        (bytes([0x02, 0xB0, 0x36, 0xEA, 0x07]), "payload is 5 bytes, flags 0x02 need 10"),
        (bytes([0x00, 0xB0, 0x36, 0x00]), "payload is 4 bytes, flags 0x00 need 3 (1 trailing bytes)"),
    ],
)
def test_length_errors(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        weight(payload)
    assert str(info.value) == f"0x2A9D Weight Measurement: {message}"


def test_reserved_flag_bits_are_ignored() -> None:
    assert weight(bytes([0xF0, 0xB0, 0x36])).primary.value == 70.0
