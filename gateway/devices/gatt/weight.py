"""Weight Scale profile: Weight Measurement (0x2A9D).

Pure: no I/O. Layout from the Weight Scale Service specification (WSS 1.0) and the Bluetooth SIG GATT
Specification Supplement: flags, the weight (uint16, 0.005 kg or 0.01 lb; 0xFFFF "Measurement Unsuccessful"),
then an optional Date Time, user id, and BMI with height.
"""

from __future__ import annotations

from datetime import datetime

from gateway.devices.gatt.common import (
    Cursor,
    Details,
    check_received_at,
    choose_time,
    read_flags,
    record_user_id,
)
from gateway.devices.gatt.uuids import WEIGHT_MEASUREMENT, characteristic_label
from gateway.devices.readings import DeviceIdentity, NoValue, Quantity, Reading, ReadingKind

__all__ = ["WEIGHT_MEASUREMENT_UNSUCCESSFUL", "decode_weight"]

WEIGHT_MEASUREMENT_UNSUCCESSFUL = 0xFFFF
"""The Weight field's special value "Measurement Unsuccessful"."""


def decode_weight(payload: bytes, *, device: DeviceIdentity, received_at: datetime) -> Reading:
    """Decode a Weight Measurement (0x2A9D): kg (0.005) or [lb_av] (0.01), options, BMI and height.

    Raises:
        DecodeError: truncated payload, trailing bytes or bad timestamp.
    """
    label = characteristic_label(WEIGHT_MEASUREMENT)
    check_received_at(received_at)
    flags = read_flags(label, payload, lambda f: 2 + 7 * (f >> 1 & 1) + (f >> 2 & 1) + 4 * (f >> 3 & 1))
    cursor = Cursor(payload, label, 1)
    imperial = bool(flags & 0x01)
    raw_weight = cursor.uint(2)
    status: set[str] = set()
    details: Details = []
    weight_unit = "[lb_av]" if imperial else "kg"
    if raw_weight == WEIGHT_MEASUREMENT_UNSUCCESSFUL:
        status.add("measurement-unsuccessful")
        quantities = [Quantity(code="value", value=None, unit=weight_unit, no_value=NoValue.NAN)]
    else:
        weight = raw_weight / 100 if imperial else raw_weight * 5 / 1000
        quantities = [Quantity(code="value", value=weight, unit=weight_unit)]
    device_time: datetime | None = None
    if flags & 0x02:
        device_time = cursor.date_time()
        if device_time is None:
            status.add("device-time-unknown")
    if flags & 0x04:
        record_user_id(cursor.uint(1), status, details)
    if flags & 0x08:
        bmi = cursor.uint(2) / 10
        raw_height = cursor.uint(2)
        quantities.append(Quantity(code="bmi", value=bmi, unit="kg/m2"))
        if imperial:
            quantities.append(Quantity(code="height", value=raw_height / 10, unit="[in_i]"))
        else:
            quantities.append(Quantity(code="height", value=raw_height / 1000, unit="m"))
    measured_at, source = choose_time(device_time, received_at)
    return Reading(
        kind=ReadingKind.BODY_WEIGHT,
        quantities=tuple(quantities),
        measured_at=measured_at,
        time_source=source,
        device=device,
        status=frozenset(status),
        details=tuple(details),
    )
