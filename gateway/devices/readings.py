"""The reading model: what a medical device measured, in UCUM units, with where its time came from.

Pure: no I/O. A Reading is what decoders produce and what travels (as JSON) over the `vitals` data channel.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DetailValue = str | int | float | bool | tuple[float, ...]
"""A value in `Reading.details`: a name, a number, a flag, or a series of numbers (RR intervals in seconds)."""


class ReadingKind(enum.StrEnum):
    """What was measured."""

    BODY_TEMPERATURE = "body-temperature"
    BLOOD_PRESSURE = "blood-pressure"
    HEART_RATE = "heart-rate"
    OXYGEN_SATURATION = "oxygen-saturation"
    BODY_WEIGHT = "body-weight"


class TimeSource(enum.StrEnum):
    """Where `measured_at` comes from: the device's own clock, or the gateway's clock on reception."""

    DEVICE = "device"
    RECEPTION = "reception"


class NoValue(enum.StrEnum):
    """Why a field carries no number (IEEE 11073 special values)."""

    NAN = "nan"
    NRES = "nres"
    POSITIVE_INFINITY = "+inf"
    NEGATIVE_INFINITY = "-inf"
    RESERVED = "reserved"


@dataclass(frozen=True, slots=True)
class Quantity:
    """One measured component: a number with its UCUM unit, or no number and the reason why.

    `code` names the component within its reading: "value" for single-valued readings, or for example
    "systolic", "diastolic", "mean", "pulse-rate", "spo2", "bmi", "height".
    """

    code: str
    value: float | None
    unit: str
    no_value: NoValue | None = None

    def __post_init__(self) -> None:
        if self.value is None and self.no_value is None:
            raise ValueError(f"quantity {self.code!r} has neither a value nor a no-value reason")
        if self.value is not None and self.no_value is not None:
            raise ValueError(f"quantity {self.code!r} has both a value and a no-value reason")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"quantity {self.code!r} value must be finite, got {self.value!r}")

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "value": self.value, "unit": self.unit, "no_value": self.no_value}


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Which device took the reading. `address` is the Bluetooth address (or an emulator's name)."""

    address: str
    name: str = ""
    manufacturer: str = ""
    model: str = ""
    serial: str = ""
    firmware: str = ""

    def to_wire(self) -> dict[str, str]:
        return {
            "address": self.address,
            "name": self.name,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial": self.serial,
            "firmware": self.firmware,
        }


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement: kind, components, when (and by whose clock), which device, status flags."""

    kind: ReadingKind
    quantities: tuple[Quantity, ...]
    measured_at: datetime
    time_source: TimeSource
    device: DeviceIdentity
    status: frozenset[str] = frozenset()
    details: tuple[tuple[str, DetailValue], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.quantities:
            raise ValueError("a reading needs at least one quantity")
        if self.measured_at.tzinfo is None:
            raise ValueError("measured_at must be timezone-aware")

    @property
    def primary(self) -> Quantity:
        """The component shown first: the only one, or the first (systolic, SpO2, weight...)."""
        return self.quantities[0]

    def quantity(self, code: str) -> Quantity | None:
        for q in self.quantities:
            if q.code == code:
                return q
        return None

    def to_wire(self) -> dict[str, Any]:
        """The reading as JSON-ready data for the `vitals` data channel."""
        return {
            "kind": self.kind.value,
            "value": self.primary.value,
            "unit": self.primary.unit,
            "no_value": self.primary.no_value,
            "quantities": [q.to_wire() for q in self.quantities],
            "measured_at": self.measured_at.isoformat(),
            "time_source": self.time_source.value,
            "device": self.device.to_wire(),
            "status": sorted(self.status),
            "details": {k: list(v) if isinstance(v, tuple) else v for k, v in self.details},
        }
