"""Property tests: any payload decodes to a Reading or a DecodeError, and every encoder round-trips.

The fuzz tests draw 10,000 random payloads per measurement characteristic and decode each twice: as drawn, and
reshaped so that its length is within two bytes of what its flags byte announces (computed here from the
specification, independently of the decoder), so that the decoding paths past the length check run too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cabine.demo.encode import (
    UNKNOWN_TIME,
    encode_blood_pressure,
    encode_heart_rate,
    encode_plx_continuous,
    encode_plx_spot_check,
    encode_temperature,
    encode_weight,
)
from gateway.devices.fhir import observation
from gateway.devices.gatt import (
    BP_STATUS_BITS,
    PLX_DEVICE_SENSOR_STATUS_BITS,
    PLX_MEASUREMENT_STATUS_BITS,
    TemperatureType,
    decode,
    decode_battery_level,
    decode_device_information_string,
    decode_temperature_type,
)
from gateway.devices.readings import DeviceIdentity, NoValue, Quantity, Reading, TimeSource
from gateway.devices.sfloat import (
    FLOAT_SPECIALS,
    decode_float,
    encode_float,
    encode_sfloat,
    float_from_raw,
    sfloat_from_raw,
    sfloat_to_raw,
)
from gateway.errors import DecodeError

DEVICE = DeviceIdentity(address="fuzz")
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
FUZZ = settings(max_examples=10_000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SMALL_FUZZ = settings(max_examples=2_000, deadline=None, database=None)
ROUND_TRIP = settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PAYLOADS = st.binary(max_size=40)


def bit(flags: int, n: int) -> int:
    return flags >> n & 1


# Body length (after the flags byte) announced by each flags value, from the GATT Specification Supplement.
BODY_LENGTH: dict[int, Callable[[int], int]] = {
    0x2A1C: lambda f: 4 + 7 * bit(f, 1) + bit(f, 2),
    0x2A35: lambda f: 6 + 7 * bit(f, 1) + 2 * bit(f, 2) + bit(f, 3) + 2 * bit(f, 4),
    0x2A5E: lambda f: 4 + 7 * bit(f, 0) + 2 * bit(f, 1) + 3 * bit(f, 2) + 2 * bit(f, 3),
    0x2A5F: lambda f: 4 + 4 * bit(f, 0) + 4 * bit(f, 1) + 2 * bit(f, 2) + 3 * bit(f, 3) + 2 * bit(f, 4),
    0x2A37: lambda f: (2 if bit(f, 0) else 1) + 2 * bit(f, 3) + 2 * bit(f, 4),
    0x2A9D: lambda f: 2 + 7 * bit(f, 1) + bit(f, 2) + 4 * bit(f, 3),
}


def shaped(uuid16: int, raw: bytes) -> bytes:
    """`raw` reshaped so that its length is within two bytes of what its first byte (the flags) announces."""
    if not raw:
        return raw
    flags, body = raw[0], raw[1:] or b"\x00"
    size = max(0, BODY_LENGTH[uuid16](flags) + len(raw) % 5 - 2)
    if uuid16 == 0x2A37 and flags & 0x10:
        size += 2 * (len(raw) % 4)  # a few RR intervals
    return bytes([flags]) + (body * (size // len(body) + 1))[:size]


def check_reading(reading: Reading) -> None:
    """What every decoded reading must satisfy, whatever the bytes were."""
    for q in reading.quantities:
        assert (q.value is None) != (q.no_value is None)
        assert q.value is None or math.isfinite(q.value)
    assert reading.measured_at.tzinfo is not None
    json.dumps(reading.to_wire())
    assert observation(reading)["resourceType"] == "Observation"


def fuzz(uuid16: int, raw: bytes) -> None:
    """Decode `raw` as is and reshaped to its flags: each gives a Reading or a DecodeError, nothing else."""
    for payload in (raw, shaped(uuid16, raw)):
        try:
            reading = decode(uuid16, payload, device=DEVICE, received_at=NOW)
        except DecodeError as exc:
            message = str(exc)
        else:
            check_reading(reading)
            continue
        assert message.startswith(f"0x{uuid16:04X} ")
        assert "\n" not in message


@FUZZ
@given(PAYLOADS)
def test_fuzz_temperature(payload: bytes) -> None:
    fuzz(0x2A1C, payload)


@FUZZ
@given(PAYLOADS)
def test_fuzz_blood_pressure(payload: bytes) -> None:
    fuzz(0x2A35, payload)


@FUZZ
@given(PAYLOADS)
def test_fuzz_plx_spot_check(payload: bytes) -> None:
    fuzz(0x2A5E, payload)


@FUZZ
@given(PAYLOADS)
def test_fuzz_plx_continuous(payload: bytes) -> None:
    fuzz(0x2A5F, payload)


@FUZZ
@given(PAYLOADS)
def test_fuzz_heart_rate(payload: bytes) -> None:
    fuzz(0x2A37, payload)


@FUZZ
@given(PAYLOADS)
def test_fuzz_weight(payload: bytes) -> None:
    fuzz(0x2A9D, payload)


@SMALL_FUZZ
@given(st.binary(max_size=3))
def test_fuzz_battery_and_temperature_type(payload: bytes) -> None:
    for decoder in (decode_battery_level, decode_temperature_type):
        try:
            result = decoder(payload)
        except DecodeError:
            continue
        assert isinstance(result, int)


@SMALL_FUZZ
@given(st.binary(max_size=24))
def test_fuzz_device_information(payload: bytes) -> None:
    try:
        text = decode_device_information_string(0x2A29, payload)
    except DecodeError as exc:
        text = str(exc)
        with pytest.raises(UnicodeDecodeError):
            payload.rstrip(b"\x00").decode("utf-8")
    assert not text.endswith("\x00")


# --- numbers ------------------------------------------------------------------------------------------------


def test_every_sfloat_decodes_and_round_trips() -> None:
    """Exhaustive: all 65,536 SFLOAT values."""
    for raw in range(0x10000):
        value = sfloat_from_raw(raw)
        if isinstance(value, NoValue):
            assert sfloat_from_raw(sfloat_to_raw(value)) is value
        else:
            assert math.isfinite(value)
            assert sfloat_from_raw(sfloat_to_raw(value)) == value


@SMALL_FUZZ
@given(st.integers(0, 0xFFFFFFFF))
def test_float_decodes_and_round_trips(raw: int) -> None:
    value = float_from_raw(raw)
    if raw in FLOAT_SPECIALS:
        assert value is FLOAT_SPECIALS[raw]
    assert isinstance(value, NoValue) or math.isfinite(value)
    assert decode_float(encode_float(value)) == value


# --- encoder round trips --------------------------------------------------------------------------------------

sfloat_values = st.integers(0, 0xFFFF).map(sfloat_from_raw)
"""Every value an SFLOAT can carry, numbers and NoValue reasons."""
float_values = st.integers(0, 0xFFFFFFFF).map(float_from_raw)
device_times = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)).map(
    lambda d: d.replace(microsecond=0)
)
timestamps = st.one_of(st.none(), st.just(UNKNOWN_TIME), device_times)


def matches(quantity: Quantity, value: float | NoValue) -> bool:
    if isinstance(value, NoValue):
        return quantity.value is None and quantity.no_value is value
    return quantity.value == value and quantity.no_value is None


def check_time(reading: Reading, timestamp: datetime | str | None, *, trusted: bool = True) -> None:
    if isinstance(timestamp, datetime) and trusted:
        assert reading.measured_at == timestamp.replace(tzinfo=UTC)
        assert reading.time_source is TimeSource.DEVICE
    else:
        assert reading.measured_at == NOW
        assert reading.time_source is TimeSource.RECEPTION
    assert ("device-time-unknown" in reading.status) == (timestamp == UNKNOWN_TIME)


@ROUND_TRIP
@given(float_values, st.booleans(), timestamps, st.none() | st.sampled_from(list(TemperatureType)))
def test_temperature_round_trip(
    value: float | NoValue, fahrenheit: bool, timestamp: datetime | str | None, kind: TemperatureType | None
) -> None:
    payload = encode_temperature(value, fahrenheit=fahrenheit, timestamp=timestamp, temperature_type=kind)  # type: ignore[arg-type]
    reading = decode(0x2A1C, payload, device=DEVICE, received_at=NOW)
    assert matches(reading.primary, value)
    assert reading.primary.unit == ("[degF]" if fahrenheit else "Cel")
    check_time(reading, timestamp)
    assert dict(reading.details) == ({"temperature-type": kind.label} if kind else {})


bp_status = st.one_of(
    st.none(),
    st.tuples(
        st.frozensets(st.sampled_from(sorted(BP_STATUS_BITS.values()))),
        st.sampled_from([None, "pulse-rate-exceeds-upper-limit", "pulse-rate-below-lower-limit"]),
    ).map(lambda t: t[0] | ({t[1]} if t[1] else set())),
)


@ROUND_TRIP
@given(
    st.tuples(sfloat_values, sfloat_values, sfloat_values),
    st.booleans(),
    timestamps,
    st.none() | sfloat_values,
    st.none() | st.integers(0, 255),
    bp_status,
)
def test_blood_pressure_round_trip(
    pressures: tuple[float | NoValue, float | NoValue, float | NoValue],
    kpa: bool,
    timestamp: datetime | str | None,
    pulse: float | NoValue | None,
    user: int | None,
    status: frozenset[str] | None,
) -> None:
    payload = encode_blood_pressure(
        *pressures,
        kpa=kpa,
        timestamp=timestamp,  # type: ignore[arg-type]
        pulse_rate=pulse,
        user_id=user,
        status=status,
    )
    reading = decode(0x2A35, payload, device=DEVICE, received_at=NOW)
    assert all(matches(q, v) for q, v in zip(reading.quantities, pressures, strict=False))
    assert {q.unit for q in reading.quantities[:3]} == {"kPa" if kpa else "mm[Hg]"}
    assert (reading.quantity("pulse-rate") is not None) == (pulse is not None)
    if pulse is not None:
        assert matches(reading.quantities[3], pulse)
    check_time(reading, timestamp)
    expected = set(status or ())
    expected |= {"user-unknown"} if user == 255 else set()
    expected |= {"device-time-unknown"} if timestamp == UNKNOWN_TIME else set()
    assert reading.status == expected
    details = dict(reading.details)
    assert details.get("user-id") == (user if user != 255 else None)


plx_measurement = st.none() | st.frozensets(st.sampled_from(sorted(PLX_MEASUREMENT_STATUS_BITS.values())))
plx_device = st.none() | st.frozensets(st.sampled_from(sorted(PLX_DEVICE_SENSOR_STATUS_BITS.values())))


@ROUND_TRIP
@given(sfloat_values, sfloat_values, timestamps, plx_measurement, plx_device, st.none() | sfloat_values, st.booleans())
def test_plx_spot_check_round_trip(
    spo2: float | NoValue,
    pulse: float | NoValue,
    timestamp: datetime | str | None,
    measurement: frozenset[str] | None,
    device_status: frozenset[str] | None,
    pai: float | NoValue | None,
    clock_not_set: bool,
) -> None:
    payload = encode_plx_spot_check(
        spo2,
        pulse,
        timestamp=timestamp,  # type: ignore[arg-type]
        measurement_status=measurement,
        device_sensor_status=device_status,
        pulse_amplitude_index=pai,
        clock_not_set=clock_not_set,
    )
    reading = decode(0x2A5E, payload, device=DEVICE, received_at=NOW)
    assert matches(reading.quantities[0], spo2) and matches(reading.quantities[1], pulse)
    check_time(reading, timestamp, trusted=not clock_not_set)
    expected = set(measurement or ()) | set(device_status or ())
    expected |= {"device-clock-not-set"} if clock_not_set else set()
    expected |= {"device-time-unknown"} if timestamp == UNKNOWN_TIME else set()
    assert reading.status == expected
    pai_detail = dict(reading.details).get("pulse-amplitude-index")
    assert pai_detail == (pai.value if isinstance(pai, NoValue) else pai)


@ROUND_TRIP
@given(
    sfloat_values,
    sfloat_values,
    st.none() | st.tuples(sfloat_values, sfloat_values),
    st.none() | st.tuples(sfloat_values, sfloat_values),
    plx_measurement,
    plx_device,
    st.none() | sfloat_values,
)
def test_plx_continuous_round_trip(
    spo2: float | NoValue,
    pulse: float | NoValue,
    fast: tuple[float | NoValue, float | NoValue] | None,
    slow: tuple[float | NoValue, float | NoValue] | None,
    measurement: frozenset[str] | None,
    device_status: frozenset[str] | None,
    pai: float | NoValue | None,
) -> None:
    payload = encode_plx_continuous(
        spo2,
        pulse,
        fast=fast,
        slow=slow,
        measurement_status=measurement,
        device_sensor_status=device_status,
        pulse_amplitude_index=pai,
    )
    reading = decode(0x2A5F, payload, device=DEVICE, received_at=NOW)
    expected: list[tuple[str, float | NoValue]] = [("spo2", spo2), ("pulse-rate", pulse)]
    if fast:
        expected += [("spo2-fast", fast[0]), ("pulse-rate-fast", fast[1])]
    if slow:
        expected += [("spo2-slow", slow[0]), ("pulse-rate-slow", slow[1])]
    assert [q.code for q in reading.quantities] == [code for code, _ in expected]
    assert all(matches(q, v) for q, (_, v) in zip(reading.quantities, expected, strict=True))
    assert reading.status == set(measurement or ()) | set(device_status or ())


@ROUND_TRIP
@given(
    st.integers(0, 0xFFFF),
    st.none() | st.booleans(),
    st.none() | st.integers(0, 0xFFFF),
    st.none() | st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=9),
    st.booleans(),
)
def test_heart_rate_round_trip(
    bpm: int, contact: bool | None, energy: int | None, rr_raw: list[int] | None, force_wide: bool
) -> None:
    rr = None if rr_raw is None else [r / 1024 for r in rr_raw]
    payload = encode_heart_rate(
        bpm, sensor_contact=contact, energy_expended_kj=energy, rr_intervals=rr, uint16=True if force_wide else None
    )
    reading = decode(0x2A37, payload, device=DEVICE, received_at=NOW)
    assert reading.primary.value == bpm
    expected_status = set()
    if contact is not None:
        expected_status = {"sensor-contact-supported", f"sensor-contact-{'detected' if contact else 'not-detected'}"}
    assert reading.status == expected_status
    details = dict(reading.details)
    assert details.get("energy-expended-kj") == energy
    if rr is None:
        assert "rr-intervals" not in details
    else:
        assert details["rr-intervals"] == tuple(rr)


@ROUND_TRIP
@given(
    st.none() | st.integers(0, 0xFFFE),
    st.booleans(),
    timestamps,
    st.none() | st.integers(0, 255),
    st.none() | st.tuples(st.integers(0, 0xFFFE), st.integers(0, 0xFFFE)),
)
def test_weight_round_trip(
    raw_weight: int | None,
    imperial: bool,
    timestamp: datetime | str | None,
    user: int | None,
    bmi_height: tuple[int, int] | None,
) -> None:
    weight = None if raw_weight is None else (raw_weight / 100 if imperial else raw_weight * 5 / 1000)
    bmi = height = None
    if bmi_height is not None:
        bmi = bmi_height[0] / 10
        height = bmi_height[1] / 10 if imperial else bmi_height[1] / 1000
    payload = encode_weight(weight, imperial=imperial, timestamp=timestamp, user_id=user, bmi=bmi, height=height)  # type: ignore[arg-type]
    reading = decode(0x2A9D, payload, device=DEVICE, received_at=NOW)
    assert reading.primary.value == weight
    assert reading.primary.unit == ("[lb_av]" if imperial else "kg")
    assert ("measurement-unsuccessful" in reading.status) == (weight is None)
    check_time(reading, timestamp)
    if bmi_height is None:
        assert len(reading.quantities) == 1
    else:
        assert [(q.code, q.value, q.unit) for q in reading.quantities[1:]] == [
            ("bmi", bmi, "kg/m2"),
            ("height", height, "[in_i]" if imperial else "m"),
        ]


@pytest.mark.parametrize("value", [36.6, 98.6, 37.0, 35.95, 42.1, -40.0])
def test_typical_temperatures_are_exact(value: float) -> None:
    reading = decode(0x2A1C, encode_temperature(value), device=DEVICE, received_at=NOW)
    assert reading.primary.value == value
    assert sfloat_from_raw(int.from_bytes(encode_sfloat(round(value, 1)), "little")) == round(value, 1)
