"""Heart Rate profile: Heart Rate Measurement (0x2A37).

Pure: no I/O. Layout from the Heart Rate Service specification (HRS 1.0) and the Bluetooth SIG GATT
Specification Supplement: flags, the rate as uint8 or uint16 in /min, then an optional energy expended (uint16
kJ) and any number of RR intervals (uint16, 1/1024 s each) up to the end of the payload.
"""

from __future__ import annotations

from datetime import datetime

from gateway.devices.gatt.common import Cursor, Details, check_length, check_received_at
from gateway.devices.gatt.uuids import HEART_RATE_MEASUREMENT, characteristic_label
from gateway.devices.readings import DeviceIdentity, Quantity, Reading, ReadingKind, TimeSource
from gateway.errors import DecodeError

__all__ = ["RR_INTERVAL_RESOLUTION", "decode_heart_rate"]

RR_INTERVAL_RESOLUTION = 1024
"""RR intervals travel in units of 1/1024 s."""


def decode_heart_rate(payload: bytes, *, device: DeviceIdentity, received_at: datetime) -> Reading:
    """Decode a Heart Rate Measurement (0x2A37): rate in /min, sensor contact, energy expended, RR intervals.

    RR intervals go in the detail `rr-intervals` as a tuple of seconds, in wire order (exact: raw / 1024).

    Raises:
        DecodeError: truncated payload, trailing bytes, an odd number of RR-interval bytes, or the RR flag
            without any interval.
    """
    label = characteristic_label(HEART_RATE_MEASUREMENT)
    check_received_at(received_at)
    if not payload:
        raise DecodeError(f"{label}: payload is empty, need at least the flags byte")
    flags = payload[0]
    fixed = 1 + (2 if flags & 0x01 else 1) + 2 * (flags >> 3 & 1)
    if flags & 0x10:
        if len(payload) < fixed + 2 or (len(payload) - fixed) % 2:
            raise DecodeError(
                f"{label}: payload is {len(payload)} bytes, flags 0x{flags:02X} need {fixed} "
                "plus 2 per RR interval (at least one)"
            )
    else:
        check_length(label, payload, flags, fixed)
    cursor = Cursor(payload, label, 1)
    rate = cursor.uint(2 if flags & 0x01 else 1)
    status: set[str] = set()
    details: Details = []
    contact = flags >> 1 & 0b11
    if contact & 0b10:
        status.add("sensor-contact-supported")
        status.add("sensor-contact-detected" if contact & 0b01 else "sensor-contact-not-detected")
    if flags & 0x08:
        details.append(("energy-expended-kj", cursor.uint(2)))
    if flags & 0x10:
        intervals = tuple(cursor.uint(2) / RR_INTERVAL_RESOLUTION for _ in range(cursor.remaining // 2))
        details.append(("rr-intervals", intervals))
    return Reading(
        kind=ReadingKind.HEART_RATE,
        quantities=(Quantity(code="value", value=float(rate), unit="/min"),),
        measured_at=received_at,
        time_source=TimeSource.RECEPTION,
        device=device,
        status=frozenset(status),
        details=tuple(details),
    )
