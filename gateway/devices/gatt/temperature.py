"""Health Thermometer profile: Temperature Measurement (0x2A1C) and Temperature Type (0x2A1D).

Pure: no I/O. Layouts from the Health Thermometer Service specification (HTS 1.0) and the Bluetooth SIG GATT
Specification Supplement: flags, a FLOAT in Cel or [degF], an optional Date Time, an optional temperature type.
"""

from __future__ import annotations

import enum
from datetime import datetime

from gateway.devices.gatt.common import (
    Cursor,
    Details,
    check_received_at,
    choose_time,
    quantity,
    read_flags,
)
from gateway.devices.gatt.uuids import TEMPERATURE_MEASUREMENT, TEMPERATURE_TYPE, characteristic_label
from gateway.devices.readings import DeviceIdentity, Reading, ReadingKind
from gateway.errors import DecodeError

__all__ = ["TemperatureType", "decode_temperature", "decode_temperature_type"]


class TemperatureType(enum.IntEnum):
    """Where a temperature was taken (Temperature Type characteristic and field)."""

    ARMPIT = 1
    BODY = 2
    EAR = 3
    FINGER = 4
    GASTROINTESTINAL_TRACT = 5
    MOUTH = 6
    RECTUM = 7
    TOE = 8
    TYMPANUM = 9

    @property
    def label(self) -> str:
        """The kebab-case name used in `Reading.details` ("ear", "gastrointestinal-tract")."""
        return self.name.lower().replace("_", "-")


def decode_temperature(payload: bytes, *, device: DeviceIdentity, received_at: datetime) -> Reading:
    """Decode a Temperature Measurement (0x2A1C): FLOAT in Cel or [degF], optional time and temperature type.

    Raises:
        DecodeError: truncated payload, trailing bytes, bad timestamp or reserved temperature type.
    """
    label = characteristic_label(TEMPERATURE_MEASUREMENT)
    check_received_at(received_at)
    flags = read_flags(label, payload, lambda f: 4 + 7 * (f >> 1 & 1) + (f >> 2 & 1))
    cursor = Cursor(payload, label, 1)
    unit = "[degF]" if flags & 0x01 else "Cel"
    value = cursor.float32()
    status: set[str] = set()
    details: Details = []
    device_time: datetime | None = None
    if flags & 0x02:
        device_time = cursor.date_time()
        if device_time is None:
            status.add("device-time-unknown")
    if flags & 0x04:
        details.append(("temperature-type", _temperature_type(label, cursor.uint(1)).label))
    measured_at, source = choose_time(device_time, received_at)
    return Reading(
        kind=ReadingKind.BODY_TEMPERATURE,
        quantities=(quantity("value", value, unit),),
        measured_at=measured_at,
        time_source=source,
        device=device,
        status=frozenset(status),
        details=tuple(details),
    )


def decode_temperature_type(payload: bytes) -> TemperatureType:
    """Decode a Temperature Type (0x2A1D).

    Raises:
        DecodeError: not exactly one byte, or a reserved value.
    """
    label = characteristic_label(TEMPERATURE_TYPE)
    if len(payload) != 1:
        raise DecodeError(f"{label}: payload is {len(payload)} bytes, need exactly 1")
    return _temperature_type(label, payload[0])


def _temperature_type(label: str, raw: int) -> TemperatureType:
    """The temperature type for a raw value.

    Raises:
        DecodeError: the value is reserved (0 or above 9).
    """
    try:
        return TemperatureType(raw)
    except ValueError:
        raise DecodeError(f"{label}: temperature type {raw} is reserved (expected 1..9)") from None
