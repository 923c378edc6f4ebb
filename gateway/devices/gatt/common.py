"""What the health profiles share: reading fields in order, the Date Time field, length checks, time choice.

Pure: no I/O. For the profile modules of this package, not for its users (who import from `gateway.devices.gatt`).
Layouts follow the Bluetooth SIG GATT Specification Supplement; every multi-byte field is little-endian. The
rules that are choices (time, strictness, names) are in the package's docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from gateway.devices.readings import DetailValue, NoValue, Quantity, TimeSource
from gateway.devices.sfloat import float_from_raw, sfloat_from_raw
from gateway.errors import DecodeError

__all__ = [
    "USER_ID_UNKNOWN",
    "Cursor",
    "Details",
    "bit_names",
    "check_length",
    "check_received_at",
    "choose_time",
    "detail_number",
    "quantity",
    "read_flags",
    "record_user_id",
]

USER_ID_UNKNOWN = 0xFF
"""The User ID field's special value "unknown user" (Blood Pressure and Weight Measurement)."""

Details = list[tuple[str, DetailValue]]
"""The `Reading.details` a decoder collects, in wire order."""


class Cursor:
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


def read_flags(label: str, payload: bytes, fields: Callable[[int], int]) -> int:
    """Read the flags byte and check the payload length against the size its flags announce.

    Raises:
        DecodeError: the payload is empty, shorter or longer than the flags require.
    """
    if not payload:
        raise DecodeError(f"{label}: payload is empty, need at least the flags byte")
    flags = payload[0]
    need = 1 + fields(flags)
    check_length(label, payload, flags, need)
    return flags


def check_length(label: str, payload: bytes, flags: int, need: int) -> None:
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


def quantity(code: str, value: float | NoValue, unit: str) -> Quantity:
    """A Quantity from a decoded number or its NoValue reason."""
    if isinstance(value, NoValue):
        return Quantity(code=code, value=None, unit=unit, no_value=value)
    return Quantity(code=code, value=value, unit=unit)


def detail_number(value: float | NoValue) -> float | str:
    """A decoded number for `Reading.details`: the number, or its NoValue reason as text."""
    return value.value if isinstance(value, NoValue) else value


def check_received_at(received_at: datetime) -> None:
    """Check the gateway's reception time.

    Raises:
        ValueError: `received_at` is naive.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")


def choose_time(device_time: datetime | None, received_at: datetime) -> tuple[datetime, TimeSource]:
    """Choose `measured_at`: the device's time when usable, else the reception time."""
    if device_time is None:
        return received_at, TimeSource.RECEPTION
    return device_time, TimeSource.DEVICE


def bit_names(value: int, names: Mapping[int, str]) -> set[str]:
    """The names of the set bits of `value` that have one."""
    return {name for bit, name in names.items() if value >> bit & 1}


def record_user_id(raw: int, status: set[str], details: Details) -> None:
    """Record a User ID field: a `user-id` detail, or the status `user-unknown` for 0xFF."""
    if raw == USER_ID_UNKNOWN:
        status.add("user-unknown")
    else:
        details.append(("user-id", raw))
