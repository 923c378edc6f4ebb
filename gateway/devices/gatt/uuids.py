"""Bluetooth UUIDs of the health services and characteristics the gateway knows, and how to write them.

Pure: no I/O. Numbers from the Bluetooth SIG Assigned Numbers (GATT services and characteristics); a 16-bit
UUID stands for its 128-bit form on the Bluetooth Base UUID.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from gateway.errors import DecodeError

__all__ = [
    "BATTERY_LEVEL",
    "BATTERY_SERVICE",
    "BLOOD_PRESSURE_MEASUREMENT",
    "BLOOD_PRESSURE_SERVICE",
    "BLUETOOTH_BASE_UUID",
    "CHARACTERISTIC_NAMES",
    "DEVICE_INFORMATION_SERVICE",
    "FIRMWARE_REVISION_STRING",
    "HARDWARE_REVISION_STRING",
    "HEALTH_SERVICE_KEYS",
    "HEALTH_THERMOMETER_SERVICE",
    "HEART_RATE_MEASUREMENT",
    "HEART_RATE_SERVICE",
    "MANUFACTURER_NAME_STRING",
    "MODEL_NUMBER_STRING",
    "PLX_CONTINUOUS_MEASUREMENT",
    "PLX_SPOT_CHECK_MEASUREMENT",
    "PULSE_OXIMETER_SERVICE",
    "SERIAL_NUMBER_STRING",
    "SERVICE_NAMES",
    "SOFTWARE_REVISION_STRING",
    "TEMPERATURE_MEASUREMENT",
    "TEMPERATURE_TYPE",
    "WEIGHT_MEASUREMENT",
    "WEIGHT_SCALE_SERVICE",
    "characteristic_label",
    "parse_uuid16",
    "uuid128",
]

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

HEALTH_SERVICE_KEYS: Mapping[str, int] = MappingProxyType(
    {
        "thermometer": HEALTH_THERMOMETER_SERVICE,
        "blood-pressure": BLOOD_PRESSURE_SERVICE,
        "pulse-oximeter": PULSE_OXIMETER_SERVICE,
        "heart-rate": HEART_RATE_SERVICE,
        "weight-scale": WEIGHT_SCALE_SERVICE,
    }
)
"""The health services by the short names a cabin's configuration uses (devices.allow = ["blood-pressure"])."""

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
