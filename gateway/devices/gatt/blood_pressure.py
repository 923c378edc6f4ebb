"""Blood Pressure profile: Blood Pressure Measurement (0x2A35).

Pure: no I/O. Layout from the Blood Pressure Service specification (BLS 1.1) and the Bluetooth SIG GATT
Specification Supplement: flags, systolic, diastolic and mean SFLOATs in mm[Hg] or kPa, then an optional Date Time,
pulse rate, user id and Measurement Status.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from gateway.devices.gatt.common import (
    Cursor,
    Details,
    bit_names,
    check_received_at,
    choose_time,
    quantity,
    read_flags,
    record_user_id,
)
from gateway.devices.gatt.uuids import BLOOD_PRESSURE_MEASUREMENT, characteristic_label
from gateway.devices.readings import DeviceIdentity, Reading, ReadingKind
from gateway.errors import DecodeError

__all__ = ["BP_PULSE_RATE_RANGE", "BP_STATUS_BITS", "decode_blood_pressure"]

BP_STATUS_BITS: Mapping[int, str] = MappingProxyType(
    {
        0: "body-movement-detected",
        1: "cuff-too-loose",
        2: "irregular-pulse-detected",
        5: "improper-measurement-position",
    }
)
"""Blood Pressure Measurement Status: bits 3-4 are the pulse-rate range, bits 6-15 are reserved."""

BP_PULSE_RATE_RANGE: Mapping[int, str] = MappingProxyType(
    {0: "within-range", 1: "exceeds-upper-limit", 2: "below-lower-limit"}
)
"""Blood Pressure Measurement Status bits 3-4; 3 is reserved."""


def decode_blood_pressure(payload: bytes, *, device: DeviceIdentity, received_at: datetime) -> Reading:
    """Decode a Blood Pressure Measurement (0x2A35): systolic, diastolic, mean in mm[Hg] or kPa, and options.

    Raises:
        DecodeError: truncated payload, trailing bytes, bad timestamp or reserved pulse-rate range.
    """
    label = characteristic_label(BLOOD_PRESSURE_MEASUREMENT)
    check_received_at(received_at)
    flags = read_flags(
        label,
        payload,
        lambda f: 6 + 7 * (f >> 1 & 1) + 2 * (f >> 2 & 1) + (f >> 3 & 1) + 2 * (f >> 4 & 1),
    )
    cursor = Cursor(payload, label, 1)
    unit = "kPa" if flags & 0x01 else "mm[Hg]"
    quantities = [
        quantity("systolic", cursor.sfloat(), unit),
        quantity("diastolic", cursor.sfloat(), unit),
        quantity("mean", cursor.sfloat(), unit),
    ]
    status: set[str] = set()
    details: Details = []
    device_time: datetime | None = None
    if flags & 0x02:
        device_time = cursor.date_time()
        if device_time is None:
            status.add("device-time-unknown")
    if flags & 0x04:
        quantities.append(quantity("pulse-rate", cursor.sfloat(), "/min"))
    if flags & 0x08:
        record_user_id(cursor.uint(1), status, details)
    if flags & 0x10:
        raw_status = cursor.uint(2)
        status |= bit_names(raw_status, BP_STATUS_BITS)
        pulse_range = raw_status >> 3 & 0b11
        range_name = BP_PULSE_RATE_RANGE.get(pulse_range)
        if range_name is None:
            raise DecodeError(f"{label}: measurement status 0x{raw_status:04X} has the reserved pulse-rate range 3")
        details.append(("pulse-rate-range", range_name))
        if pulse_range:
            status.add(f"pulse-rate-{range_name}")
    measured_at, source = choose_time(device_time, received_at)
    return Reading(
        kind=ReadingKind.BLOOD_PRESSURE,
        quantities=tuple(quantities),
        measured_at=measured_at,
        time_source=source,
        device=device,
        status=frozenset(status),
        details=tuple(details),
    )
