"""Heart Rate Measurement (0x2A37).

Vectors and their sources:
- [NordicHR] NordicSemiconductor/Android-BLE-Common-Library,
  ble-common/src/test/java/no/nordicsemi/android/ble/common/callback/hr/HeartRateMeasurementDataCallbackTest.java:
  _simple [0, 85] = 85 bpm, contact not supported; _noContact [0x04, 0xFF] = 255 bpm, contact supported and not
  detected; _uint8 [0b11110, 85, 50, 0, 33, 0] = 85, contact, 50 kJ, RR [33]; _uint16 [0b11111, 1, 1, 50, 1,
  1, 0, 2, 1, 0xFF, 0xFF] = 257, contact, 306 kJ, RR [1, 258, 65535]; onInvalidDataReceived [0b10111, 1, 1]
  (RR flag with no interval).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.devices.gatt import HEART_RATE_MEASUREMENT, decode, decode_heart_rate
from gateway.devices.readings import DeviceIdentity, Reading, ReadingKind, TimeSource
from gateway.errors import DecodeError

DEVICE = DeviceIdentity(address="00:11:22:33:44:55", name="strap")
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def hr(payload: bytes) -> Reading:
    return decode_heart_rate(payload, device=DEVICE, received_at=NOW)


def test_nordic_simple() -> None:
    reading = decode(HEART_RATE_MEASUREMENT, bytes([0, 85]), device=DEVICE, received_at=NOW)  # [NordicHR]
    assert reading.kind is ReadingKind.HEART_RATE
    assert [(q.code, q.value, q.unit) for q in reading.quantities] == [("value", 85.0, "/min")]
    assert reading.status == frozenset()
    assert reading.details == ()
    assert reading.measured_at == NOW
    assert reading.time_source is TimeSource.RECEPTION


def test_nordic_no_contact() -> None:
    reading = hr(bytes([0x04, 0xFF]))  # [NordicHR]
    assert reading.primary.value == 255.0
    assert reading.status == frozenset({"sensor-contact-supported", "sensor-contact-not-detected"})


def test_nordic_uint8() -> None:
    reading = hr(bytes([0b11110, 85, 50, 0, 33, 0]))  # [NordicHR]
    assert reading.primary.value == 85.0
    assert reading.status == frozenset({"sensor-contact-supported", "sensor-contact-detected"})
    assert dict(reading.details) == {"energy-expended-kj": 50, "rr-intervals": (33 / 1024,)}


def test_nordic_uint16() -> None:
    reading = hr(bytes([0b11111, 1, 1, 50, 1, 1, 0, 2, 1, 0xFF, 0xFF]))  # [NordicHR]
    assert reading.primary.value == 257.0
    assert reading.status == frozenset({"sensor-contact-supported", "sensor-contact-detected"})
    details = dict(reading.details)
    assert details["energy-expended-kj"] == 306
    assert details["rr-intervals"] == (1 / 1024, 258 / 1024, 65535 / 1024)


def test_nordic_invalid_rr_flag_without_interval() -> None:
    with pytest.raises(DecodeError) as info:
        hr(bytes([0b10111, 1, 1]))  # [NordicHR] onInvalidDataReceived
    assert str(info.value) == (
        "0x2A37 Heart Rate Measurement: payload is 3 bytes, flags 0x17 need 3 plus 2 per RR interval (at least one)"
    )


def test_sensor_contact_not_supported_values() -> None:
    assert hr(bytes([0x00, 60])).status == frozenset()
    assert hr(bytes([0x02, 60])).status == frozenset()  # bit 1 alone: feature not supported


def test_rr_intervals_are_exact_seconds() -> None:
    reading = hr(bytes([0x10, 60, 0x00, 0x04, 0x00, 0x02]))
    assert dict(reading.details) == {"rr-intervals": (1.0, 0.5)}


def test_rr_intervals_on_the_wire_are_a_json_array_of_seconds() -> None:
    reading = hr(bytes([0x10, 60, 0x00, 0x04, 0x00, 0x02, 0x21, 0x00]))
    wire = json.loads(json.dumps(reading.to_wire()))
    assert wire["details"] == {"rr-intervals": [1.0, 0.5, 33 / 1024]}
    assert hash(reading) == hash(hr(bytes([0x10, 60, 0x00, 0x04, 0x00, 0x02, 0x21, 0x00])))  # still a value


def test_odd_rr_bytes() -> None:
    with pytest.raises(DecodeError, match="payload is 5 bytes, flags 0x10 need 2 plus 2 per RR interval"):
        hr(bytes([0x10, 60, 0x00, 0x04, 0x00]))


def test_energy_without_rr() -> None:
    assert dict(hr(bytes([0x08, 60, 0xFF, 0xFF])).details) == {"energy-expended-kj": 65535}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "payload is empty, need at least the flags byte"),
        (bytes([0x00]), "payload is 1 bytes, flags 0x00 need 2"),
        (bytes([0x01, 60]), "payload is 2 bytes, flags 0x01 need 3"),
        (bytes([0x08, 60, 1]), "payload is 3 bytes, flags 0x08 need 4"),
        (bytes([0x00, 60, 0]), "payload is 3 bytes, flags 0x00 need 2 (1 trailing bytes)"),
    ],
)
def test_length_errors(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        hr(payload)
    assert str(info.value) == f"0x2A37 Heart Rate Measurement: {message}"
