"""Emulated health devices: what each one exposes over GATT and the numbered measurements it takes.

Pure: no I/O, no asyncio. An `EmulatedDevice` is the behaviour of a peripheral (its GATT table, its battery,
its memory of measurements not yet delivered); `cabine.demo.peripheral` serves it over BlueZ's
D-Bus API so that bleak talks to it as to a real device. Payloads are built with the project's encoders, so
they are the exact bytes a standard device sends. Values are plausible and deterministic (seeded by address);
each measurement carries a sequence number and, where the characteristic has one, a distinct device timestamp,
so a test can tell which reading is which and spot a duplicate or a loss.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cabine.demo.encode import (
    encode_blood_pressure,
    encode_plx_continuous,
    encode_plx_spot_check,
    encode_temperature,
    encode_weight,
)
from gateway.devices.gatt import (
    BATTERY_LEVEL,
    BATTERY_SERVICE,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    DEVICE_INFORMATION_SERVICE,
    FIRMWARE_REVISION_STRING,
    HEALTH_THERMOMETER_SERVICE,
    MANUFACTURER_NAME_STRING,
    MODEL_NUMBER_STRING,
    PLX_CONTINUOUS_MEASUREMENT,
    PLX_SPOT_CHECK_MEASUREMENT,
    PULSE_OXIMETER_SERVICE,
    SERIAL_NUMBER_STRING,
    TEMPERATURE_MEASUREMENT,
    TEMPERATURE_TYPE,
    WEIGHT_MEASUREMENT,
    WEIGHT_SCALE_SERVICE,
    TemperatureType,
)
from gateway.devices.readings import DeviceIdentity
from gateway.errors import ConfigError

__all__ = [
    "BLOOD_PRESSURE_FEATURE",
    "PLX_FEATURES",
    "WEIGHT_SCALE_FEATURE",
    "CharacteristicSpec",
    "EmulatedDevice",
    "EmulatedKind",
    "Measurement",
    "ServiceSpec",
    "default_address",
    "make_devices",
]

BLOOD_PRESSURE_FEATURE = 0x2A49
PLX_FEATURES = 0x2A60
WEIGHT_SCALE_FEATURE = 0x2A9E


class EmulatedKind(enum.StrEnum):
    """The kinds of device the emulator can play."""

    THERMOMETER = "thermometer"
    BLOOD_PRESSURE = "blood-pressure"
    OXIMETER = "oximeter"
    SCALE = "scale"


@dataclass(frozen=True, slots=True)
class CharacteristicSpec:
    """One characteristic of an emulated GATT table; `flags` are BlueZ's names ("read", "indicate"...)."""

    uuid16: int
    flags: tuple[str, ...]
    value: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.uuid16 <= 0xFFFF:
            raise ConfigError(f"characteristic UUID must be a 16-bit value, got {self.uuid16:#x}")
        if not self.flags:
            raise ConfigError(f"characteristic 0x{self.uuid16:04X} needs at least one flag")

    @property
    def pushes(self) -> bool:
        """Whether the characteristic sends values by itself (notify or indicate)."""
        return "notify" in self.flags or "indicate" in self.flags


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One primary service of an emulated GATT table."""

    uuid16: int
    characteristics: tuple[CharacteristicSpec, ...]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One numbered measurement: the characteristic, the exact bytes sent, and the device time written in them.

    `measured_at` is None for characteristics without a timestamp (PLX continuous). `indicate` tells whether
    the device waits for a confirmation and keeps the measurement in memory until then.
    """

    seq: int
    uuid16: int
    payload: bytes
    measured_at: datetime | None
    indicate: bool


_KIND_SUFFIX = {
    EmulatedKind.THERMOMETER: 0x01,
    EmulatedKind.BLOOD_PRESSURE: 0x02,
    EmulatedKind.OXIMETER: 0x03,
    EmulatedKind.SCALE: 0x04,
}

_IDENTITY = {
    EmulatedKind.THERMOMETER: ("Thermomètre (émulé)", "Cabine Emulation", "HT-1"),
    EmulatedKind.BLOOD_PRESSURE: ("Tensiomètre (émulé)", "Cabine Emulation", "BP-1"),
    EmulatedKind.OXIMETER: ("Oxymètre (émulé)", "Cabine Emulation", "PLX-1"),
    EmulatedKind.SCALE: ("Balance (émulée)", "Cabine Emulation", "WS-1"),
}

_HEALTH_SERVICE = {
    EmulatedKind.THERMOMETER: HEALTH_THERMOMETER_SERVICE,
    EmulatedKind.BLOOD_PRESSURE: BLOOD_PRESSURE_SERVICE,
    EmulatedKind.OXIMETER: PULSE_OXIMETER_SERVICE,
    EmulatedKind.SCALE: WEIGHT_SCALE_SERVICE,
}

_HEIGHT_M = 1.72


def default_address(kind: EmulatedKind | str, index: int = 0) -> str:
    """The Bluetooth address the emulator gives a device of `kind` (index > 0 for more of the same kind).

    Raises:
        ConfigError: unknown kind, or index outside 0..255.
    """
    emulated = _kind(kind)
    if not 0 <= index <= 0xFF:
        raise ConfigError(f"device index must be in 0..255, got {index}")
    return f"CA:B1:0E:00:{index:02X}:{_KIND_SUFFIX[emulated]:02X}"


def _kind(kind: EmulatedKind | str) -> EmulatedKind:
    """`kind` as an EmulatedKind.

    Raises:
        ConfigError: not a known kind.
    """
    try:
        return EmulatedKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in EmulatedKind)
        raise ConfigError(f"unknown emulated device kind {kind!r}; known: {known}") from None


class EmulatedDevice:
    """One emulated peripheral: GATT table, battery, numbered measurements and the memory of undelivered ones.

    A blood-pressure monitor starts with `stored` readings in memory (taken earlier), as real monitors do, and
    sends them as soon as a central subscribes. Measurements sent by indication stay in memory until confirmed;
    PLX continuous samples are notifications and are lost when nobody listens, as on a real oximeter.
    """

    def __init__(
        self,
        kind: EmulatedKind | str,
        *,
        address: str | None = None,
        name: str | None = None,
        battery: int = 87,
        stored: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Create the device; `stored` defaults to 2 for a blood-pressure monitor and 0 otherwise.

        Raises:
            ConfigError: unknown kind, battery outside 0..100, or negative `stored`.
        """
        self.kind = _kind(kind)
        if not 0 <= battery <= 100:
            raise ConfigError(f"battery must be a percentage (0..100), got {battery}")
        stored = (2 if self.kind is EmulatedKind.BLOOD_PRESSURE else 0) if stored is None else stored
        if stored < 0:
            raise ConfigError(f"stored readings must be >= 0, got {stored}")
        label, manufacturer, model = _IDENTITY[self.kind]
        self.address = (address or default_address(self.kind)).upper()
        self.identity = DeviceIdentity(
            address=self.address,
            name=name or label,
            manufacturer=manufacturer,
            model=model,
            serial=f"SN-{self.address.replace(':', '')[-6:]}",
            firmware="1.4.2",
        )
        self.battery = battery
        self._clock = clock or (lambda: datetime.now(UTC))
        self._random = random.Random(self.address)
        self._seq = 0
        self._last_time: datetime | None = None
        self.taken: list[Measurement] = []
        """Every measurement taken, in order (for tests and the demo's display)."""
        self._memory: deque[Measurement] = deque()
        now = self._now()
        for back in range(stored, 0, -1):
            self._take(now - timedelta(minutes=30 * back), continuous=False)

    @property
    def health_service(self) -> int:
        """The 16-bit UUID of the standard health service the device advertises."""
        return _HEALTH_SERVICE[self.kind]

    def services(self) -> tuple[ServiceSpec, ...]:
        """The GATT table: the health service, Battery, and Device Information."""
        return (
            ServiceSpec(self.health_service, self._health_characteristics()),
            ServiceSpec(BATTERY_SERVICE, (CharacteristicSpec(BATTERY_LEVEL, ("read", "notify")),)),
            ServiceSpec(
                DEVICE_INFORMATION_SERVICE,
                tuple(
                    CharacteristicSpec(uuid16, ("read",), text.encode())
                    for uuid16, text in (
                        (MANUFACTURER_NAME_STRING, self.identity.manufacturer),
                        (MODEL_NUMBER_STRING, self.identity.model),
                        (SERIAL_NUMBER_STRING, self.identity.serial),
                        (FIRMWARE_REVISION_STRING, self.identity.firmware),
                    )
                ),
            ),
        )

    def _health_characteristics(self) -> tuple[CharacteristicSpec, ...]:
        """The characteristics of the device's health service."""
        if self.kind is EmulatedKind.THERMOMETER:
            return (
                CharacteristicSpec(TEMPERATURE_MEASUREMENT, ("indicate",)),
                CharacteristicSpec(TEMPERATURE_TYPE, ("read",), bytes((TemperatureType.TYMPANUM,))),
            )
        if self.kind is EmulatedKind.BLOOD_PRESSURE:
            # Feature bits: body movement, cuff fit, irregular pulse, pulse rate range, position detection.
            return (
                CharacteristicSpec(BLOOD_PRESSURE_MEASUREMENT, ("indicate",)),
                CharacteristicSpec(BLOOD_PRESSURE_FEATURE, ("read",), (0x001F).to_bytes(2, "little")),
            )
        if self.kind is EmulatedKind.OXIMETER:
            # PLX Features: only "timestamp for spot-check supported" (bit 3); the emulator sends no status fields.
            return (
                CharacteristicSpec(PLX_SPOT_CHECK_MEASUREMENT, ("indicate",)),
                CharacteristicSpec(PLX_CONTINUOUS_MEASUREMENT, ("notify",)),
                CharacteristicSpec(PLX_FEATURES, ("read",), (0x0008).to_bytes(2, "little")),
            )
        # Weight Scale Feature: timestamp, multiple users and BMI supported (bits 0-2), weight resolution
        # 0.05 kg (4 in bits 3-6), height resolution 1 mm (3 in bits 7-9).
        feature = 0b111 | 4 << 3 | 3 << 7
        return (
            CharacteristicSpec(WEIGHT_MEASUREMENT, ("indicate",)),
            CharacteristicSpec(WEIGHT_SCALE_FEATURE, ("read",), feature.to_bytes(4, "little")),
        )

    def characteristic(self, uuid16: int) -> CharacteristicSpec:
        """The characteristic with this UUID.

        Raises:
            ConfigError: the device has no such characteristic.
        """
        for service in self.services():
            for char in service.characteristics:
                if char.uuid16 == uuid16:
                    return char
        raise ConfigError(f"emulated {self.kind} has no characteristic 0x{uuid16:04X}")

    def measure(self, *, continuous: bool = False) -> Measurement:
        """Take the next numbered measurement; an indicated one goes to memory until confirmed.

        `continuous` is for the oximeter: a PLX Continuous sample instead of a spot-check.

        Raises:
            ConfigError: `continuous` on a device that is not an oximeter.
        """
        if continuous and self.kind is not EmulatedKind.OXIMETER:
            raise ConfigError(f"only an oximeter sends continuous measurements, not a {self.kind}")
        return self._take(self._now(), continuous=continuous)

    def take_raw(self, payload: bytes, uuid16: int | None = None) -> Measurement:
        """Queue arbitrary bytes (a malformed payload, say) on a measurement characteristic, numbered as the rest.

        Raises:
            ConfigError: the device has no such characteristic, or it does not notify or indicate.
        """
        uuid16 = self.services()[0].characteristics[0].uuid16 if uuid16 is None else uuid16
        spec = self.characteristic(uuid16)
        if not spec.pushes:
            raise ConfigError(f"characteristic 0x{uuid16:04X} of the emulated {self.kind} does not push values")
        self._seq += 1
        measurement = Measurement(self._seq, uuid16, bytes(payload), None, "indicate" in spec.flags)
        self.taken.append(measurement)
        if measurement.indicate:
            self._memory.append(measurement)
        return measurement

    def pending(self) -> Iterator[Measurement]:
        """The measurements in memory, oldest first."""
        return iter(tuple(self._memory))

    def delivered(self, measurement: Measurement) -> None:
        """Forget a measurement whose indication was confirmed."""
        if self._memory and self._memory[0] == measurement:
            self._memory.popleft()
        elif measurement in self._memory:
            self._memory.remove(measurement)

    def battery_payload(self) -> bytes:
        """The Battery Level (0x2A19) value."""
        return bytes((self.battery,))

    def _now(self) -> datetime:
        """The device clock: whole seconds, strictly increasing so every timestamp names one measurement."""
        now = self._clock().astimezone(UTC).replace(microsecond=0)
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + timedelta(seconds=1)
        return now

    def _take(self, at: datetime, *, continuous: bool) -> Measurement:
        """Build, number and remember one measurement taken at `at`."""
        self._seq += 1
        rnd = self._random
        uuid16: int
        measured_at: datetime | None = at
        if self.kind is EmulatedKind.THERMOMETER:
            uuid16 = TEMPERATURE_MEASUREMENT
            celsius = round(rnd.uniform(36.3, 37.4), 1)
            payload = encode_temperature(celsius, timestamp=at, temperature_type=TemperatureType.TYMPANUM)
        elif self.kind is EmulatedKind.BLOOD_PRESSURE:
            uuid16 = BLOOD_PRESSURE_MEASUREMENT
            systolic = rnd.randint(108, 138)
            diastolic = systolic - rnd.randint(38, 52)  # a plausible pulse pressure
            mean = round(diastolic + (systolic - diastolic) / 3)
            payload = encode_blood_pressure(
                systolic, diastolic, mean, timestamp=at, pulse_rate=rnd.randint(56, 84), user_id=1, status=()
            )
        elif self.kind is EmulatedKind.OXIMETER and continuous:
            uuid16 = PLX_CONTINUOUS_MEASUREMENT
            measured_at = None
            payload = encode_plx_continuous(rnd.randint(95, 99), rnd.randint(58, 86))
        elif self.kind is EmulatedKind.OXIMETER:
            uuid16 = PLX_SPOT_CHECK_MEASUREMENT
            payload = encode_plx_spot_check(rnd.randint(95, 99), rnd.randint(58, 86), timestamp=at)
        else:
            uuid16 = WEIGHT_MEASUREMENT
            kilograms = round(rnd.uniform(52.0, 96.0) * 20) / 20  # the scale's 50 g resolution
            bmi = round(kilograms / _HEIGHT_M**2, 1)
            payload = encode_weight(kilograms, timestamp=at, user_id=1, bmi=bmi, height=_HEIGHT_M)
        indicate = "indicate" in self.characteristic(uuid16).flags
        measurement = Measurement(self._seq, uuid16, payload, measured_at, indicate)
        if measured_at is not None:
            self._last_time = measured_at
        self.taken.append(measurement)
        if indicate:
            self._memory.append(measurement)
        return measurement


def make_devices(kinds: Sequence[EmulatedKind | str]) -> list[EmulatedDevice]:
    """One emulated device per kind, numbered so that two of the same kind get distinct addresses.

    Raises:
        ConfigError: an unknown kind.
    """
    counts: dict[EmulatedKind, int] = {}
    devices = []
    for kind in kinds:
        emulated = _kind(kind)
        index = counts.get(emulated, 0)
        counts[emulated] = index + 1
        devices.append(EmulatedDevice(emulated, address=default_address(emulated, index)))
    return devices
