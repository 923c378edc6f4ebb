"""Temperature Measurement (0x2A1C) and Temperature Type (0x2A1D).

Vectors and their sources:
- [NordicHT] NordicSemiconductor/Android-BLE-Common-Library,
  ble-common/src/test/java/no/nordicsemi/android/ble/common/callback/ht/TemperatureMeasurementDataCallbackTest.java
  (06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04 = 37.60 Cel, 2012-12-05 11:50:27, finger; the same less its last byte
  is invalid).
- [NordicTT] same repository, .../callback/ht/TemperatureTypeDataCallbackTest.java ([3] = ear; [3, 0] invalid).
- [NordicSpecial] NordicSemiconductor/Android-BLE-Library, ble/src/main/java/no/nordicsemi/android/ble/data/Data.java
  for the FLOAT special values; [Spezi] StanfordSpezi/SpeziBluetooth,
  Sources/SpeziBluetoothServices/Characteristics/TemperatureType.swift for the type numbering 1..9.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.devices.gatt import (
    TEMPERATURE_MEASUREMENT,
    TemperatureType,
    decode,
    decode_temperature,
    decode_temperature_type,
)
from gateway.devices.readings import DeviceIdentity, NoValue, ReadingKind, TimeSource
from gateway.errors import DecodeError

DEVICE = DeviceIdentity(address="00:11:22:33:44:55", name="thermometer")
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
FLOAT_36_5 = bytes([0x6D, 0x01, 0x00, 0xFF])


def temp(payload: bytes) -> object:
    return decode_temperature(payload, device=DEVICE, received_at=NOW)


def test_nordic_vector() -> None:
    reading = decode(
        TEMPERATURE_MEASUREMENT,
        bytes.fromhex("06B00E00FEDC070C050B321B04"),  # [NordicHT]
        device=DEVICE,
        received_at=NOW,
    )
    assert reading.kind is ReadingKind.BODY_TEMPERATURE
    assert [(q.code, q.value, q.unit) for q in reading.quantities] == [("value", 37.6, "Cel")]
    assert reading.measured_at == datetime(2012, 12, 5, 11, 50, 27, tzinfo=UTC)
    assert reading.time_source is TimeSource.DEVICE
    assert dict(reading.details) == {"temperature-type": "finger"}
    assert reading.status == frozenset()
    assert reading.device is DEVICE


def test_nordic_truncated_vector_is_rejected() -> None:
    with pytest.raises(DecodeError) as info:
        temp(bytes.fromhex("06B00E00FEDC070C050B321B"))  # [NordicHT] onInvalidDataReceived
    assert str(info.value) == "0x2A1C Temperature Measurement: payload is 12 bytes, flags 0x06 need 13"


def test_minimal_celsius_uses_reception_time() -> None:
    reading = decode_temperature(bytes([0x00]) + FLOAT_36_5, device=DEVICE, received_at=NOW)
    assert reading.primary.value == 36.5
    assert reading.primary.unit == "Cel"
    assert reading.measured_at == NOW
    assert reading.time_source is TimeSource.RECEPTION
    assert reading.details == ()


def test_fahrenheit() -> None:
    reading = decode_temperature(bytes([0x01, 0xDA, 0x03, 0x00, 0xFF]), device=DEVICE, received_at=NOW)
    assert (reading.primary.value, reading.primary.unit) == (98.6, "[degF]")


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        (1, "armpit"),
        (2, "body"),
        (3, "ear"),
        (4, "finger"),
        (5, "gastrointestinal-tract"),
        (6, "mouth"),
        (7, "rectum"),
        (8, "toe"),
        (9, "tympanum"),
    ],
)
def test_every_temperature_type(raw: int, label: str) -> None:
    reading = decode_temperature(bytes([0x04]) + FLOAT_36_5 + bytes([raw]), device=DEVICE, received_at=NOW)
    assert dict(reading.details) == {"temperature-type": label}
    assert TemperatureType(raw).label == label


@pytest.mark.parametrize("raw", [0, 10, 255])
def test_reserved_temperature_type(raw: int) -> None:
    with pytest.raises(DecodeError, match=f"temperature type {raw} is reserved"):
        decode_temperature(bytes([0x04]) + FLOAT_36_5 + bytes([raw]), device=DEVICE, received_at=NOW)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (bytes([0xFF, 0xFF, 0x7F, 0x00]), NoValue.NAN),  # [NordicSpecial]
        (bytes([0x00, 0x00, 0x80, 0x00]), NoValue.NRES),
        (bytes([0xFE, 0xFF, 0x7F, 0x00]), NoValue.POSITIVE_INFINITY),
        (bytes([0x02, 0x00, 0x80, 0x00]), NoValue.NEGATIVE_INFINITY),
        (bytes([0x01, 0x00, 0x80, 0x00]), NoValue.RESERVED),
    ],
)
def test_special_values_carry_no_number(value: bytes, reason: NoValue) -> None:
    reading = decode_temperature(bytes([0x00]) + value, device=DEVICE, received_at=NOW)
    assert reading.primary.value is None
    assert reading.primary.no_value is reason
    assert reading.to_wire()["value"] is None
    assert reading.to_wire()["no_value"] == reason.value


@pytest.mark.parametrize(
    "date_time",
    [
        bytes.fromhex("0000 0C 05 0B 32 1B"),  # year not known
        bytes.fromhex("DC07 00 05 0B 32 1B"),  # month not known
        bytes.fromhex("DC07 0C 00 0B 32 1B"),  # day not known
        bytes(7),  # nothing known
    ],
)
def test_unknown_date_falls_back_to_reception_time(date_time: bytes) -> None:
    reading = decode_temperature(bytes([0x02]) + FLOAT_36_5 + date_time, device=DEVICE, received_at=NOW)
    assert reading.measured_at == NOW
    assert reading.time_source is TimeSource.RECEPTION
    assert reading.status == frozenset({"device-time-unknown"})


def test_midnight_is_a_known_time() -> None:
    reading = decode_temperature(
        bytes([0x02]) + FLOAT_36_5 + bytes.fromhex("E907 01 1F 00 00 00"), device=DEVICE, received_at=NOW
    )
    assert reading.measured_at == datetime(2025, 1, 31, 0, 0, 0, tzinfo=UTC)
    assert reading.time_source is TimeSource.DEVICE


@pytest.mark.parametrize(
    ("date_time", "message"),
    [
        ("E907 0D 01 00 00 00", "timestamp month 13 is out of range 1..12 (or 0, not known)"),
        ("E907 01 20 00 00 00", "timestamp day 32 is out of range 1..31 (or 0, not known)"),
        ("E907 01 01 18 00 00", "timestamp hours 24 is out of range 0..23"),
        ("E907 01 01 00 3C 00", "timestamp minutes 60 is out of range 0..59"),
        ("E907 01 01 00 00 3C", "timestamp seconds 60 is out of range 0..59"),
        ("2D06 01 01 00 00 00", "timestamp year 1581 is out of range 1582..9999 (or 0, not known)"),
        ("E707 02 1E 00 00 00", "timestamp 2023-02-30 is not a calendar date"),
    ],
)
def test_bad_timestamps(date_time: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        temp(bytes([0x02]) + FLOAT_36_5 + bytes.fromhex(date_time))
    assert str(info.value) == f"0x2A1C Temperature Measurement: {message}"


def test_device_time_is_utc_whatever_the_reception_zone() -> None:
    paris = timezone(timedelta(hours=1))
    reading = decode_temperature(
        bytes.fromhex("06B00E00FEDC070C050B321B04"), device=DEVICE, received_at=NOW.astimezone(paris)
    )
    assert reading.measured_at.utcoffset() == timedelta(0)


def test_reserved_flag_bits_are_ignored() -> None:
    reading = decode_temperature(bytes([0xF8]) + FLOAT_36_5, device=DEVICE, received_at=NOW)
    assert reading.primary.value == 36.5


def test_trailing_bytes() -> None:
    with pytest.raises(DecodeError) as info:
        temp(bytes([0x00]) + FLOAT_36_5 + b"\x00\x00")
    assert str(info.value) == (
        "0x2A1C Temperature Measurement: payload is 7 bytes, flags 0x00 need 5 (2 trailing bytes)"
    )


def test_empty_payload() -> None:
    with pytest.raises(DecodeError, match="payload is empty, need at least the flags byte"):
        temp(b"")


def test_naive_reception_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="received_at must be timezone-aware"):
        decode_temperature(bytes([0x00]) + FLOAT_36_5, device=DEVICE, received_at=datetime(2025, 1, 1))


# --- Temperature Type characteristic --------------------------------------------------------------------------


def test_temperature_type_characteristic() -> None:
    assert decode_temperature_type(bytes([3])) is TemperatureType.EAR  # [NordicTT]


def test_temperature_type_too_long() -> None:
    with pytest.raises(DecodeError, match="0x2A1D Temperature Type: payload is 2 bytes, need exactly 1"):
        decode_temperature_type(bytes([3, 0]))  # [NordicTT] onInvalidDataReceived


def test_temperature_type_reserved() -> None:
    with pytest.raises(DecodeError, match="temperature type 0 is reserved"):
        decode_temperature_type(bytes([0]))
