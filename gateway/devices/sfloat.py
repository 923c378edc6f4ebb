"""IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit) numbers, as used by the Bluetooth LE health profiles.

Pure: no I/O. Both types are `mantissa x 10^exponent` with a signed exponent in the high bits and a
signed mantissa in the low bits, little-endian on the wire. Five raw values with exponent 0 are not numbers
(NaN, NRes, +INF, -INF, reserved): decoding them yields a `NoValue` reason, never a number, so that a doctor
is never shown 2047 or 8388607.

Decoding gives the double nearest the decimal value (`mantissa / 10^-exponent`, correctly rounded: SFLOAT
0xF16D, mantissa 365 and exponent -1, is exactly 36.5). Encoding takes the shortest decimal that round-trips
the float (`repr`) and stores it with the exponent closest to zero that keeps it exact (120 is 120e0 as
devices send it, not 12e1; 1230000 is 1230e3). A value with more significant digits than the mantissa holds
is rounded half away from zero, from the float's exact binary value (123.45 becomes 123.5 as in Nordic's
Android-BLE-Library). Special mantissas are only avoided with exponent 0, where the specification defines
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal

from gateway.devices.readings import NoValue
from gateway.errors import DecodeError, GatewayError

__all__ = [
    "FLOAT_SPECIALS",
    "SFLOAT_SPECIALS",
    "EncodeError",
    "decode_float",
    "decode_sfloat",
    "encode_float",
    "encode_sfloat",
    "float_from_raw",
    "float_to_raw",
    "sfloat_from_raw",
    "sfloat_to_raw",
]


class EncodeError(GatewayError, ValueError):
    """A value cannot be encoded in the requested wire format (out of range, or not a number)."""


SFLOAT_SPECIALS: dict[int, NoValue] = {
    0x07FF: NoValue.NAN,
    0x0800: NoValue.NRES,
    0x07FE: NoValue.POSITIVE_INFINITY,
    0x0802: NoValue.NEGATIVE_INFINITY,
    0x0801: NoValue.RESERVED,
}
"""Raw SFLOAT values that are not numbers (IEEE 11073-20601, exponent 0)."""

FLOAT_SPECIALS: dict[int, NoValue] = {
    0x007FFFFF: NoValue.NAN,
    0x00800000: NoValue.NRES,
    0x007FFFFE: NoValue.POSITIVE_INFINITY,
    0x00800002: NoValue.NEGATIVE_INFINITY,
    0x00800001: NoValue.RESERVED,
}
"""Raw FLOAT values that are not numbers (IEEE 11073-20601, exponent 0)."""


@dataclass(frozen=True, slots=True)
class _Format:
    """The shape of one of the two number formats."""

    name: str
    size: int
    mantissa_bits: int
    exponent_bits: int
    specials: dict[int, NoValue]

    @property
    def mantissa_min(self) -> int:
        return -(1 << (self.mantissa_bits - 1))

    @property
    def mantissa_max(self) -> int:
        return (1 << (self.mantissa_bits - 1)) - 1

    @property
    def exponent_min(self) -> int:
        return -(1 << (self.exponent_bits - 1))

    @property
    def exponent_max(self) -> int:
        return (1 << (self.exponent_bits - 1)) - 1


_CONTEXT = Context(prec=1000, Emax=10_000, Emin=-10_000)
"""Enough digits to scale any finite double by 10^128 exactly."""

_SFLOAT = _Format("SFLOAT", 2, 12, 4, SFLOAT_SPECIALS)
_FLOAT = _Format("FLOAT", 4, 24, 8, FLOAT_SPECIALS)


def _signed(value: int, bits: int) -> int:
    """Interpret the low `bits` of `value` as a two's-complement integer."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _from_raw(fmt: _Format, raw: int) -> float | NoValue:
    """Decode a raw integer of format `fmt`.

    Raises:
        DecodeError: `raw` does not fit in the format's width.
    """
    if not 0 <= raw < 1 << (8 * fmt.size):
        raise DecodeError(f"{fmt.name} raw value {raw:#x} does not fit in {fmt.size} bytes")
    special = fmt.specials.get(raw)
    if special is not None:
        return special
    mantissa = _signed(raw, fmt.mantissa_bits)
    exponent = _signed(raw >> fmt.mantissa_bits, fmt.exponent_bits)
    if exponent >= 0:
        return float(mantissa * 10**exponent)
    divisor: int = 10 ** (-exponent)
    return mantissa / divisor  # int / int is correctly rounded


def _to_raw(fmt: _Format, value: float | NoValue, exponent: int | None) -> int:
    """Encode `value` as a raw integer of format `fmt`.

    Raises:
        EncodeError: the value is out of range, or cannot be held exactly at the requested exponent's range.
    """
    if isinstance(value, NoValue):
        return next(raw for raw, reason in fmt.specials.items() if reason is value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodeError(f"{fmt.name} cannot encode {value!r}: not a number")
    if math.isnan(value):
        return _to_raw(fmt, NoValue.NAN, None)
    if math.isinf(value):
        return _to_raw(fmt, NoValue.POSITIVE_INFINITY if value > 0 else NoValue.NEGATIVE_INFINITY, None)
    if exponent is not None and not fmt.exponent_min <= exponent <= fmt.exponent_max:
        raise EncodeError(f"{fmt.name} exponent {exponent} is outside {fmt.exponent_min}..{fmt.exponent_max}")
    shortest = Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value)
    exact = Decimal(value)
    if exponent is None:
        # The exponent closest to zero that holds the shortest decimal exactly: 120 -> 120e0, 36.6 -> 366e-1.
        exp = min(int(shortest.normalize(_CONTEXT).as_tuple().exponent) if shortest else 0, 0)
        exp = max(exp, fmt.exponent_min)
    else:
        exp = exponent
    while exp <= fmt.exponent_max:
        scaled = shortest.scaleb(-exp, context=_CONTEXT)
        if scaled != scaled.to_integral_value():
            # Not exact at this exponent: round the float's exact binary value, half away from zero.
            scaled = exact.scaleb(-exp, context=_CONTEXT)
        mantissa = int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_CONTEXT))
        if fmt.mantissa_min <= mantissa <= fmt.mantissa_max:
            raw = ((exp & ((1 << fmt.exponent_bits) - 1)) << fmt.mantissa_bits) | (
                mantissa & ((1 << fmt.mantissa_bits) - 1)
            )
            if raw not in fmt.specials:
                return raw
        if exponent is not None:
            break
        exp += 1
    raise EncodeError(f"{fmt.name} cannot encode {value!r}: out of range")


def _check_size(fmt: _Format, data: bytes) -> None:
    """Check that `data` is exactly one number of format `fmt`.

    Raises:
        DecodeError: wrong length.
    """
    if len(data) != fmt.size:
        raise DecodeError(f"{fmt.name} needs exactly {fmt.size} bytes, got {len(data)}")


def sfloat_from_raw(raw: int) -> float | NoValue:
    """Decode a raw 16-bit SFLOAT integer to a number, or the reason there is none.

    Raises:
        DecodeError: `raw` is not in 0..0xFFFF.
    """
    return _from_raw(_SFLOAT, raw)


def float_from_raw(raw: int) -> float | NoValue:
    """Decode a raw 32-bit FLOAT integer to a number, or the reason there is none.

    Raises:
        DecodeError: `raw` is not in 0..0xFFFFFFFF.
    """
    return _from_raw(_FLOAT, raw)


def decode_sfloat(data: bytes) -> float | NoValue:
    """Decode 2 little-endian bytes of SFLOAT to a number, or the reason there is none.

    Raises:
        DecodeError: `data` is not exactly 2 bytes.
    """
    _check_size(_SFLOAT, data)
    return _from_raw(_SFLOAT, int.from_bytes(data, "little"))


def decode_float(data: bytes) -> float | NoValue:
    """Decode 4 little-endian bytes of FLOAT to a number, or the reason there is none.

    Raises:
        DecodeError: `data` is not exactly 4 bytes.
    """
    _check_size(_FLOAT, data)
    return _from_raw(_FLOAT, int.from_bytes(data, "little"))


def sfloat_to_raw(value: float | NoValue, *, exponent: int | None = None) -> int:
    """Encode a number (or a NoValue reason; NaN and infinities map to theirs) as a raw SFLOAT integer.

    With `exponent`, the mantissa is rounded (half away from zero) at that exponent; otherwise the
    exponent closest to zero keeping the value's shortest decimal exact, rounding only for too many digits.

    Raises:
        EncodeError: the value is too large, or does not fit at the given exponent.
    """
    return _to_raw(_SFLOAT, value, exponent)


def float_to_raw(value: float | NoValue, *, exponent: int | None = None) -> int:
    """Encode a number (or a NoValue reason; NaN and infinities map to theirs) as a raw FLOAT integer.

    Raises:
        EncodeError: the value is too large, or does not fit at the given exponent.
    """
    return _to_raw(_FLOAT, value, exponent)


def encode_sfloat(value: float | NoValue, *, exponent: int | None = None) -> bytes:
    """Encode a number (or a NoValue reason) as 2 little-endian SFLOAT bytes.

    Raises:
        EncodeError: the value is too large, or does not fit at the given exponent.
    """
    return sfloat_to_raw(value, exponent=exponent).to_bytes(2, "little")


def encode_float(value: float | NoValue, *, exponent: int | None = None) -> bytes:
    """Encode a number (or a NoValue reason) as 4 little-endian FLOAT bytes.

    Raises:
        EncodeError: the value is too large, or does not fit at the given exponent.
    """
    return float_to_raw(value, exponent=exponent).to_bytes(4, "little")
