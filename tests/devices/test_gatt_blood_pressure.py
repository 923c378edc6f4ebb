"""Blood Pressure Measurement (0x2A35).

Vectors and their sources:
- [NordicBP] NordicSemiconductor/Android-BLE-Common-Library,
  ble-common/src/test/java/no/nordicsemi/android/ble/common/callback/bps/BloodPressureMeasurementDataCallbackTest.java:
  _full (1E 8A 00 58 00 78 00 00 00 04 11 14 29 3B 3C 00 01 27 00), _some (15 BD F0 0B 00 9F F0 3C 00 12 00),
  _minimal (00 BD F0 0B 00 9F F0), onInvalidDataReceived_toShort (01..06) and _noTimestamp (03 02 .. 07).
- [NordicStatus] NordicSemiconductor/Android-BLE-Common-Library (profile BloodPressureMeasurementCallback.Status):
  bit 0 body movement, bit 1 cuff too loose, bit 2 irregular pulse, bits 3-4 pulse-rate range, bit 5 position.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.devices.gatt import BLOOD_PRESSURE_MEASUREMENT, decode, decode_blood_pressure
from gateway.devices.readings import DeviceIdentity, NoValue, Reading, ReadingKind, TimeSource
from gateway.errors import DecodeError

DEVICE = DeviceIdentity(address="00:11:22:33:44:55", manufacturer="A&D", model="UA-651BLE")
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
MMHG_120_80_93 = bytes.fromhex("7800 5000 5D00")


def bp(payload: bytes) -> Reading:
    return decode_blood_pressure(payload, device=DEVICE, received_at=NOW)


def values(reading: Reading) -> list[tuple[str, float | None, str]]:
    return [(q.code, q.value, q.unit) for q in reading.quantities]


def test_nordic_full() -> None:
    reading = decode(
        BLOOD_PRESSURE_MEASUREMENT,
        bytes.fromhex("1E8A00580078000000041114293B3C00012700"),  # [NordicBP] _full
        device=DEVICE,
        received_at=NOW,
    )
    assert reading.kind is ReadingKind.BLOOD_PRESSURE
    assert values(reading) == [
        ("systolic", 138.0, "mm[Hg]"),
        ("diastolic", 88.0, "mm[Hg]"),
        ("mean", 120.0, "mm[Hg]"),
        ("pulse-rate", 60.0, "/min"),
    ]
    # Nordic keeps a calendar without a year; our rule: year unknown -> the device time is not usable.
    assert reading.measured_at == NOW
    assert reading.time_source is TimeSource.RECEPTION
    assert reading.status == frozenset(
        {
            "device-time-unknown",
            "body-movement-detected",
            "cuff-too-loose",
            "irregular-pulse-detected",
            "improper-measurement-position",
        }
    )
    assert dict(reading.details) == {"user-id": 1, "pulse-rate-range": "within-range"}


def test_nordic_some_kpa() -> None:
    reading = bp(bytes.fromhex("15BDF00B009FF03C001200"))  # [NordicBP] _some
    assert values(reading) == [
        ("systolic", 18.9, "kPa"),
        ("diastolic", 11.0, "kPa"),
        ("mean", 15.9, "kPa"),
        ("pulse-rate", 60.0, "/min"),
    ]
    assert reading.status == frozenset({"cuff-too-loose", "pulse-rate-below-lower-limit"})
    assert dict(reading.details) == {"pulse-rate-range": "below-lower-limit"}
    assert reading.time_source is TimeSource.RECEPTION


def test_nordic_minimal() -> None:
    reading = bp(bytes.fromhex("00BDF00B009FF0"))  # [NordicBP] _minimal
    assert values(reading) == [("systolic", 18.9, "mm[Hg]"), ("diastolic", 11.0, "mm[Hg]"), ("mean", 15.9, "mm[Hg]")]
    assert reading.status == frozenset()
    assert reading.details == ()


def test_nordic_too_short() -> None:
    with pytest.raises(DecodeError) as info:
        bp(bytes([1, 2, 3, 4, 5, 6]))  # [NordicBP] onInvalidDataReceived_toShort
    assert str(info.value) == "0x2A35 Blood Pressure Measurement: payload is 6 bytes, flags 0x01 need 7"


def test_nordic_flags_announce_a_missing_timestamp() -> None:
    with pytest.raises(DecodeError) as info:
        bp(bytes([3, 2, 3, 4, 5, 6, 7]))  # [NordicBP] onInvalidDataReceived_noTimestamp
    assert str(info.value) == "0x2A35 Blood Pressure Measurement: payload is 7 bytes, flags 0x03 need 14"


def test_the_brief_example_message() -> None:
    with pytest.raises(DecodeError) as info:
        bp(bytes([0x02, 0x78, 0x00, 0x50, 0x00]))
    assert str(info.value) == "0x2A35 Blood Pressure Measurement: payload is 5 bytes, flags 0x02 need 14"


def test_device_time() -> None:
    reading = bp(bytes([0x02]) + MMHG_120_80_93 + bytes.fromhex("E907 03 01 0B 1E 05"))
    assert reading.measured_at == datetime(2025, 3, 1, 11, 30, 5, tzinfo=UTC)
    assert reading.time_source is TimeSource.DEVICE


@pytest.mark.parametrize(
    ("bit", "name"),
    [
        (0, "body-movement-detected"),  # [NordicStatus]
        (1, "cuff-too-loose"),
        (2, "irregular-pulse-detected"),
        (5, "improper-measurement-position"),
    ],
)
def test_each_status_bit(bit: int, name: str) -> None:
    reading = bp(bytes([0x10]) + MMHG_120_80_93 + (1 << bit).to_bytes(2, "little"))
    assert reading.status == frozenset({name})
    assert dict(reading.details) == {"pulse-rate-range": "within-range"}


@pytest.mark.parametrize(
    ("range_bits", "status", "detail"),
    [
        (0b00, frozenset(), "within-range"),
        (0b01, frozenset({"pulse-rate-exceeds-upper-limit"}), "exceeds-upper-limit"),
        (0b10, frozenset({"pulse-rate-below-lower-limit"}), "below-lower-limit"),
    ],
)
def test_pulse_rate_range(range_bits: int, status: frozenset[str], detail: str) -> None:
    reading = bp(bytes([0x10]) + MMHG_120_80_93 + (range_bits << 3).to_bytes(2, "little"))
    assert reading.status == status
    assert dict(reading.details) == {"pulse-rate-range": detail}


def test_reserved_pulse_rate_range() -> None:
    with pytest.raises(DecodeError, match="measurement status 0x0018 has the reserved pulse-rate range 3"):
        bp(bytes([0x10]) + MMHG_120_80_93 + bytes([0x18, 0x00]))


def test_reserved_status_bits_are_ignored() -> None:
    reading = bp(bytes([0x10]) + MMHG_120_80_93 + bytes([0xC0, 0xFF]))
    assert reading.status == frozenset()


def test_unknown_user() -> None:
    reading = bp(bytes([0x08]) + MMHG_120_80_93 + bytes([0xFF]))
    assert reading.status == frozenset({"user-unknown"})
    assert reading.details == ()


def test_known_user() -> None:
    assert dict(bp(bytes([0x08]) + MMHG_120_80_93 + bytes([0x02])).details) == {"user-id": 2}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (bytes([0xFF, 0x07]), NoValue.NAN),
        (bytes([0x00, 0x08]), NoValue.NRES),
        (bytes([0xFE, 0x07]), NoValue.POSITIVE_INFINITY),
        (bytes([0x02, 0x08]), NoValue.NEGATIVE_INFINITY),
        (bytes([0x01, 0x08]), NoValue.RESERVED),
    ],
)
def test_special_values_in_every_field(raw: bytes, reason: NoValue) -> None:
    # Monitors commonly send NaN for the mean arterial pressure or the pulse when they did not compute it.
    reading = bp(bytes([0x04]) + raw * 4)
    assert [q.no_value for q in reading.quantities] == [reason] * 4
    assert all(q.value is None for q in reading.quantities)


def test_trailing_bytes() -> None:
    with pytest.raises(DecodeError, match="payload is 9 bytes, flags 0x00 need 7 \\(2 trailing bytes\\)"):
        bp(bytes([0x00]) + MMHG_120_80_93 + b"\x01\x02")


def test_every_optional_field_together() -> None:
    payload = (
        bytes([0x1F])
        + MMHG_120_80_93
        + bytes.fromhex("E907 03 01 0B 1E 05")
        + bytes([0x48, 0x00])
        + bytes([0x03])
        + bytes([0x09, 0x00])
    )
    reading = bp(payload)
    assert values(reading)[3] == ("pulse-rate", 72.0, "/min")
    assert values(reading)[0] == ("systolic", 120.0, "kPa")
    assert reading.status == frozenset({"body-movement-detected", "pulse-rate-exceeds-upper-limit"})
    assert dict(reading.details) == {"user-id": 3, "pulse-rate-range": "exceeds-upper-limit"}
    assert reading.time_source is TimeSource.DEVICE
