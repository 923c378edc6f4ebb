"""Pulse Oximeter profile: PLX Spot-check Measurement (0x2A5E) and PLX Continuous Measurement (0x2A5F).

Pure: no I/O. Layouts from the Pulse Oximeter Service specification (PLXS 1.0) and the Bluetooth SIG GATT
Specification Supplement: flags, SpO2 in % and pulse rate SFLOATs, then the options each flag announces
(Date Time, fast and slow pairs, Measurement Status, Device and Sensor Status, pulse amplitude index).
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
    detail_number,
    quantity,
    read_flags,
)
from gateway.devices.gatt.uuids import PLX_CONTINUOUS_MEASUREMENT, PLX_SPOT_CHECK_MEASUREMENT, characteristic_label
from gateway.devices.readings import DeviceIdentity, Reading, ReadingKind, TimeSource

__all__ = [
    "PLX_DEVICE_SENSOR_STATUS_BITS",
    "PLX_MEASUREMENT_STATUS_BITS",
    "decode_plx_continuous",
    "decode_plx_spot_check",
]

PLX_MEASUREMENT_STATUS_BITS: Mapping[int, str] = MappingProxyType(
    {
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
)
"""PLX Measurement Status (16 bits): bits 0-4 are reserved."""

PLX_DEVICE_SENSOR_STATUS_BITS: Mapping[int, str] = MappingProxyType(
    {
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
)
"""PLX Device and Sensor Status (24 bits): bits 16-23 are reserved."""


def _statuses(cursor: Cursor, measurement: bool, device_sensor: bool, status: set[str]) -> None:
    """Read the optional PLX Measurement Status and Device and Sensor Status fields into `status`."""
    if measurement:
        status |= bit_names(cursor.uint(2), PLX_MEASUREMENT_STATUS_BITS)
    if device_sensor:
        status |= bit_names(cursor.uint(3), PLX_DEVICE_SENSOR_STATUS_BITS)


def decode_plx_spot_check(payload: bytes, *, device: DeviceIdentity, received_at: datetime) -> Reading:
    """Decode a PLX Spot-check Measurement (0x2A5E): SpO2 in % and pulse rate, with options and statuses.

    Raises:
        DecodeError: truncated payload, trailing bytes or bad timestamp.
    """
    label = characteristic_label(PLX_SPOT_CHECK_MEASUREMENT)
    check_received_at(received_at)
    flags = read_flags(
        label,
        payload,
        lambda f: 4 + 7 * (f & 1) + 2 * (f >> 1 & 1) + 3 * (f >> 2 & 1) + 2 * (f >> 3 & 1),
    )
    cursor = Cursor(payload, label, 1)
    quantities = (
        quantity("spo2", cursor.sfloat(), "%"),
        quantity("pulse-rate", cursor.sfloat(), "/min"),
    )
    status: set[str] = set()
    details: Details = []
    device_time: datetime | None = None
    if flags & 0x01:
        device_time = cursor.date_time()
        if device_time is None:
            status.add("device-time-unknown")
    if flags & 0x10:
        status.add("device-clock-not-set")
        device_time = None
    _statuses(cursor, bool(flags & 0x02), bool(flags & 0x04), status)
    if flags & 0x08:
        details.append(("pulse-amplitude-index", detail_number(cursor.sfloat())))
    measured_at, source = choose_time(device_time, received_at)
    return Reading(
        kind=ReadingKind.OXYGEN_SATURATION,
        quantities=quantities,
        measured_at=measured_at,
        time_source=source,
        device=device,
        status=frozenset(status),
        details=tuple(details),
    )


def decode_plx_continuous(payload: bytes, *, device: DeviceIdentity, received_at: datetime) -> Reading:
    """Decode a PLX Continuous Measurement (0x2A5F): SpO2 and pulse rate, optional fast and slow pairs.

    It has no timestamp: `measured_at` is always the reception time.

    Raises:
        DecodeError: truncated payload or trailing bytes.
    """
    label = characteristic_label(PLX_CONTINUOUS_MEASUREMENT)
    check_received_at(received_at)
    flags = read_flags(
        label,
        payload,
        lambda f: 4 + 4 * (f & 1) + 4 * (f >> 1 & 1) + 2 * (f >> 2 & 1) + 3 * (f >> 3 & 1) + 2 * (f >> 4 & 1),
    )
    cursor = Cursor(payload, label, 1)
    quantities = [
        quantity("spo2", cursor.sfloat(), "%"),
        quantity("pulse-rate", cursor.sfloat(), "/min"),
    ]
    if flags & 0x01:
        quantities.append(quantity("spo2-fast", cursor.sfloat(), "%"))
        quantities.append(quantity("pulse-rate-fast", cursor.sfloat(), "/min"))
    if flags & 0x02:
        quantities.append(quantity("spo2-slow", cursor.sfloat(), "%"))
        quantities.append(quantity("pulse-rate-slow", cursor.sfloat(), "/min"))
    status: set[str] = set()
    details: Details = []
    _statuses(cursor, bool(flags & 0x04), bool(flags & 0x08), status)
    if flags & 0x10:
        details.append(("pulse-amplitude-index", detail_number(cursor.sfloat())))
    return Reading(
        kind=ReadingKind.OXYGEN_SATURATION,
        quantities=tuple(quantities),
        measured_at=received_at,
        time_source=TimeSource.RECEPTION,
        device=device,
        status=frozenset(status),
        details=tuple(details),
    )
