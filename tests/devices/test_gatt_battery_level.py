"""Battery Level (0x2A19).

Vectors and their sources:
- [NordicBattery] NordicSemiconductor/Android-BLE-Common-Library,
  ble-common/src/test/java/no/nordicsemi/android/ble/common/callback/battery/BatteryLevelDataCallbackTest.java:
  [0x64] = 100 (full), [0x0F] = 15 (low), [0x64, 0x00] invalid (too long), [0x65] invalid (out of range).
"""

from __future__ import annotations

import pytest

from gateway.devices.gatt import decode_battery_level
from gateway.errors import DecodeError


@pytest.mark.parametrize(("payload", "percent"), [(bytes([0x64]), 100), (bytes([0x0F]), 15), (bytes([0]), 0)])
def test_levels(payload: bytes, percent: int) -> None:
    assert decode_battery_level(payload) == percent  # [NordicBattery]


def test_too_long() -> None:
    with pytest.raises(DecodeError) as info:
        decode_battery_level(bytes([0x64, 0x00]))  # [NordicBattery] onInvalidDataReceived_dataTooLong
    assert str(info.value) == "0x2A19 Battery Level: payload is 2 bytes, need exactly 1"


def test_out_of_range() -> None:
    with pytest.raises(DecodeError) as info:
        decode_battery_level(bytes([0x65]))  # [NordicBattery] onInvalidDataReceived_batteryLevelOutOfRange
    assert str(info.value) == "0x2A19 Battery Level: 101 is not a percentage (0..100)"


def test_empty() -> None:
    with pytest.raises(DecodeError, match="payload is 0 bytes, need exactly 1"):
        decode_battery_level(b"")
