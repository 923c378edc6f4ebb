"""The emulators' encoders, against published byte vectors.

Vectors and their sources:
- [NordicBP] NordicSemiconductor/Android-BLE-Common-Library,
  ble-common/src/test/java/no/nordicsemi/android/ble/common/callback/bps/BloodPressureMeasurementDataCallbackTest.java
  (_some 15 BD F0 0B 00 9F F0 3C 00 12 00, _minimal 00 BD F0 0B 00 9F F0).
- [NordicHR] same repository, .../callback/hr/HeartRateMeasurementDataCallbackTest.java (_simple, _noContact, _uint8,
  _uint16).
- [SpeziPLX] StanfordSpezi/SpeziBluetooth, Tests/SpeziBluetoothServicesTests/PLXTests.swift
  (testSimpleMeasurementCoding, testSpotCheckMeasurementCoding).
- [SigPython] RonanB96/bluetooth-sig-python, tests/gatt/characteristics/test_weight_measurement.py (tests 1-3).
- [NordicHT] NordicSemiconductor/Android-BLE-Common-Library,
  .../callback/ht/TemperatureMeasurementDataCallbackTest.java.
Where a source picked another (equally valid) exponent than ours for an SFLOAT/FLOAT, the test checks that
decoding both gives the same reading instead of comparing bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cabine.demo.encode import (
    UNKNOWN_TIME,
    encode_blood_pressure,
    encode_date_time,
    encode_heart_rate,
    encode_plx_continuous,
    encode_plx_spot_check,
    encode_temperature,
    encode_weight,
)
from gateway.devices.gatt import decode, decode_temperature
from gateway.devices.readings import DeviceIdentity
from gateway.devices.sfloat import EncodeError

DEVICE = DeviceIdentity(address="emulator")
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def same_reading(uuid16: int, ours: bytes, theirs: bytes) -> None:
    assert decode(uuid16, ours, device=DEVICE, received_at=NOW) == decode(
        uuid16, theirs, device=DEVICE, received_at=NOW
    )


def test_blood_pressure_vectors() -> None:
    some = encode_blood_pressure(
        18.9, 11, 15.9, kpa=True, pulse_rate=60, status={"cuff-too-loose", "pulse-rate-below-lower-limit"}
    )
    assert some == bytes.fromhex("15BDF00B009FF03C001200")  # [NordicBP] _some
    assert encode_blood_pressure(18.9, 11, 15.9) == bytes.fromhex("00BDF00B009FF0")  # [NordicBP] _minimal


def test_heart_rate_vectors() -> None:
    assert encode_heart_rate(85) == bytes([0, 85])  # [NordicHR] _simple
    assert encode_heart_rate(255, sensor_contact=False) == bytes([0x04, 0xFF])  # [NordicHR] _noContact
    assert encode_heart_rate(85, sensor_contact=True, energy_expended_kj=50, rr_intervals=[33 / 1024]) == bytes(
        [0b11110, 85, 50, 0, 33, 0]
    )  # [NordicHR] _uint8
    assert encode_heart_rate(
        257, sensor_contact=True, energy_expended_kj=306, rr_intervals=[1 / 1024, 258 / 1024, 65535 / 1024]
    ) == bytes([0b11111, 1, 1, 50, 1, 1, 0, 2, 1, 0xFF, 0xFF])  # [NordicHR] _uint16


def test_heart_rate_encodes_the_rr_intervals_it_decodes() -> None:
    payload = bytes([0b11111, 1, 1, 50, 1, 1, 0, 2, 1, 0xFF, 0xFF])  # [NordicHR] _uint16
    rr = dict(decode(0x2A37, payload, device=DEVICE, received_at=NOW).details)["rr-intervals"]
    assert isinstance(rr, tuple)
    assert encode_heart_rate(257, sensor_contact=True, energy_expended_kj=306, rr_intervals=rr) == payload


def test_plx_continuous_vector() -> None:
    payload = encode_plx_continuous(
        95, 90, measurement_status={"measurement-ongoing"}, device_sensor_status=(), pulse_amplitude_index=8.7
    )
    assert payload == bytes([28, 95, 0, 90, 0, 32, 0, 0, 0, 0, 87, 240])  # [SpeziPLX]


def test_plx_spot_check_vector() -> None:
    ours = encode_plx_spot_check(
        94,
        147,
        timestamp=datetime(2024, 11, 29, 23, 8, 57),
        measurement_status={"measurement-ongoing", "questionable-measurement-detected"},
        device_sensor_status={"equipment-malfunction-detected", "low-perfusion-detected"},
        pulse_amplitude_index=8.7,
    )
    theirs = bytes([15, 172, 243, 190, 245, 232, 7, 11, 29, 23, 8, 57, 32, 64, 34, 0, 0, 102, 227])  # [SpeziPLX]
    same_reading(0x2A5E, ours, theirs)


def test_weight_vectors() -> None:
    assert encode_weight(70) == bytes([0x00, 0xB0, 0x36])  # [SigPython] test 1
    assert encode_weight(157, imperial=True) == bytes([0x01, 0x54, 0x3D])  # [SigPython] test 2
    assert encode_weight(70, timestamp=datetime(2023, 12, 25, 14, 30, 45)) == bytes.fromhex(
        "02B036E7070C190E1E2D"
    )  # [SigPython] test 3
    assert encode_weight(None) == bytes([0x00, 0xFF, 0xFF])


def test_temperature_vector() -> None:
    ours = encode_temperature(37.6, timestamp=datetime(2012, 12, 5, 11, 50, 27), temperature_type=4)
    same_reading(0x2A1C, ours, bytes.fromhex("06B00E00FEDC070C050B321B04"))  # [NordicHT]


def test_date_time() -> None:
    assert encode_date_time(datetime(2012, 12, 5, 11, 50, 27)) == bytes.fromhex("DC070C050B321B")
    paris = timezone(timedelta(hours=1))
    assert encode_date_time(datetime(2012, 12, 5, 12, 50, 27, 999_999, tzinfo=paris)) == bytes.fromhex("DC070C050B321B")
    assert encode_date_time(UNKNOWN_TIME) == bytes(7)
    reading = decode_temperature(encode_temperature(36.5, timestamp=UNKNOWN_TIME), device=DEVICE, received_at=NOW)
    assert reading.status == frozenset({"device-time-unknown"})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: encode_temperature(36.5, temperature_type=0), "temperature type 0 is not one of 1..9"),
        (lambda: encode_date_time(datetime(1500, 1, 1)), "Date Time year must be in 1582..9999"),
        (lambda: encode_blood_pressure(1, 2, 3, status={"hypertension"}), "unknown blood pressure status"),
        (
            lambda: encode_blood_pressure(
                1, 2, 3, status={"pulse-rate-exceeds-upper-limit", "pulse-rate-below-lower-limit"}
            ),
            "two pulse-rate ranges",
        ),
        (lambda: encode_blood_pressure(1, 2, 3, user_id=256), "user id must be in 0..255"),
        (lambda: encode_plx_spot_check(97, 60, measurement_status={"x"}), "unknown PLX measurement status"),
        (lambda: encode_heart_rate(256, uint16=False), "heart rate must be in 0..255"),
        (lambda: encode_heart_rate(60, rr_intervals=[]), "at least one interval"),
        (lambda: encode_heart_rate(60, rr_intervals=[64.0]), "RR interval in 1/1024 s must be in 0..65535"),
        (lambda: encode_weight(400), "weight 400 is out of range"),
        (lambda: encode_weight(-1.0), "weight -1.0 is out of range"),
        (lambda: encode_weight(70, bmi=22.0), "BMI and height are sent together"),
    ],
)
def test_encoder_errors(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises(EncodeError, match=message):
        call()
