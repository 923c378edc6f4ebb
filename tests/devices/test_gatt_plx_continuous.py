"""PLX Continuous Measurement (0x2A5F).

Vectors and their sources:
- [SpeziPLX] StanfordSpezi/SpeziBluetooth, Tests/SpeziBluetoothServicesTests/PLXTests.swift:
  testVerySimpleMeasurementCoding ([0, 100, 0, 90, 0] and [0, 232, 243, 132, 243] = SpO2 100, pulse 90),
  testSimpleMeasurementCoding ([28, 95, 0, 90, 0, 32, 0, 0, 0, 0, 87, 240] = 95, 90, measurement ongoing,
  no device status, PAI 8.7), testFullMeasurementCoding ([31, 222, 243, 202, 243, 202, 243, 90, 245, 212, 243,
  178, 242, 32, 1, 0, 0, 0, 122, 227] = 99/97, fast 97/137, slow 98/69, ongoing + fully qualified, PAI 8.9).
- [SpeziFlags] same repository, Sources/SpeziBluetoothServices/Characteristics/PLXContinuousMeasurement.swift
  (flags: bit 0 fast, 1 slow, 2 measurement status, 3 device and sensor status, 4 PAI).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.devices.gatt import PLX_CONTINUOUS_MEASUREMENT, decode, decode_plx_continuous
from gateway.devices.readings import DeviceIdentity, NoValue, Reading, ReadingKind, TimeSource
from gateway.devices.sfloat import encode_sfloat
from gateway.errors import DecodeError

DEVICE = DeviceIdentity(address="00:11:22:33:44:55", name="oximeter")
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def cont(payload: bytes) -> Reading:
    return decode_plx_continuous(payload, device=DEVICE, received_at=NOW)


def values(reading: Reading) -> list[tuple[str, float | None, str]]:
    return [(q.code, q.value, q.unit) for q in reading.quantities]


@pytest.mark.parametrize("payload", [bytes([0, 100, 0, 90, 0]), bytes([0, 232, 243, 132, 243])])
def test_spezi_very_simple(payload: bytes) -> None:
    reading = decode(PLX_CONTINUOUS_MEASUREMENT, payload, device=DEVICE, received_at=NOW)  # [SpeziPLX]
    assert reading.kind is ReadingKind.OXYGEN_SATURATION
    assert values(reading) == [("spo2", 100.0, "%"), ("pulse-rate", 90.0, "/min")]
    assert reading.measured_at == NOW
    assert reading.time_source is TimeSource.RECEPTION


def test_spezi_simple() -> None:
    reading = cont(bytes([28, 95, 0, 90, 0, 32, 0, 0, 0, 0, 87, 240]))  # [SpeziPLX]
    assert values(reading) == [("spo2", 95.0, "%"), ("pulse-rate", 90.0, "/min")]
    assert reading.status == frozenset({"measurement-ongoing"})
    assert dict(reading.details) == {"pulse-amplitude-index": 8.7}


def test_spezi_full() -> None:
    reading = cont(
        bytes([31, 222, 243, 202, 243, 202, 243, 90, 245, 212, 243, 178, 242, 32, 1, 0, 0, 0, 122, 227])
    )  # [SpeziPLX]
    assert values(reading) == [
        ("spo2", 99.0, "%"),
        ("pulse-rate", 97.0, "/min"),
        ("spo2-fast", 97.0, "%"),
        ("pulse-rate-fast", 137.0, "/min"),
        ("spo2-slow", 98.0, "%"),
        ("pulse-rate-slow", 69.0, "/min"),
    ]
    assert reading.status == frozenset({"measurement-ongoing", "fully-qualified-data"})
    assert dict(reading.details) == {"pulse-amplitude-index": 8.9}


def test_slow_without_fast() -> None:
    reading = cont(bytes([0x02, 95, 0, 90, 0, 96, 0, 88, 0]))
    assert [q.code for q in reading.quantities] == ["spo2", "pulse-rate", "spo2-slow", "pulse-rate-slow"]
    assert values(reading)[2:] == [("spo2-slow", 96.0, "%"), ("pulse-rate-slow", 88.0, "/min")]


def test_device_and_sensor_status() -> None:
    reading = cont(bytes([0x08, 95, 0, 90, 0]) + (1 << 15 | 1 << 11).to_bytes(3, "little"))
    assert reading.status == frozenset({"sensor-disconnected", "sensor-unconnected-to-user"})


def test_measurement_status_all_bits() -> None:
    reading = cont(bytes([0x04, 95, 0, 90, 0, 0xE0, 0xFF]))
    assert len(reading.status) == 11
    assert "invalid-measurement-detected" in reading.status


@pytest.mark.parametrize("reason", list(NoValue))
def test_special_values(reason: NoValue) -> None:
    reading = cont(bytes([0x03]) + encode_sfloat(reason) * 6)
    assert all(q.no_value is reason and q.value is None for q in reading.quantities)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (bytes([0x01, 95, 0, 90, 0]), "payload is 5 bytes, flags 0x01 need 9"),
        (bytes([0x1F, 95, 0, 90, 0]), "payload is 5 bytes, flags 0x1F need 20"),
        (bytes([0x00, 95, 0, 90, 0, 0]), "payload is 6 bytes, flags 0x00 need 5 (1 trailing bytes)"),
        (b"", "payload is empty, need at least the flags byte"),
    ],
)
def test_length_errors(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        cont(payload)
    assert str(info.value) == f"0x2A5F PLX Continuous Measurement: {message}"
