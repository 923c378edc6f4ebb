"""`cabine decode CHARACTERISTIC HEX`: decode one characteristic value and print it as JSON.

CHARACTERISTIC is a 16-bit UUID ("2A35", "0x2a35") or its 128-bit form. HEX is the value as received; spaces,
colons, commas, dashes and "0x" prefixes are allowed, and it may span several arguments
(`cabine decode 2A1C 06 B0 0E 00 FE`). A measurement prints the Reading's wire form plus "characteristic";
Battery Level, Temperature Type and the Device Information strings print {"characteristic", "name", "value"}.
Bad input exits with status 2 and one line `cabine decode: error: <message>` on stderr, never a traceback.
The reception time (used when the device gives none) is the gateway's clock, in UTC.
"""

from __future__ import annotations

import functools
import json
import os
import re
import string
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from gateway.devices.gatt import (
    BATTERY_LEVEL,
    CHARACTERISTIC_NAMES,
    DEVICE_INFORMATION_STRINGS,
    MEASUREMENT_CHARACTERISTICS,
    TEMPERATURE_TYPE,
    decode,
    decode_battery_level,
    decode_device_information_string,
    decode_temperature_type,
    parse_uuid16,
)
from gateway.devices.readings import DeviceIdentity
from gateway.errors import DecodeError

__all__ = ["CLI_DEVICE", "USAGE", "decode_to_json", "parse_hex", "run"]

USAGE = "usage: cabine decode CHARACTERISTIC HEX  (e.g. cabine decode 2A1C '06 6D 01 00 FF')"
CLI_DEVICE = DeviceIdentity(address="cli")
"""The placeholder device every CLI reading is attributed to."""

_SEPARATORS = re.compile(r"[\s:,\-]+")
_HEX_TOKEN = re.compile(r"(?:0[xX])?([0-9a-fA-F]*)")


def parse_hex(text: str) -> bytes:
    """Parse hex bytes written as "066D0100FF", "06 6d 01 00 ff", "06:6D:01", "0x06 0x6D" or "0x066D".

    Raises:
        DecodeError: no bytes, a non-hex character, or a group with an odd number of digits.
    """
    tokens = [t for t in _SEPARATORS.split(text.strip()) if t]
    if not tokens:
        raise DecodeError("HEX is empty: give the payload bytes, e.g. '06 6D 01 00 FF'")
    out = bytearray()
    for token in tokens:
        match = _HEX_TOKEN.fullmatch(token)
        if match is None:
            body = token[2:] if token[:2].lower() == "0x" else token
            bad = next(c for c in body if c not in string.hexdigits)
            raise DecodeError(f"HEX has a non-hex character {bad!r} in {token!r}")
        digits = match.group(1)
        if not digits:
            raise DecodeError(f"HEX group {token!r} has no digits")
        if len(digits) % 2:
            raise DecodeError(f"HEX group {token!r} has an odd number of digits ({len(digits)})")
        out += bytes.fromhex(digits)
    return bytes(out)


def _label(uuid16: int) -> str:
    return f"0x{uuid16:04X}"


def decode_to_json(uuid16: int, payload: bytes, *, received_at: datetime) -> dict[str, Any]:
    """The JSON-ready output for one characteristic value.

    Raises:
        DecodeError: the characteristic is not supported, or the payload is malformed.
    """
    if uuid16 in MEASUREMENT_CHARACTERISTICS:
        reading = decode(uuid16, payload, device=CLI_DEVICE, received_at=received_at)
        return {"characteristic": _label(uuid16), **reading.to_wire()}
    simple: dict[int, Callable[[bytes], object]] = {
        BATTERY_LEVEL: decode_battery_level,
        TEMPERATURE_TYPE: lambda p: decode_temperature_type(p).label,
    }
    for string_uuid in DEVICE_INFORMATION_STRINGS:
        simple[string_uuid] = functools.partial(decode_device_information_string, string_uuid)
    decoder = simple.get(uuid16)
    if decoder is None:
        known = ", ".join(f"{u:04X}" for u in sorted(CHARACTERISTIC_NAMES))
        raise DecodeError(f"characteristic {_label(uuid16)} is not supported (supported: {known})")
    value = decoder(payload)
    out: dict[str, Any] = {"characteristic": _label(uuid16), "name": CHARACTERISTIC_NAMES[uuid16]}
    out["value"] = value
    if uuid16 == BATTERY_LEVEL:
        out["unit"] = "%"
    return out


def run(argv: list[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run `cabine decode` with `argv` (the arguments after "decode"); return the exit status."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE, file=out)
        return 0
    if len(argv) < 2:
        print(f"cabine decode: error: expected CHARACTERISTIC and HEX; {USAGE}", file=err)
        return 2
    try:
        uuid16 = parse_uuid16(argv[0])
        payload = parse_hex(" ".join(argv[1:]))
        result = decode_to_json(uuid16, payload, received_at=datetime.now(UTC))
    except DecodeError as exc:
        message = " ".join(str(exc).split())
        print(f"cabine decode: error: {message}", file=err)
        return 2
    try:
        print(json.dumps(result, indent=2, ensure_ascii=False), file=out, flush=True)
    except BrokenPipeError:  # `cabine decode ... | head`: the reader left, nothing more to say
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
