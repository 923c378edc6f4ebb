"""Device Information profile: the manufacturer, model, serial and revision strings (0x2A24..0x2A29).

Pure: no I/O. Layout from the Device Information Service specification (DIS 1.1): each string characteristic is
UTF-8 text with no terminator (some devices pad it with NULs, which are stripped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from gateway.devices.gatt.uuids import (
    FIRMWARE_REVISION_STRING,
    HARDWARE_REVISION_STRING,
    MANUFACTURER_NAME_STRING,
    MODEL_NUMBER_STRING,
    SERIAL_NUMBER_STRING,
    SOFTWARE_REVISION_STRING,
    characteristic_label,
)
from gateway.devices.readings import DeviceIdentity
from gateway.errors import DecodeError

__all__ = [
    "DEVICE_INFORMATION_STRINGS",
    "apply_device_information",
    "decode_device_information_string",
    "decode_firmware_revision",
    "decode_hardware_revision",
    "decode_manufacturer_name",
    "decode_model_number",
    "decode_serial_number",
    "decode_software_revision",
]

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
