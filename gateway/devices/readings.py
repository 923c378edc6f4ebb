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

    @classmethod
    def from_wire(cls, data: Any) -> Reading:
        """The reading back from `to_wire()`'s data (parsed JSON): `Reading.from_wire(r.to_wire()) == r`.

        The top-level "value", "unit" and "no_value" repeat the primary quantity and are not read.

        Raises:
            ValueError: a field is missing or has the wrong type, or the values break the model's rules.
        """

        def get(obj: Any, key: str, kinds: type | tuple[type, ...], where: str = "") -> Any:
            if not isinstance(obj, dict) or key not in obj:
                raise ValueError(f"reading: {where}{key} is missing")
            if not isinstance(obj[key], kinds):
                raise ValueError(f"reading: {where}{key} has the wrong type ({type(obj[key]).__name__})")
            return obj[key]

        def quantity(obj: Any, where: str) -> Quantity:
            value = get(obj, "value", (int, float, type(None)), where)
            no_value = get(obj, "no_value", (str, type(None)), where)
            if isinstance(value, bool):
                raise ValueError(f"reading: {where}value must be a number or null")
            return Quantity(
                code=get(obj, "code", str, where),
                value=value,
                unit=get(obj, "unit", str, where),
                no_value=None if no_value is None else NoValue(no_value),
            )

        def detail(key: str, value: Any) -> tuple[str, DetailValue]:
            if isinstance(value, list):
                if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
                    raise ValueError(f"reading: details.{key} must be a list of numbers")
                return key, tuple(value)
            if not isinstance(value, str | int | float):  # bool is an int
                raise ValueError(f"reading: details.{key} has the wrong type ({type(value).__name__})")
            return key, value

        device = get(data, "device", dict)
        status = get(data, "status", list)
        if not all(isinstance(s, str) for s in status):
            raise ValueError("reading: status must be a list of strings")
        names = ("address", "name", "manufacturer", "model", "serial", "firmware")
        return cls(
            kind=ReadingKind(get(data, "kind", str)),
            quantities=tuple(quantity(q, f"quantities[{i}].") for i, q in enumerate(get(data, "quantities", list))),
            measured_at=datetime.fromisoformat(get(data, "measured_at", str)),
            time_source=TimeSource(get(data, "time_source", str)),
            device=DeviceIdentity(**{name: get(device, name, str, "device.") for name in names}),
            status=frozenset(status),
            details=tuple(detail(key, value) for key, value in get(data, "details", dict).items()),
        )
