"""SFLOAT and FLOAT: decoding, special values, encoding.

Vectors and their sources:
- [NordicData] NordicSemiconductor/Android-BLE-Library, ble/src/test/java/no/nordicsemi/android/ble/data/DataTest.java
  (setValue_SFLOAT_hex, setValue_FLOAT_hex, ..._roundUp, ..._roundDown, ..._cutPrecision, ..._roundUp_500).
- [NordicSpecial] NordicSemiconductor/Android-BLE-Library, ble/src/main/java/no/nordicsemi/android/ble/data/Data.java
  (getFloatValue: the raw special values, exponent 0 only).
- [Spezi] StanfordSpezi/SpeziBluetooth, Tests/SpeziBluetoothTests/MedFloatTests.swift (exponent/mantissa pairs)
  and Tests/SpeziBluetoothServicesTests/PLXTests.swift (SFLOAT bytes 232 243 = 100, 132 243 = 90).
- IEEE 11073-20601 / Bluetooth GATT Specification Supplement for the layout: exponent in the high nibble (byte).
"""

from __future__ import annotations

import math

import pytest

from gateway.devices.readings import NoValue
from gateway.devices.sfloat import (
    FLOAT_SPECIALS,
    SFLOAT_SPECIALS,
    EncodeError,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
    float_from_raw,
    float_to_raw,
    sfloat_from_raw,
    sfloat_to_raw,
)
from gateway.errors import DecodeError, GatewayError


def sfloat_raw(exponent: int, mantissa: int) -> int:
    return ((exponent & 0xF) << 12) | (mantissa & 0xFFF)


def float_raw(exponent: int, mantissa: int) -> int:
    return ((exponent & 0xFF) << 24) | (mantissa & 0xFFFFFF)


# --- special values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # [NordicSpecial] 0x07FE +INF, 0x07FF NaN, 0x0800 NRes, 0x0801 reserved, 0x0802 -INF
        (bytes([0xFF, 0x07]), NoValue.NAN),
        (bytes([0x00, 0x08]), NoValue.NRES),
        (bytes([0xFE, 0x07]), NoValue.POSITIVE_INFINITY),
        (bytes([0x02, 0x08]), NoValue.NEGATIVE_INFINITY),
        (bytes([0x01, 0x08]), NoValue.RESERVED),
    ],
)
def test_sfloat_special_values_are_never_numbers(data: bytes, reason: NoValue) -> None:
    assert decode_sfloat(data) is reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # [NordicSpecial] FLOAT: 0x007FFFFE +INF, 0x007FFFFF NaN, 0x00800000 NRes, 0x00800001 reserved, 0x00800002 -INF
        (bytes([0xFF, 0xFF, 0x7F, 0x00]), NoValue.NAN),
        (bytes([0x00, 0x00, 0x80, 0x00]), NoValue.NRES),
        (bytes([0xFE, 0xFF, 0x7F, 0x00]), NoValue.POSITIVE_INFINITY),
        (bytes([0x02, 0x00, 0x80, 0x00]), NoValue.NEGATIVE_INFINITY),
        (bytes([0x01, 0x00, 0x80, 0x00]), NoValue.RESERVED),
    ],
)
def test_float_special_values_are_never_numbers(data: bytes, reason: NoValue) -> None:
    assert decode_float(data) is reason


def test_special_tables_are_complete() -> None:
    assert set(SFLOAT_SPECIALS.values()) == set(NoValue)
    assert set(FLOAT_SPECIALS.values()) == set(NoValue)


def test_special_mantissas_with_another_exponent_are_numbers() -> None:
    # The specification defines the special values with exponent 0 only ([NordicSpecial] checks the whole raw).
    assert sfloat_from_raw(sfloat_raw(-1, 0x7FF)) == 204.7
    assert sfloat_from_raw(sfloat_raw(1, -2048)) == -20480.0
    assert float_from_raw(float_raw(-1, 0x7FFFFF)) == 838860.7


# --- numbers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (bytes([0x65, 0xF0]), 10.1),  # [NordicData] setValue_SFLOAT_hex: 10.1 -> 0x65 0xF0
        (bytes([232, 243]), 100.0),  # [Spezi] PLXTests: SpO2 100 -> 232 243
        (bytes([132, 243]), 90.0),  # [Spezi] PLXTests: pulse 90 -> 132 243
        (sfloat_raw(3, 123).to_bytes(2, "little"), 123000.0),  # [Spezi] MedFloat16(exponent: 3, mantissa: 123)
        (sfloat_raw(-2, 1234).to_bytes(2, "little"), 12.34),  # [Spezi] exponent -2, mantissa 1234
        (sfloat_raw(-7, 12).to_bytes(2, "little"), 0.0000012),  # [Spezi] exponent -7, mantissa 12
        (sfloat_raw(3, -123).to_bytes(2, "little"), -123000.0),  # [Spezi] negative mantissa
        (sfloat_raw(-2, -1234).to_bytes(2, "little"), -12.34),  # [Spezi]
        (sfloat_raw(0, 1234).to_bytes(2, "little"), 1234.0),  # [Spezi] zero exponent
        (bytes([0x00, 0x00]), 0.0),
        (sfloat_raw(-8, 1).to_bytes(2, "little"), 1e-8),  # smallest exponent
        (sfloat_raw(7, 2047).to_bytes(2, "little"), 20470000000.0),  # largest magnitude
        (sfloat_raw(0, -2045).to_bytes(2, "little"), -2045.0),  # most negative ordinary at exponent 0
    ],
)
def test_decode_sfloat(data: bytes, value: float) -> None:
    assert decode_sfloat(data) == value


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (bytes([0x87, 0xD6, 0x12, 0xFE]), 12345.67),  # [NordicData] setValue_FLOAT_hex
        (bytes([1, 0, 0, 0]), 1.0),  # [NordicData] setValue_FLOAT_basic
        (bytes([0xB0, 0x0E, 0x00, 0xFE]), 37.6),  # Nordic TemperatureMeasurementDataCallbackTest: 3760e-2
        (bytes([0x6D, 0x01, 0x00, 0xFF]), 36.5),  # 365e-1
        (float_raw(-128, 1).to_bytes(4, "little"), 1e-128),
        (float_raw(127, 8388607).to_bytes(4, "little"), 8388607e127),
        (float_raw(-1, -365).to_bytes(4, "little"), -36.5),
    ],
)
def test_decode_float(data: bytes, value: float) -> None:
    assert decode_float(data) == value


def test_decoding_is_correctly_rounded_not_multiplied() -> None:
    # 365 * 0.1 is 36.50000000000001 in binary floating point; the decoder must give 36.5 exactly.
    assert decode_float(float_raw(-1, 365).to_bytes(4, "little")) == 36.5
    assert decode_sfloat(sfloat_raw(-1, 366).to_bytes(2, "little")) == 36.6


@pytest.mark.parametrize("size", [0, 1, 3])
def test_decode_sfloat_wrong_size(size: int) -> None:
    with pytest.raises(DecodeError, match=f"SFLOAT needs exactly 2 bytes, got {size}"):
        decode_sfloat(bytes(size))


@pytest.mark.parametrize("size", [0, 3, 5])
def test_decode_float_wrong_size(size: int) -> None:
    with pytest.raises(DecodeError, match=f"FLOAT needs exactly 4 bytes, got {size}"):
        decode_float(bytes(size))


def test_raw_out_of_range() -> None:
    with pytest.raises(DecodeError, match="does not fit in 2 bytes"):
        sfloat_from_raw(0x10000)
    with pytest.raises(DecodeError, match="does not fit in 4 bytes"):
        float_from_raw(-1)


# --- encoding -----------------------------------------------------------------------------------------------


def test_encode_sfloat_hex_vector() -> None:
    assert encode_sfloat(10.1) == bytes([0x65, 0xF0])  # [NordicData] setValue_SFLOAT_hex


def test_encode_float_hex_vectors() -> None:
    assert encode_float(12345.67) == bytes([0x87, 0xD6, 0x12, 0xFE])  # [NordicData] setValue_FLOAT_hex
    assert encode_float(1.0) == bytes([1, 0, 0, 0])  # [NordicData] setValue_FLOAT_basic


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (123.45, 123.5),  # [NordicData] setValue_SFLOAT_roundUp
        (0.12344, 0.1234),  # [NordicData] setValue_SFLOAT_roundDown
        (10000000.0, 10000000.0),  # [NordicData] setValue_SFLOAT_high
        (1000400.0, 1000000.0),  # [NordicData] setValue_SFLOAT_cutPrecision
        (1000500.0, 1001000.0),  # [NordicData] setValue_SFLOAT_roundUp_500 (ties away from zero)
        (1.0, 1.0),  # [NordicData] setValue_SFLOAT_basic
        (2046.0, 2050.0),  # 2046e0 is the +INF raw value: the next exponent is used
    ],
)
def test_encode_sfloat_rounds_like_nordic(value: float, expected: float) -> None:
    assert decode_sfloat(encode_sfloat(value)) == expected


def test_encode_float_rounds_like_nordic() -> None:
    assert decode_float(encode_float(1234.5678)) == 1234.568  # [NordicData] setValue_FLOAT_roundUp


@pytest.mark.parametrize(
    ("value", "exponent", "mantissa"),
    [
        (120.0, 0, 120),  # integers keep exponent 0, as devices send them
        (36.6, -1, 366),
        (123000.0, 0, None),  # does not fit at exponent 0 (mantissa 123000): goes up
        (0.0000012, -7, 12),  # [Spezi] MedFloat16(0.0000012)
        (-12.34, -2, -1234),  # [Spezi] MedFloat16(-12.34)
    ],
)
def test_encode_sfloat_exponent_choice(value: float, exponent: int, mantissa: int | None) -> None:
    raw = sfloat_to_raw(value)
    got_exponent = raw >> 12
    got_exponent = got_exponent - 16 if got_exponent >= 8 else got_exponent
    if mantissa is None:
        assert got_exponent > exponent
    else:
        assert raw == sfloat_raw(exponent, mantissa)
    assert sfloat_from_raw(raw) == value


@pytest.mark.parametrize("reason", list(NoValue))
def test_encode_no_value_gives_the_special_raw(reason: NoValue) -> None:
    assert decode_sfloat(encode_sfloat(reason)) is reason
    assert decode_float(encode_float(reason)) is reason


def test_encode_nan_and_infinities() -> None:
    # [NordicData] setValue_SFLOAT_nan / _positiveInfinity / _negativeInfinity and the FLOAT ones.
    assert decode_sfloat(encode_sfloat(math.nan)) is NoValue.NAN
    assert decode_sfloat(encode_sfloat(math.inf)) is NoValue.POSITIVE_INFINITY
    assert decode_sfloat(encode_sfloat(-math.inf)) is NoValue.NEGATIVE_INFINITY
    assert decode_float(encode_float(math.nan)) is NoValue.NAN
    assert decode_float(encode_float(math.inf)) is NoValue.POSITIVE_INFINITY
    assert decode_float(encode_float(-math.inf)) is NoValue.NEGATIVE_INFINITY


def test_encode_with_fixed_exponent() -> None:
    assert encode_float(37.6, exponent=-2) == bytes([0xB0, 0x0E, 0x00, 0xFE])  # Nordic HT vector's FLOAT
    assert sfloat_to_raw(36.56, exponent=-1) == sfloat_raw(-1, 366)
    assert float_to_raw(0, exponent=5) == float_raw(5, 0)


def test_encode_errors_are_gateway_value_errors() -> None:
    assert issubclass(EncodeError, GatewayError)
    assert issubclass(EncodeError, ValueError)
    with pytest.raises(EncodeError, match="SFLOAT cannot encode 1e\\+200: out of range"):
        encode_sfloat(1e200)
    with pytest.raises(EncodeError, match="FLOAT cannot encode"):
        encode_float(-1.7e308)
    with pytest.raises(EncodeError, match=r"exponent 8 is outside -8\.\.7"):
        encode_sfloat(1.0, exponent=8)
    with pytest.raises(EncodeError, match="cannot encode 5000"):
        encode_sfloat(5000, exponent=0)
    with pytest.raises(EncodeError, match="not a number"):
        encode_sfloat(True)
