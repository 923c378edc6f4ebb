"""Pure encoders for the standard health characteristics: what the emulated devices send.

Pure: no I/O. Each `encode_xxx` is the exact inverse of the matching decoder in `gateway.devices.gatt` for
the fields it supports: decoding its bytes gives back the values (and status names) passed in, provided the
numbers are representable on the wire (SFLOAT/FLOAT digits, 0.005 kg steps...). Status sets use the same
kebab-case names the decoders put in `Reading.status`.

Timestamps: an aware datetime is converted to UTC; a naive one is taken as the device clock as is; sub-second
parts are dropped (Date Time has whole seconds). `UNKNOWN_TIME` writes a Date Time with year, month and day 0
("not known"), which the decoders turn into reception time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, Literal

from gateway.devices.gatt import (
    BP_PULSE_RATE_RANGE,
    BP_STATUS_BITS,
    PLX_DEVICE_SENSOR_STATUS_BITS,
    PLX_MEASUREMENT_STATUS_BITS,
    RR_INTERVAL_RESOLUTION,
    TemperatureType,
)
from gateway.devices.readings import NoValue
from gateway.devices.sfloat import EncodeError, encode_float, encode_sfloat

__all__ = [
    "UNKNOWN_TIME",
    "encode_blood_pressure",
    "encode_date_time",
    "encode_heart_rate",
    "encode_plx_continuous",
    "encode_plx_spot_check",
    "encode_temperature",
    "encode_weight",
]

UNKNOWN_TIME: Final = "unknown"
"""Pass as `timestamp` to send a Date Time whose date is "not known" (all zero)."""

Timestamp = datetime | Literal["unknown"] | None
"""A timestamp argument: a time, `UNKNOWN_TIME`, or None for no timestamp field."""


def encode_date_time(when: datetime | Literal["unknown"]) -> bytes:
    """Encode a 7-byte Date Time; `UNKNOWN_TIME` gives all zeros.

    Raises:
        EncodeError: the year is outside 1582..9999.
    """
    if when == UNKNOWN_TIME:
        return bytes(7)
    if not isinstance(when, datetime):
        raise EncodeError(f"timestamp must be a datetime or UNKNOWN_TIME, got {when!r}")
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    if not 1582 <= when.year <= 9999:
        raise EncodeError(f"Date Time year must be in 1582..9999, got {when.year}")
    return when.year.to_bytes(2, "little") + bytes((when.month, when.day, when.hour, when.minute, when.second))


def _bits(names: Collection[str], table: Mapping[int, str], what: str) -> int:
    """The integer whose bits are the named flags of `table`.

    Raises:
        EncodeError: a name is not in `table`.
    """
    by_name = {name: bit for bit, name in table.items()}
    value = 0
    for name in names:
        bit = by_name.get(name)
        if bit is None:
            raise EncodeError(f"unknown {what} status {name!r}; known: {', '.join(sorted(by_name))}")
        value |= 1 << bit
    return value


def _uint(value: int, size: int, what: str) -> bytes:
    """An unsigned little-endian integer.

    Raises:
        EncodeError: out of range for `size` bytes.
    """
    if isinstance(value, bool) or not 0 <= value < 1 << (8 * size):
        raise EncodeError(f"{what} must be in 0..{(1 << (8 * size)) - 1}, got {value!r}")
    return value.to_bytes(size, "little")


def _steps(value: float, step: str, what: str) -> int:
    """`value` as a count of `step` (a decimal string such as "0.005"), rounded half away from zero.

    Raises:
        EncodeError: negative, or above 0xFFFE steps (0xFFFF is reserved).
    """
    count = int((Decimal(repr(float(value))) / Decimal(step)).to_integral_value(ROUND_HALF_UP))
    if not 0 <= count <= 0xFFFE:
        raise EncodeError(f"{what} {value!r} is out of range (0..{0xFFFE * Decimal(step)})")
    return count


def encode_temperature(
    value: float | NoValue,
    *,
    fahrenheit: bool = False,
    timestamp: Timestamp = None,
    temperature_type: int | None = None,
) -> bytes:
    """Encode a Temperature Measurement (0x2A1C): FLOAT value, optional Date Time and temperature type.

    Raises:
        EncodeError: the value does not fit a FLOAT, bad timestamp, or a reserved temperature type.
    """
    flags = (0x01 if fahrenheit else 0) | (0x02 if timestamp is not None else 0)
    flags |= 0x04 if temperature_type is not None else 0
    out = bytes((flags,)) + encode_float(value)
    if timestamp is not None:
        out += encode_date_time(timestamp)
    if temperature_type is not None:
        try:
            out += bytes((TemperatureType(temperature_type),))
        except ValueError:
            raise EncodeError(f"temperature type {temperature_type!r} is not one of 1..9") from None
    return out


def encode_blood_pressure(
    systolic: float | NoValue,
    diastolic: float | NoValue,
    mean: float | NoValue,
    *,
    kpa: bool = False,
    timestamp: Timestamp = None,
    pulse_rate: float | NoValue | None = None,
    user_id: int | None = None,
    status: Collection[str] | None = None,
) -> bytes:
    """Encode a Blood Pressure Measurement (0x2A35).

    `status` holds decoder status names (`body-movement-detected`, `pulse-rate-exceeds-upper-limit`...);
    None leaves the Measurement Status field out, an empty collection sends it as 0. `user_id` 0xFF is
    "unknown user".

    Raises:
        EncodeError: a value does not fit an SFLOAT, bad timestamp or user id, or an unknown status name.
    """
    flags = (0x01 if kpa else 0) | (0x02 if timestamp is not None else 0)
    flags |= (0x04 if pulse_rate is not None else 0) | (0x08 if user_id is not None else 0)
    flags |= 0x10 if status is not None else 0
    out = bytes((flags,)) + encode_sfloat(systolic) + encode_sfloat(diastolic) + encode_sfloat(mean)
    if timestamp is not None:
        out += encode_date_time(timestamp)
    if pulse_rate is not None:
        out += encode_sfloat(pulse_rate)
    if user_id is not None:
        out += _uint(user_id, 1, "user id")
    if status is not None:
        ranges = {f"pulse-rate-{name}": code for code, name in BP_PULSE_RATE_RANGE.items() if code}
        chosen = [name for name in status if name in ranges]
        if len(chosen) > 1:
            raise EncodeError(f"blood pressure status has two pulse-rate ranges: {sorted(chosen)}")
        raw = _bits([n for n in status if n not in ranges], BP_STATUS_BITS, "blood pressure")
        raw |= ranges[chosen[0]] << 3 if chosen else 0
        out += raw.to_bytes(2, "little")
    return out


def _plx_tail(
    measurement_status: Collection[str] | None,
    device_sensor_status: Collection[str] | None,
    pulse_amplitude_index: float | NoValue | None,
) -> bytes:
    """The PLX status fields and pulse amplitude index, in wire order, for those given.

    Raises:
        EncodeError: an unknown status name, or a PAI that does not fit an SFLOAT.
    """
    out = b""
    if measurement_status is not None:
        out += _bits(measurement_status, PLX_MEASUREMENT_STATUS_BITS, "PLX measurement").to_bytes(2, "little")
    if device_sensor_status is not None:
        raw = _bits(device_sensor_status, PLX_DEVICE_SENSOR_STATUS_BITS, "PLX device and sensor")
        out += raw.to_bytes(3, "little")
    if pulse_amplitude_index is not None:
        out += encode_sfloat(pulse_amplitude_index)
    return out


def encode_plx_spot_check(
    spo2: float | NoValue,
    pulse_rate: float | NoValue,
    *,
    timestamp: Timestamp = None,
    measurement_status: Collection[str] | None = None,
    device_sensor_status: Collection[str] | None = None,
    pulse_amplitude_index: float | NoValue | None = None,
    clock_not_set: bool = False,
) -> bytes:
    """Encode a PLX Spot-check Measurement (0x2A5E); `clock_not_set` sets the "device clock is not set" flag.

    Raises:
        EncodeError: a value does not fit an SFLOAT, bad timestamp, or an unknown status name.
    """
    flags = (0x01 if timestamp is not None else 0) | (0x02 if measurement_status is not None else 0)
    flags |= (0x04 if device_sensor_status is not None else 0) | (0x08 if pulse_amplitude_index is not None else 0)
    flags |= 0x10 if clock_not_set else 0
    out = bytes((flags,)) + encode_sfloat(spo2) + encode_sfloat(pulse_rate)
    if timestamp is not None:
        out += encode_date_time(timestamp)
    return out + _plx_tail(measurement_status, device_sensor_status, pulse_amplitude_index)


def encode_plx_continuous(
    spo2: float | NoValue,
    pulse_rate: float | NoValue,
    *,
    fast: tuple[float | NoValue, float | NoValue] | None = None,
    slow: tuple[float | NoValue, float | NoValue] | None = None,
    measurement_status: Collection[str] | None = None,
    device_sensor_status: Collection[str] | None = None,
    pulse_amplitude_index: float | NoValue | None = None,
) -> bytes:
    """Encode a PLX Continuous Measurement (0x2A5F); `fast` and `slow` are (SpO2, pulse rate) pairs.

    Raises:
        EncodeError: a value does not fit an SFLOAT, or an unknown status name.
    """
    flags = (0x01 if fast is not None else 0) | (0x02 if slow is not None else 0)
    flags |= (0x04 if measurement_status is not None else 0) | (0x08 if device_sensor_status is not None else 0)
    flags |= 0x10 if pulse_amplitude_index is not None else 0
    out = bytes((flags,)) + encode_sfloat(spo2) + encode_sfloat(pulse_rate)
    for pair in (fast, slow):
        if pair is not None:
            out += encode_sfloat(pair[0]) + encode_sfloat(pair[1])
    return out + _plx_tail(measurement_status, device_sensor_status, pulse_amplitude_index)


def encode_heart_rate(
    bpm: int,
    *,
    sensor_contact: bool | None = None,
    energy_expended_kj: int | None = None,
    rr_intervals: Sequence[float] | None = None,
    uint16: bool | None = None,
) -> bytes:
    """Encode a Heart Rate Measurement (0x2A37); RR intervals in seconds, as decoded (rounded to 1/1024 s).

    `sensor_contact` None means "not supported"; `uint16` None picks the 16-bit format only above 255.

    Raises:
        EncodeError: a value out of range, or an empty `rr_intervals`.
    """
    wide = bpm > 0xFF if uint16 is None else uint16
    flags = 0x01 if wide else 0
    if sensor_contact is not None:
        flags |= 0x06 if sensor_contact else 0x04
    flags |= (0x08 if energy_expended_kj is not None else 0) | (0x10 if rr_intervals is not None else 0)
    out = bytes((flags,)) + _uint(bpm, 2 if wide else 1, "heart rate")
    if energy_expended_kj is not None:
        out += _uint(energy_expended_kj, 2, "energy expended")
    if rr_intervals is not None:
        if not rr_intervals:
            raise EncodeError("rr_intervals needs at least one interval (or None for no RR field)")
        for seconds in rr_intervals:
            raw = int((Decimal(repr(float(seconds))) * RR_INTERVAL_RESOLUTION).to_integral_value(ROUND_HALF_UP))
            out += _uint(raw, 2, "RR interval in 1/1024 s")
    return out


def encode_weight(
    weight: float | None,
    *,
    imperial: bool = False,
    timestamp: Timestamp = None,
    user_id: int | None = None,
    bmi: float | None = None,
    height: float | None = None,
) -> bytes:
    """Encode a Weight Measurement (0x2A9D): kg in 0.005 steps or lb in 0.01; None is "unsuccessful".

    Height is in m (0.001 steps) or, with `imperial`, in inches (0.1 steps); BMI in 0.1 steps. BMI and height
    travel together: give both or neither.

    Raises:
        EncodeError: a value out of range, bad timestamp or user id, or only one of BMI and height.
    """
    if (bmi is None) != (height is None):
        raise EncodeError("BMI and height are sent together: give both or neither")
    flags = (0x01 if imperial else 0) | (0x02 if timestamp is not None else 0)
    flags |= (0x04 if user_id is not None else 0) | (0x08 if bmi is not None else 0)
    step = "0.01" if imperial else "0.005"
    raw_weight = 0xFFFF if weight is None else _steps(weight, step, "weight")
    out = bytes((flags,)) + raw_weight.to_bytes(2, "little")
    if timestamp is not None:
        out += encode_date_time(timestamp)
    if user_id is not None:
        out += _uint(user_id, 1, "user id")
    if bmi is not None and height is not None:
        out += _steps(bmi, "0.1", "BMI").to_bytes(2, "little")
        out += _steps(height, "0.1" if imperial else "0.001", "height").to_bytes(2, "little")
    return out
