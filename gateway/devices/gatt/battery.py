"""Battery profile: Battery Level (0x2A19).

Pure: no I/O. Layout from the Battery Service specification (BAS 1.0): one uint8, a percentage 0..100.
"""

from __future__ import annotations

from gateway.devices.gatt.uuids import BATTERY_LEVEL, characteristic_label
from gateway.errors import DecodeError

__all__ = ["decode_battery_level"]


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
