"""Pure decoders for the standard Bluetooth LE health characteristics (HTS, BLS, PLXS, HRS, WSS, BAS, DIS).

Pure: no I/O, no asyncio. Each `decode_xxx` takes the characteristic's value exactly as received and returns a
`Reading` (or a plain value for the non-measurement characteristics); `decode` dispatches on the 16-bit UUID.
Layouts follow the Bluetooth SIG GATT Specification Supplement; every multi-byte field is little-endian.
One module per profile, as bumble does (`bumble/profiles/`): `temperature`, `blood_pressure`, `pulse_oximeter`,
`heart_rate`, `weight`, `battery`, `device_information`; `uuids` names the services and characteristics and
`common` holds what they share (field reading, the Date Time field, length checks). Import from this package.

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
  Heart rate RR intervals are the detail `rr-intervals`: a tuple of seconds (a JSON array on the wire).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType

from gateway.devices.gatt.battery import decode_battery_level
from gateway.devices.gatt.blood_pressure import BP_PULSE_RATE_RANGE, BP_STATUS_BITS, decode_blood_pressure
from gateway.devices.gatt.common import USER_ID_UNKNOWN
from gateway.devices.gatt.device_information import (
    DEVICE_INFORMATION_STRINGS,
    apply_device_information,
    decode_device_information_string,
    decode_firmware_revision,
    decode_hardware_revision,
    decode_manufacturer_name,
    decode_model_number,
    decode_serial_number,
    decode_software_revision,
)
from gateway.devices.gatt.heart_rate import RR_INTERVAL_RESOLUTION, decode_heart_rate
from gateway.devices.gatt.pulse_oximeter import (
    PLX_DEVICE_SENSOR_STATUS_BITS,
    PLX_MEASUREMENT_STATUS_BITS,
    decode_plx_continuous,
    decode_plx_spot_check,
)
from gateway.devices.gatt.temperature import TemperatureType, decode_temperature, decode_temperature_type
from gateway.devices.gatt.uuids import (
    BATTERY_LEVEL,
    BATTERY_SERVICE,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    BLUETOOTH_BASE_UUID,
    CHARACTERISTIC_NAMES,
    DEVICE_INFORMATION_SERVICE,
    FIRMWARE_REVISION_STRING,
    HARDWARE_REVISION_STRING,
    HEALTH_SERVICE_KEYS,
    HEALTH_THERMOMETER_SERVICE,
    HEART_RATE_MEASUREMENT,
    HEART_RATE_SERVICE,
    MANUFACTURER_NAME_STRING,
    MODEL_NUMBER_STRING,
    PLX_CONTINUOUS_MEASUREMENT,
    PLX_SPOT_CHECK_MEASUREMENT,
    PULSE_OXIMETER_SERVICE,
    SERIAL_NUMBER_STRING,
    SERVICE_NAMES,
    SOFTWARE_REVISION_STRING,
    TEMPERATURE_MEASUREMENT,
    TEMPERATURE_TYPE,
    WEIGHT_MEASUREMENT,
    WEIGHT_SCALE_SERVICE,
    characteristic_label,
    parse_uuid16,
    uuid128,
)
from gateway.devices.gatt.weight import WEIGHT_MEASUREMENT_UNSUCCESSFUL, decode_weight
from gateway.devices.readings import DeviceIdentity, Reading
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
    "HEALTH_SERVICE_KEYS",
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
    "RR_INTERVAL_RESOLUTION",
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
