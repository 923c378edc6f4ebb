"""A device source without a radio stack: emulated payloads handed straight to the project's decoders.

Used where the Bluetooth path is not what is being tested (the end-to-end media test). The payload bytes are
the real GATT format, so the decoder runs exactly as for a device.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from gateway.devices.gatt import TEMPERATURE_MEASUREMENT, decode
from gateway.devices.readings import DeviceIdentity, Reading
from gateway.devices.sfloat import encode_float

_FLAG_TIMESTAMP = 0x02
_FLAG_TYPE = 0x04


def temperature_payload(celsius: float, at: datetime, temperature_type: int = 6) -> bytes:
    """A Temperature Measurement (0x2A1C) in Celsius, with timestamp and type (6 = mouth)."""
    stamp = struct.pack("<HBBBBB", at.year, at.month, at.day, at.hour, at.minute, at.second)
    return (
        bytes([_FLAG_TIMESTAMP | _FLAG_TYPE])
        + encode_float(round(celsius, 1), exponent=-1)
        + stamp
        + bytes([temperature_type])
    )


class DirectThermometer:
    """Emits a decoded Temperature Measurement every `interval` seconds; `sent` records the values sent."""

    def __init__(self, interval: float = 3.0, start: float = 36.6) -> None:
        self.interval = interval
        self._value = start
        self.sent: list[float] = []
        self.device = DeviceIdentity(address="emulated-thermometer", name="Thermomètre (émulé)")

    def _next_value(self) -> float:
        # A slow, plausible drift between 36.4 and 37.4 °C.
        step = (len(self.sent) % 10) - 4.5
        return round(36.9 + step / 10, 1)

    async def readings(self) -> AsyncIterator[Reading]:
        while True:
            now = datetime.now(UTC).replace(microsecond=0)
            value = self._next_value()
            payload = temperature_payload(value, now)
            reading = decode(TEMPERATURE_MEASUREMENT, payload, device=self.device, received_at=datetime.now(UTC))
            self.sent.append(value)
            yield reading
            await asyncio.sleep(self.interval)
