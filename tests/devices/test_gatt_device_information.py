"""Device Information strings (0x2A29 manufacturer, 0x2A24 model, 0x2A25 serial, 0x2A26 firmware, 0x2A27
hardware, 0x2A28 software).

The strings are UTF-8 ("utf8s" in the GATT Specification Supplement); devices often pad them with NULs. The
manufacturer, model and serial values below are those of the Omron HEM-9200T in the HL7 Personal Health Device
IG blood-pressure example (hl7.org/fhir/uv/phd, bloodPress-1.0.1: OMRONHEALTHCARE, HEM-9200T, 20150200002A).
"""

from __future__ import annotations

import pytest

from gateway.devices.gatt import (
    FIRMWARE_REVISION_STRING,
    HARDWARE_REVISION_STRING,
    MANUFACTURER_NAME_STRING,
    MODEL_NUMBER_STRING,
    SERIAL_NUMBER_STRING,
    SOFTWARE_REVISION_STRING,
    apply_device_information,
    decode_device_information_string,
    decode_firmware_revision,
    decode_hardware_revision,
    decode_manufacturer_name,
    decode_model_number,
    decode_serial_number,
    decode_software_revision,
)
from gateway.devices.readings import DeviceIdentity
from gateway.errors import DecodeError


def test_each_string() -> None:
    assert decode_manufacturer_name(b"OMRONHEALTHCARE") == "OMRONHEALTHCARE"
    assert decode_model_number(b"HEM-9200T\x00\x00\x00") == "HEM-9200T"
    assert decode_serial_number(b"20150200002A\x00") == "20150200002A"
    assert decode_firmware_revision(b"1.02") == "1.02"
    assert decode_hardware_revision(b"B") == "B"
    assert decode_software_revision(b"") == ""


def test_utf8() -> None:
    assert decode_manufacturer_name("Thermomètre Ü".encode()) == "Thermomètre Ü"


def test_only_trailing_nuls_are_stripped() -> None:
    assert decode_model_number(b"A\x00B\x00") == "A\x00B"


@pytest.mark.parametrize(
    ("uuid16", "label"),
    [
        (MANUFACTURER_NAME_STRING, "0x2A29 Manufacturer Name String"),
        (MODEL_NUMBER_STRING, "0x2A24 Model Number String"),
        (SERIAL_NUMBER_STRING, "0x2A25 Serial Number String"),
        (FIRMWARE_REVISION_STRING, "0x2A26 Firmware Revision String"),
        (HARDWARE_REVISION_STRING, "0x2A27 Hardware Revision String"),
        (SOFTWARE_REVISION_STRING, "0x2A28 Software Revision String"),
    ],
)
def test_invalid_utf8(uuid16: int, label: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_device_information_string(uuid16, b"AB\xc3\x28")
    assert str(info.value) == f"{label}: not valid UTF-8 at byte 2 (invalid continuation byte)"


def test_not_a_string_characteristic() -> None:
    with pytest.raises(DecodeError, match="characteristic 0x2A19 Battery Level is not a Device Information string"):
        decode_device_information_string(0x2A19, b"x")


def test_apply_device_information() -> None:
    identity = DeviceIdentity(address="AA:BB:CC:DD:EE:FF", name="BP")
    identity = apply_device_information(identity, MANUFACTURER_NAME_STRING, b"OMRONHEALTHCARE")
    identity = apply_device_information(identity, MODEL_NUMBER_STRING, b"HEM-9200T")
    identity = apply_device_information(identity, SERIAL_NUMBER_STRING, b"20150200002A\x00")
    identity = apply_device_information(identity, FIRMWARE_REVISION_STRING, b"1.0")
    identity = apply_device_information(identity, HARDWARE_REVISION_STRING, b"ignored")
    assert identity == DeviceIdentity(
        address="AA:BB:CC:DD:EE:FF",
        name="BP",
        manufacturer="OMRONHEALTHCARE",
        model="HEM-9200T",
        serial="20150200002A",
        firmware="1.0",
    )
