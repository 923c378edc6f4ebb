"""Pure decoders for the standard Bluetooth LE health characteristics (HTS, BLS, PLXS, HRS, WSS, BAS, DIS).

Pure: no I/O, no asyncio. Each `decode_xxx` takes the characteristic's value exactly as received and returns a
`Reading` (or a plain value for the non-measurement characteristics); `decode` dispatches on the 16-bit UUID.
Layouts follow the Bluetooth SIG GATT Specification Supplement; every multi-byte field is little-endian.

Rules that are choices, not the specification's:

* Time. A Date Time field whose year, month or day is 0 ("not known") is not usable: `measured_at` is then
  the gateway's `received_at` with `TimeSource.RECEPTION` and the status `device-time-unknown`. Hours,
  minutes and seconds of 0 are midnight, not "unknown". Device clocks carry no zone: their times are read as
  UTC (cabins are configured in UTC). A PLX Spot-check with the "device clock is not set" flag is treated the
  same way (status `device-clock-not-set`). Out-of-range fields (month 13, hour 24, 30 February) are a
  `DecodeError`.
* Strictness. A payload shorter than its flags require, or with bytes left over, is a `DecodeError`; so is
  a reserved value of an enumerated field (pulse-rate range 3, temperature type 0 or > 9). Reserved (RFU)
  bits of flags and status fields are ignored, as the specification asks of receivers.
* Names. Status flags are stable kebab-case strings in `Reading.status`; other extras go in `Reading.details`.
  A user id of 0xFF ("unknown user") is reported as the status `user-unknown` and no `user-id` detail.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType

from gateway.devices.readings import DeviceIdentity, NoValue, Quantity, Reading, ReadingKind, TimeSource
from gateway.devices.sfloat import float_from_raw, sfloat_from_raw
from gateway.errors import DecodeError

__all__ = [
    "BATTERY_LEVEL",
    "BATTERY_SERVICE",
    "BLOOD_PRESSURE_MEASUREMENT",
    "BLOOD_PRESSURE_SERVICE",
    "BLUETOOTH_BASE_UUID",
    "BP_PULSE_RATE_RANGE",
    "BP_STATUS_BITS",
    "CHARACTERISTIC_NAMES",
    "DEVICE_INFORMATION_SERVICE",
    "DEVICE_INFORMATION_STRINGS",
    "FIRMWARE_REVISION_STRING",
    "HARDWARE_REVISION_STRING",
    "HEALTH_THERMOMETER_SERVICE",
    "HEART_RATE_MEASUREMENT",
    "HEART_RATE_SERVICE",
    "MANUFACTURER_NAME_STRING",
    "MEASUREMENT_CHARACTERISTICS",
    "MODEL_NUMBER_STRING",
    "PLX_CONTINUOUS_MEASUREMENT",
    "PLX_DEVICE_SENSOR_STATUS_BITS",
    "PLX_MEASUREMENT_STATUS_BITS",
    "PLX_SPOT_CHECK_MEASUREMENT",
    "PULSE_OXIMETER_SERVICE",
    "SERIAL_NUMBER_STRING",
    "SERVICE_NAMES",
    "SOFTWARE_REVISION_STRING",
    "TEMPERATURE_MEASUREMENT",
    "TEMPERATURE_TYPE",
    "USER_ID_UNKNOWN",
    "WEIGHT_MEASUREMENT",
    "WEIGHT_MEASUREMENT_UNSUCCESSFUL",
    "WEIGHT_SCALE_SERVICE",
    "TemperatureType",
    "apply_device_information",
    "characteristic_label",
    "decode",
    "decode_battery_level",
    "decode_blood_pressure",
    "decode_device_information_string",
    "decode_firmware_revision",
    "decode_hardware_revision",
    "decode_heart_rate",
    "decode_manufacturer_name",
    "decode_model_number",
    "decode_plx_continuous",
    "decode_plx_spot_check",
    "decode_serial_number",
    "decode_software_revision",
    "decode_temperature",
    "decode_temperature_type",
    "decode_weight",
    "parse_uuid16",
    "uuid128",
]

# --- UUIDs --------------------------------------------------------------------------------------------------

BLUETOOTH_BASE_UUID = "0000xxxx-0000-1000-8000-00805f9b34fb"
"""The Bluetooth Base UUID; a 16-bit UUID replaces `xxxx`."""

HEALTH_THERMOMETER_SERVICE = 0x1809
DEVICE_INFORMATION_SERVICE = 0x180A
HEART_RATE_SERVICE = 0x180D
BATTERY_SERVICE = 0x180F
BLOOD_PRESSURE_SERVICE = 0x1810
WEIGHT_SCALE_SERVICE = 0x181D
PULSE_OXIMETER_SERVICE = 0x1822

TEMPERATURE_MEASUREMENT = 0x2A1C
TEMPERATURE_TYPE = 0x2A1D
BATTERY_LEVEL = 0x2A19
MODEL_NUMBER_STRING = 0x2A24
SERIAL_NUMBER_STRING = 0x2A25
FIRMWARE_REVISION_STRING = 0x2A26
HARDWARE_REVISION_STRING = 0x2A27
SOFTWARE_REVISION_STRING = 0x2A28
MANUFACTURER_NAME_STRING = 0x2A29
BLOOD_PRESSURE_MEASUREMENT = 0x2A35
HEART_RATE_MEASUREMENT = 0x2A37
PLX_SPOT_CHECK_MEASUREMENT = 0x2A5E
PLX_CONTINUOUS_MEASUREMENT = 0x2A5F
WEIGHT_MEASUREMENT = 0x2A9D

SERVICE_NAMES: Mapping[int, str] = MappingProxyType(
    {
        HEALTH_THERMOMETER_SERVICE: "Health Thermometer",
        DEVICE_INFORMATION_SERVICE: "Device Information",
        HEART_RATE_SERVICE: "Heart Rate",
        BATTERY_SERVICE: "Battery",
        BLOOD_PRESSURE_SERVICE: "Blood Pressure",
        WEIGHT_SCALE_SERVICE: "Weight Scale",
        PULSE_OXIMETER_SERVICE: "Pulse Oximeter",
    }
)
"""The services the gateway knows, by 16-bit UUID."""

CHARACTERISTIC_NAMES: Mapping[int, str] = MappingProxyType(
    {
        TEMPERATURE_MEASUREMENT: "Temperature Measurement",
        TEMPERATURE_TYPE: "Temperature Type",
        BATTERY_LEVEL: "Battery Level",
        MODEL_NUMBER_STRING: "Model Number String",
        SERIAL_NUMBER_STRING: "Serial Number String",
        FIRMWARE_REVISION_STRING: "Firmware Revision String",
        HARDWARE_REVISION_STRING: "Hardware Revision String",
        SOFTWARE_REVISION_STRING: "Software Revision String",
        MANUFACTURER_NAME_STRING: "Manufacturer Name String",
        BLOOD_PRESSURE_MEASUREMENT: "Blood Pressure Measurement",
        HEART_RATE_MEASUREMENT: "Heart Rate Measurement",
        PLX_SPOT_CHECK_MEASUREMENT: "PLX Spot-check Measurement",
        PLX_CONTINUOUS_MEASUREMENT: "PLX Continuous Measurement",
        WEIGHT_MEASUREMENT: "Weight Measurement",
    }
)
"""The characteristics the gateway knows, by 16-bit UUID."""

MEASUREMENT_CHARACTERISTICS: Mapping[int, int] = MappingProxyType(
    {
        TEMPERATURE_MEASUREMENT: HEALTH_THERMOMETER_SERVICE,
        BLOOD_PRESSURE_MEASUREMENT: BLOOD_PRESSURE_SERVICE,
        PLX_SPOT_CHECK_MEASUREMENT: PULSE_OXIMETER_SERVICE,
        PLX_CONTINUOUS_MEASUREMENT: PULSE_OXIMETER_SERVICE,
        HEART_RATE_MEASUREMENT: HEART_RATE_SERVICE,
        WEIGHT_MEASUREMENT: WEIGHT_SCALE_SERVICE,
    }
)
"""The characteristics `decode` turns into Readings, each with the service that holds it."""

DEVICE_INFORMATION_STRINGS: Mapping[int, str] = MappingProxyType(
    {
        MANUFACTURER_NAME_STRING: "manufacturer",
        MODEL_NUMBER_STRING: "model",
        SERIAL_NUMBER_STRING: "serial",
        FIRMWARE_REVISION_STRING: "firmware",
        HARDWARE_REVISION_STRING: "hardware",
        SOFTWARE_REVISION_STRING: "software",
    }
)
"""The Device Information string characteristics, each with a short name."""

_UUID16_RE = re.compile(r"(?:0[xX])?([0-9a-fA-F]{4})")
_UUID128_RE = re.compile(r"0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb")


def uuid128(uuid16: int) -> str:
    """The full 128-bit form of a 16-bit Bluetooth UUID, lower case as bleak reports it.

    Raises:
        ValueError: `uuid16` is not in 0..0xFFFF.
    """
    if not 0 <= uuid16 <= 0xFFFF:
        raise ValueError(f"a 16-bit UUID must be in 0..0xFFFF, got {uuid16:#x}")
    return BLUETOOTH_BASE_UUID.replace("xxxx", f"{uuid16:04x}")


def parse_uuid16(text: str) -> int:
    """Parse "2A35", "0x2a35" or "00002a35-0000-1000-8000-00805f9b34fb" to the 16-bit UUID 0x2A35.

    Raises:
        DecodeError: the text is none of these forms, or a 128-bit UUID outside the Bluetooth base.
    """
    stripped = text.strip()
    short = _UUID16_RE.fullmatch(stripped)
    if short is not None:
        return int(short.group(1), 16)
    if len(stripped) == 36:
        full = _UUID128_RE.fullmatch(stripped.lower())
        if full is not None:
            return int(full.group(1), 16)
        if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", stripped.lower()):
            raise DecodeError(f"UUID {text!r} is not a 16-bit Bluetooth UUID (not on the Bluetooth base UUID)")
    raise DecodeError(
        f"characteristic {text!r} is not a UUID: expected 4 hex digits like 2A35 or 0x2A35, "
        "or 0000xxxx-0000-1000-8000-00805f9b34fb"
    )


def characteristic_label(uuid16: int) -> str:
    """ "0x2A35 Blood Pressure Measurement": how error messages name a characteristic."""
    name = CHARACTERISTIC_NAMES.get(uuid16)
    return f"0x{uuid16:04X} {name}" if name else f"0x{uuid16:04X}"


# --- Enumerations -------------------------------------------------------------------------------------------


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

WEIGHT_MEASUREMENT_UNSUCCESSFUL = 0xFFFF
"""The Weight field's special value "Measurement Unsuccessful"."""

USER_ID_UNKNOWN = 0xFF
"""The User ID field's special value "unknown user"."""

# --- Low-level reading --------------------------------------------------------------------------------------


class _Cursor:
    """Reads fields in order from a payload whose length was already checked against its flags."""

    __slots__ = ("_data", "_label", "_offset")

    def __init__(self, data: bytes, label: str, offset: int = 0) -> None:
        self._data = data
        self._label = label
        self._offset = offset

    @property
    def remaining(self) -> int:
        return len(self._data) - self._offset

    def take(self, size: int) -> bytes:
        """The next `size` bytes.

        Raises:
            DecodeError: fewer than `size` bytes are left.
        """
        if self.remaining < size:
            raise DecodeError(f"{self._label}: payload ends at byte {len(self._data)}, field needs {size} more")
        chunk = self._data[self._offset : self._offset + size]
        self._offset += size
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "little")

    def sfloat(self) -> float | NoValue:
        return sfloat_from_raw(self.uint(2))

    def float32(self) -> float | NoValue:
        return float_from_raw(self.uint(4))

    def date_time(self) -> datetime | None:
        """A 7-byte Date Time as an aware UTC datetime, or None when year, month or day is 0 (not known).

        Raises:
            DecodeError: a field is out of its range, or the date does not exist.
        """
        year = self.uint(2)
        month, day, hour, minute, second = self.take(5)
        for field_name, value, low, high in (
            ("year", year, 1582, 9999),
            ("month", month, 1, 12),
            ("day", day, 1, 31),
            ("hours", hour, 0, 23),
            ("minutes", minute, 0, 59),
            ("seconds", second, 0, 59),
        ):
            if value == 0 and field_name in ("year", "month", "day"):
                continue
            if not low <= value <= high:
                unknown = " (or 0, not known)" if field_name in ("year", "month", "day") else ""
                raise DecodeError(
                    f"{self._label}: timestamp {field_name} {value} is out of range {low}..{high}{unknown}"
                )
        if year == 0 or month == 0 or day == 0:
            return None
        try:
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            raise DecodeError(
                f"{self._label}: timestamp {year:04d}-{month:02d}-{day:02d} is not a calendar date"
            ) from None


def _flags_and_length(label: str, payload: bytes, fields: Callable[[int], int]) -> int:
    """Read the flags byte and check the payload length against the size its flags announce.

    Raises:
        DecodeError: the payload is empty, shorter or longer than the flags require.
    """
    if not payload:
        raise DecodeError(f"{label}: payload is empty, need at least the flags byte")
    flags = payload[0]
    need = 1 + fields(flags)
    _check_length(label, payload, flags, need)
    return flags


def _check_length(label: str, payload: bytes, flags: int, need: int) -> None:
    """Check an exact payload length.

    Raises:
        DecodeError: shorter (truncated) or longer (trailing bytes) than `need`.
    """
    size = len(payload)
    if size < need:
        raise DecodeError(f"{label}: payload is {size} bytes, flags 0x{flags:02X} need {need}")
    if size > need:
        raise DecodeError(
            f"{label}: payload is {size} bytes, flags 0x{flags:02X} need {need} ({size - need} trailing bytes)"
        )


def _quantity(code: str, value: float | NoValue, unit: str) -> Quantity:
    """A Quantity from a decoded number or its NoValue reason."""
    if isinstance(value, NoValue):
        return Quantity(code=code, value=None, unit=unit, no_value=value)
    return Quantity(code=code, value=value, unit=unit)


def _detail_number(value: float | NoValue) -> float | str:
    """A decoded number for `Reading.details`: the number, or its NoValue reason as text."""
    return value.value if isinstance(value, NoValue) else value


def _check_received_at(received_at: datetime) -> None:
    """Check the gateway's reception time.

    Raises:
        ValueError: `received_at` is naive.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")


def _time(device_time: datetime | None, received_at: datetime) -> tuple[datetime, TimeSource]:
    """Choose `measured_at`: the device's time when usable, else the reception time."""
    if device_time is None:
        return received_at, TimeSource.RECEPTION
    return device_time, TimeSource.DEVICE


def _bits(value: int, names: Mapping[int, str]) -> set[str]:
    """The names of the set bits of `value` that have one."""
    return {name for bit, name in names.items() if value >> bit & 1}


# --- Measurements -------------------------------------------------------------------------------------------


def decode_temperature(payload: bytes, *, device: DeviceIdentity, received_at: datetime) -> Reading:
    """Decode a Temperature Measurement (0x2A1C): FLOAT in Cel or [degF], optional time and temperature type.

    Raises:
        DecodeError: truncated payload, trailing bytes, bad timestamp or reserved temperature type.
    """
    label = characteristic_label(TEMPERATURE_MEASUREMENT)
    _check_received_at(received_at)
    flags = _flags_and_length(label, payload, lambda f: 4 + 7 * (f >> 1 & 1) + (f >> 2 & 1))
    cursor = _Cursor(payload, label, 1)
    unit = "[degF]" if flags & 0x01 else "Cel"
    value = cursor.float32()
    status: set[str] = set()
    details: list[tuple[str, str | int | float | bool]] = []
    device_time: datetime | None = None
    if flags & 0x02:
        device_time = cursor.date_time()
        if device_time is None:
            status.add("device-time-unknown")
    if flags & 0x04:
        details.append(("temperature-type", _temperature_type(label, cursor.uint(1)).label))
    measured_at, source = _time(device_time, received_at)
    return Reading(
        kind=ReadingKind.BODY_TEMPERATURE,
        quantities=(_quantity("value", value, unit),),
        measured_at=measured_at,
        time_source=source,
        device=device,
        status=frozenset(status),
        details=tuple(details),
    )


def _temperature_type(label: str, raw: int) -> TemperatureType:
    """The temperature type for a raw value.

    Raises:
        DecodeError: the value is reserved (0 or above 9).
    """
    try:
        return TemperatureType(raw)
    except ValueError:
        raise DecodeError(f"{label}: temperature type {raw} is reserved (expected 1..9)") from None


def decode_blood_pressure(payload: bytes, *, device: DeviceIdentity, received_at: datetime) -> Reading:
    """Decode a Blood Pressure Measurement (0x2A35): systolic, diastolic, mean in mm[Hg] or kPa, and options.

    Raises:
        DecodeError: truncated payload, trailing bytes, bad timestamp or reserved pulse-rate range.
    """
    label = characteristic_label(BLOOD_PRESSURE_MEASUREMENT)
    _check_received_at(received_at)
    flags = _flags_and_length(
        label,
        payload,
        lambda f: 6 + 7 * (f >> 1 & 1) + 2 * (f >> 2 & 1) + (f >> 3 & 1) + 2 * (f >> 4 & 1),
    )
    cursor = _Cursor(payload, label, 1)
    unit = "kPa" if flags & 0x01 else "mm[Hg]"
    quantities = [
        _quantity("systolic", cursor.sfloat(), unit),
        _quantity("diastolic", cursor.sfloat(), unit),
        _quantity("mean", cursor.sfloat(), unit),
    ]
    status: set[str] = set()
    details: list[tuple[str, str | int | float | bool]] = []
    device_time: datetime | None = None
    if flags & 0x02:
        device_time = cursor.date_time()
        if device_time is None:
            status.add("device-time-unknown")
    if flags & 0x04:
        quantities.append(_quantity("pulse-rate", cursor.sfloat(), "/min"))
    if flags & 0x08:
        _user_id(cursor.uint(1), status, details)
    if flags & 0x10:
        raw_status = cursor.uint(2)
        status |= _bits(raw_status, BP_STATUS_BITS)
        pulse_range = raw_status >> 3 & 0b11
        range_name = BP_PULSE_RATE_RANGE.get(pulse_range)
        if range_name is None:
            raise DecodeError(f"{label}: measurement status 0x{raw_status:04X} has the reserved pulse-rate range 3")
        details.append(("pulse-rate-range", range_name))
        if pulse_range:
            status.add(f"pulse-rate-{range_name}")
    measured_at, source = _time(device_time, received_at)
    return Reading(
        kind=ReadingKind.BLOOD_PRESSURE,
        quantities=tuple(quantities),
        measured_at=measured_at,
        time_source=source,
        device=device,
        status=frozenset(status),
        details=tuple(details),
    )


def _user_id(raw: int, status: set[str], details: list[tuple[str, str | int | float | bool]]) -> None:
    """Record a User ID field: a `user-id` detail, or the status `user-unknown` for 0xFF."""
    if raw == USER_ID_UNKNOWN:
        status.add("user-unknown")
    else:
        details.append(("user-id", raw))


def _plx_statuses(
    cursor: _Cursor, measurement: bool, device_sensor: bool, status: set[str]
) -> tuple[int | None, int | None]:
    """Read the optional PLX Measurement Status and Device and Sensor Status fields into `status`."""
    raw_measurement = raw_device = None
    if measurement:
        raw_measurement = cursor.uint(2)
        status |= _bits(raw_measurement, PLX_MEASUREMENT_STATUS_BITS)
    if device_sensor:
        raw_device = cursor.uint(3)
        status |= _bits(raw_device, PLX_DEVICE_SENSOR_STATUS_BITS)
    return raw_measurement, raw_device


def decode_plx_spot_check(payload: bytes, *, device: DeviceIdentity, received_at: datetime) -> Reading:
    """Decode a PLX Spot-check Measurement (0x2A5E): SpO2 in % and pulse rate, with options and statuses.

    Raises:
        DecodeError: truncated payload, trailing bytes or bad timestamp.
    """
    label = characteristic_label(PLX_SPOT_CHECK_MEASUREMENT)
    _check_received_at(received_at)
    flags = _flags_and_length(
        label,
        payload,
        lambda f: 4 + 7 * (f & 1) + 2 * (f >> 1 & 1) + 3 * (f >> 2 & 1) + 2 * (f >> 3 & 1),
    )
    cursor = _Cursor(payload, label, 1)
    quantities = (
        _quantity("spo2", cursor.sfloat(), "%"),
        _quantity("pulse-rate", cursor.sfloat(), "/min"),
    )
    status: set[str] = set()
    details: list[tuple[str, str | int | float | bool]] = []
    device_time: datetime | None = None
    if flags & 0x01:
        device_time = cursor.date_time()
        if device_time is None:
            status.add("device-time-unknown")
    if flags & 0x10:
        status.add("device-clock-not-set")
        device_time = None
    _plx_statuses(cursor, bool(flags & 0x02), bool(flags & 0x04), status)
    if flags & 0x08:
        details.append(("pulse-amplitude-index", _detail_number(cursor.sfloat())))
    measured_at, source = _time(device_time, received_at)
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
    _check_received_at(received_at)
    flags = _flags_and_length(
        label,
        payload,
        lambda f: 4 + 4 * (f & 1) + 4 * (f >> 1 & 1) + 2 * (f >> 2 & 1) + 3 * (f >> 3 & 1) + 2 * (f >> 4 & 1),
    )
    cursor = _Cursor(payload, label, 1)
    quantities = [
        _quantity("spo2", cursor.sfloat(), "%"),
        _quantity("pulse-rate", cursor.sfloat(), "/min"),
    ]
    if flags & 0x01:
        quantities.append(_quantity("spo2-fast", cursor.sfloat(), "%"))
        quantities.append(_quantity("pulse-rate-fast", cursor.sfloat(), "/min"))
    if flags & 0x02:
        quantities.append(_quantity("spo2-slow", cursor.sfloat(), "%"))
        quantities.append(_quantity("pulse-rate-slow", cursor.sfloat(), "/min"))
    status: set[str] = set()
    details: list[tuple[str, str | int | float | bool]] = []
    _plx_statuses(cursor, bool(flags & 0x04), bool(flags & 0x08), status)
    if flags & 0x10:
        details.append(("pulse-amplitude-index", _detail_number(cursor.sfloat())))
    return Reading(
        kind=ReadingKind.OXYGEN_SATURATION,
        quantities=tuple(quantities),
        measured_at=received_at,
        time_source=TimeSource.RECEPTION,
        device=device,
        status=frozenset(status),
        details=tuple(details),
    )


def decode_heart_rate(payload: bytes, *, device: DeviceIdentity, received_at: datetime) -> Reading:
    """Decode a Heart Rate Measurement (0x2A37): rate in /min, sensor contact, energy expended, RR intervals.

    RR intervals go in the detail `rr-intervals` as comma-separated seconds (exact: raw / 1024).

    Raises:
        DecodeError: truncated payload, trailing bytes, an odd number of RR-interval bytes, or the RR flag
            without any interval.
    """
    label = characteristic_label(HEART_RATE_MEASUREMENT)
    _check_received_at(received_at)
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
        _check_length(label, payload, flags, fixed)
    cursor = _Cursor(payload, label, 1)
    rate = cursor.uint(2 if flags & 0x01 else 1)
    status: set[str] = set()
    details: list[tuple[str, str | int | float | bool]] = []
    contact = flags >> 1 & 0b11
    if contact & 0b10:
        status.add("sensor-contact-supported")
        status.add("sensor-contact-detected" if contact & 0b01 else "sensor-contact-not-detected")
    if flags & 0x08:
        details.append(("energy-expended-kj", cursor.uint(2)))
    if flags & 0x10:
        intervals = [cursor.uint(2) / 1024 for _ in range(cursor.remaining // 2)]
        details.append(("rr-intervals", ",".join(repr(i) for i in intervals)))
    return Reading(
        kind=ReadingKind.HEART_RATE,
        quantities=(Quantity(code="value", value=float(rate), unit="/min"),),
        measured_at=received_at,
        time_source=TimeSource.RECEPTION,
        device=device,
        status=frozenset(status),
        details=tuple(details),
    )


def decode_weight(payload: bytes, *, device: DeviceIdentity, received_at: datetime) -> Reading:
    """Decode a Weight Measurement (0x2A9D): kg (0.005) or [lb_av] (0.01), options, BMI and height.

    Raises:
        DecodeError: truncated payload, trailing bytes or bad timestamp.
    """
    label = characteristic_label(WEIGHT_MEASUREMENT)
    _check_received_at(received_at)
    flags = _flags_and_length(label, payload, lambda f: 2 + 7 * (f >> 1 & 1) + (f >> 2 & 1) + 4 * (f >> 3 & 1))
    cursor = _Cursor(payload, label, 1)
    imperial = bool(flags & 0x01)
    raw_weight = cursor.uint(2)
    status: set[str] = set()
    details: list[tuple[str, str | int | float | bool]] = []
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
        _user_id(cursor.uint(1), status, details)
    if flags & 0x08:
        bmi = cursor.uint(2) / 10
        raw_height = cursor.uint(2)
        quantities.append(Quantity(code="bmi", value=bmi, unit="kg/m2"))
        if imperial:
            quantities.append(Quantity(code="height", value=raw_height / 10, unit="[in_i]"))
        else:
            quantities.append(Quantity(code="height", value=raw_height / 1000, unit="m"))
    measured_at, source = _time(device_time, received_at)
    return Reading(
        kind=ReadingKind.BODY_WEIGHT,
        quantities=tuple(quantities),
        measured_at=measured_at,
        time_source=source,
        device=device,
        status=frozenset(status),
        details=tuple(details),
    )


_DECODERS: Mapping[int, Callable[..., Reading]] = MappingProxyType(
    {
        TEMPERATURE_MEASUREMENT: decode_temperature,
        BLOOD_PRESSURE_MEASUREMENT: decode_blood_pressure,
        PLX_SPOT_CHECK_MEASUREMENT: decode_plx_spot_check,
        PLX_CONTINUOUS_MEASUREMENT: decode_plx_continuous,
        HEART_RATE_MEASUREMENT: decode_heart_rate,
        WEIGHT_MEASUREMENT: decode_weight,
    }
)


def decode(uuid16: int, payload: bytes, *, device: DeviceIdentity, received_at: datetime) -> Reading:
    """Decode the value of a measurement characteristic (see MEASUREMENT_CHARACTERISTICS) to a Reading.

    Raises:
        DecodeError: the characteristic is not a measurement, or its payload is malformed.
        ValueError: `received_at` is naive.
    """
    decoder = _DECODERS.get(uuid16)
    if decoder is None:
        what = "is not a measurement characteristic" if uuid16 in CHARACTERISTIC_NAMES else "is not known"
        raise DecodeError(f"characteristic {characteristic_label(uuid16)} {what}")
    return decoder(bytes(payload), device=device, received_at=received_at)


# --- Other characteristics ----------------------------------------------------------------------------------


def decode_battery_level(payload: bytes) -> int:
    """Decode a Battery Level (0x2A19) to a percentage 0..100.

    Raises:
        DecodeError: not exactly one byte, or above 100.
    """
    label = characteristic_label(BATTERY_LEVEL)
    if len(payload) != 1:
        raise DecodeError(f"{label}: payload is {len(payload)} bytes, need exactly 1")
    if payload[0] > 100:
        raise DecodeError(f"{label}: {payload[0]} is not a percentage (0..100)")
    return payload[0]


def decode_temperature_type(payload: bytes) -> TemperatureType:
    """Decode a Temperature Type (0x2A1D).

    Raises:
        DecodeError: not exactly one byte, or a reserved value.
    """
    label = characteristic_label(TEMPERATURE_TYPE)
    if len(payload) != 1:
        raise DecodeError(f"{label}: payload is {len(payload)} bytes, need exactly 1")
    return _temperature_type(label, payload[0])


def decode_device_information_string(uuid16: int, payload: bytes) -> str:
    """Decode a Device Information string characteristic: UTF-8, trailing NULs stripped.

    Raises:
        DecodeError: not a Device Information string characteristic, or not valid UTF-8.
    """
    label = characteristic_label(uuid16)
    if uuid16 not in DEVICE_INFORMATION_STRINGS:
        raise DecodeError(f"characteristic {label} is not a Device Information string")
    try:
        return bytes(payload).rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"{label}: not valid UTF-8 at byte {exc.start} ({exc.reason})") from None


def decode_manufacturer_name(payload: bytes) -> str:
    """Decode a Manufacturer Name String (0x2A29).

    Raises:
        DecodeError: not valid UTF-8.
    """
    return decode_device_information_string(MANUFACTURER_NAME_STRING, payload)


def decode_model_number(payload: bytes) -> str:
    """Decode a Model Number String (0x2A24).

    Raises:
        DecodeError: not valid UTF-8.
    """
    return decode_device_information_string(MODEL_NUMBER_STRING, payload)


def decode_serial_number(payload: bytes) -> str:
    """Decode a Serial Number String (0x2A25).

    Raises:
        DecodeError: not valid UTF-8.
    """
    return decode_device_information_string(SERIAL_NUMBER_STRING, payload)


def decode_firmware_revision(payload: bytes) -> str:
    """Decode a Firmware Revision String (0x2A26).

    Raises:
        DecodeError: not valid UTF-8.
    """
    return decode_device_information_string(FIRMWARE_REVISION_STRING, payload)


def decode_hardware_revision(payload: bytes) -> str:
    """Decode a Hardware Revision String (0x2A27).

    Raises:
        DecodeError: not valid UTF-8.
    """
    return decode_device_information_string(HARDWARE_REVISION_STRING, payload)


def decode_software_revision(payload: bytes) -> str:
    """Decode a Software Revision String (0x2A28).

    Raises:
        DecodeError: not valid UTF-8.
    """
    return decode_device_information_string(SOFTWARE_REVISION_STRING, payload)


def apply_device_information(identity: DeviceIdentity, uuid16: int, payload: bytes) -> DeviceIdentity:
    """A copy of `identity` with the field a Device Information string fills (manufacturer, model...).

    Hardware and software revisions have no field in DeviceIdentity and leave it unchanged.

    Raises:
        DecodeError: not a Device Information string characteristic, or not valid UTF-8.
    """
    text = decode_device_information_string(uuid16, payload)
    field_name = DEVICE_INFORMATION_STRINGS[uuid16]
    if field_name in ("manufacturer", "model", "serial", "firmware"):
        return replace(identity, **{field_name: text})
    return identity
