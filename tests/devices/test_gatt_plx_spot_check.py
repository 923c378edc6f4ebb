"""PLX Spot-check Measurement (0x2A5E).

Vectors and their sources:
- [SpeziPLX] StanfordSpezi/SpeziBluetooth, Tests/SpeziBluetoothServicesTests/PLXTests.swift,
  testSpotCheckMeasurementCoding: 15 172 243 190 245 232 7 11 29 23 8 57 32 64 34 0 0 102 227 = SpO2 94,
  pulse 147, 2024-11-29 23:08:57, measurement ongoing + questionable measurement, equipment malfunction + low
  perfusion, pulse amplitude index 8.7.
- [SpeziFlags] same repository, Sources/SpeziBluetoothServices/Characteristics/PLXSpotCheckMeasurement.swift
  (flags: bit 0 timestamp, 1 measurement status, 2 device and sensor status, 3 PAI, 4 device clock not set)
  and PLXContinuousMeasurement.swift (MeasurementStatus bits 5..15, DeviceAndSensorStatus bits 0..15).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.devices.gatt import PLX_SPOT_CHECK_MEASUREMENT, decode, decode_plx_spot_check
from gateway.devices.readings import DeviceIdentity, NoValue, Reading, ReadingKind, TimeSource
from gateway.devices.sfloat import encode_sfloat
from gateway.errors import DecodeError

DEVICE = DeviceIdentity(address="00:11:22:33:44:55", name="oximeter")
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
SPO2_97_PR_72 = bytes.fromhex("6100 4800")
TIME_2024 = bytes.fromhex("E807 0B 1D 17 08 39")

# Independent of gateway.devices.gatt's tables: the names this project promises, at the bits [SpeziFlags] gives.
MEASUREMENT_STATUS = {
    5: "measurement-ongoing",
    6: "early-estimated-data",
    7: "validated-data",
    8: "fully-qualified-data",
    9: "data-from-measurement-storage",
    10: "data-for-demonstration",
    11: "data-for-testing",
    12: "calibration-ongoing",
    13: "measurement-unavailable",
    14: "questionable-measurement-detected",
    15: "invalid-measurement-detected",
}
DEVICE_SENSOR_STATUS = {
    0: "extended-display-update-ongoing",
    1: "equipment-malfunction-detected",
    2: "signal-processing-irregularity-detected",
    3: "inadequate-signal-detected",
    4: "poor-signal-detected",
    5: "low-perfusion-detected",
    6: "erratic-signal-detected",
    7: "nonpulsatile-signal-detected",
    8: "questionable-pulse-detected",
    9: "signal-analysis-ongoing",
    10: "sensor-interference-detected",
    11: "sensor-unconnected-to-user",
    12: "unknown-sensor-connected",
    13: "sensor-displaced",
    14: "sensor-malfunctioning",
    15: "sensor-disconnected",
}


def spot(payload: bytes) -> Reading:
    return decode_plx_spot_check(payload, device=DEVICE, received_at=NOW)


def test_spezi_vector() -> None:
    reading = decode(
        PLX_SPOT_CHECK_MEASUREMENT,
        bytes([15, 172, 243, 190, 245, 232, 7, 11, 29, 23, 8, 57, 32, 64, 34, 0, 0, 102, 227]),  # [SpeziPLX]
        device=DEVICE,
        received_at=NOW,
    )
    assert reading.kind is ReadingKind.OXYGEN_SATURATION
    assert [(q.code, q.value, q.unit) for q in reading.quantities] == [
        ("spo2", 94.0, "%"),
        ("pulse-rate", 147.0, "/min"),
    ]
    assert reading.measured_at == datetime(2024, 11, 29, 23, 8, 57, tzinfo=UTC)
    assert reading.time_source is TimeSource.DEVICE
    assert reading.status == frozenset(
        {
            "measurement-ongoing",
            "questionable-measurement-detected",
            "equipment-malfunction-detected",
            "low-perfusion-detected",
        }
    )
    assert dict(reading.details) == {"pulse-amplitude-index": 8.7}


def test_minimal() -> None:
    reading = spot(bytes([0x00]) + SPO2_97_PR_72)
    assert [q.value for q in reading.quantities] == [97.0, 72.0]
    assert reading.time_source is TimeSource.RECEPTION
    assert reading.status == frozenset()


@pytest.mark.parametrize(("bit", "name"), sorted(MEASUREMENT_STATUS.items()))
def test_each_measurement_status_bit(bit: int, name: str) -> None:
    reading = spot(bytes([0x02]) + SPO2_97_PR_72 + (1 << bit).to_bytes(2, "little"))
    assert reading.status == frozenset({name})


@pytest.mark.parametrize(("bit", "name"), sorted(DEVICE_SENSOR_STATUS.items()))
def test_each_device_and_sensor_status_bit(bit: int, name: str) -> None:
    reading = spot(bytes([0x04]) + SPO2_97_PR_72 + (1 << bit).to_bytes(3, "little"))
    assert reading.status == frozenset({name})


def test_reserved_status_bits_are_ignored() -> None:
    reading = spot(bytes([0x06]) + SPO2_97_PR_72 + bytes([0x1F, 0x00]) + bytes([0x00, 0x00, 0xFF]))
    assert reading.status == frozenset()


def test_device_clock_not_set_means_the_timestamp_is_not_trusted() -> None:
    reading = spot(bytes([0x11]) + SPO2_97_PR_72 + TIME_2024)
    assert reading.measured_at == NOW
    assert reading.time_source is TimeSource.RECEPTION
    assert reading.status == frozenset({"device-clock-not-set"})


def test_device_clock_not_set_without_timestamp() -> None:
    reading = spot(bytes([0x10]) + SPO2_97_PR_72)
    assert reading.status == frozenset({"device-clock-not-set"})
    assert reading.time_source is TimeSource.RECEPTION


def test_unknown_date() -> None:
    reading = spot(bytes([0x01]) + SPO2_97_PR_72 + bytes(7))
    assert reading.status == frozenset({"device-time-unknown"})
    assert reading.time_source is TimeSource.RECEPTION


@pytest.mark.parametrize("reason", list(NoValue))
def test_special_values(reason: NoValue) -> None:
    reading = spot(bytes([0x08]) + encode_sfloat(reason) * 3)
    assert [q.no_value for q in reading.quantities] == [reason, reason]
    assert dict(reading.details) == {"pulse-amplitude-index": reason.value}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (bytes([0x00, 0x61, 0x00, 0x48]), "payload is 4 bytes, flags 0x00 need 5"),
        (bytes([0x0F]) + SPO2_97_PR_72, "payload is 5 bytes, flags 0x0F need 19"),
        (bytes([0x00]) + SPO2_97_PR_72 + b"\x00", "payload is 6 bytes, flags 0x00 need 5 (1 trailing bytes)"),
    ],
)
def test_length_errors(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        spot(payload)
    assert str(info.value) == f"0x2A5E PLX Spot-check Measurement: {message}"
