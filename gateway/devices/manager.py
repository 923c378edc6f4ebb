"""The Bluetooth device manager: scan, allowlist, connect, subscribe, read battery and identity, reconnect.

Built on bleak. One scanner runs for the manager's life, filtered on the standard health services; each
allowlisted device found gets one task that connects, subscribes to its measurement characteristics before
anything slow (blood-pressure monitors send their stored readings the moment a central subscribes), reads its
battery level and Device Information, and waits for the link to drop, then reconnects with exponential
backoff. Readings come out of `readings()`; device states out of `states()` and `state_changes()`.
Health data is never logged: not the readings, not the payload bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Container, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

from bleak import BleakAdapter, BleakClient, BleakScanner
from bleak.backends.adapter import BaseBleakAdapter
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from gateway.backoff import Backoff
from gateway.devices.gatt import (
    BATTERY_LEVEL,
    BLOOD_PRESSURE_SERVICE,
    DEVICE_INFORMATION_STRINGS,
    HEALTH_SERVICE_KEYS,
    HEALTH_THERMOMETER_SERVICE,
    HEART_RATE_SERVICE,
    MEASUREMENT_CHARACTERISTICS,
    PULSE_OXIMETER_SERVICE,
    WEIGHT_SCALE_SERVICE,
    apply_device_information,
    characteristic_label,
    decode,
    decode_battery_level,
    uuid128,
)
from gateway.devices.readings import DeviceIdentity, Reading
from gateway.errors import ConfigError, DecodeError, GatewayError
from gateway.lifecycle import AsyncResource

__all__ = [
    "HEALTH_SERVICES",
    "Backoff",
    "BleakBackends",
    "DeviceManager",
    "DeviceManagerError",
    "DeviceState",
]

_logger = logging.getLogger(__name__)

HEALTH_SERVICES: Final = (
    HEALTH_THERMOMETER_SERVICE,
    BLOOD_PRESSURE_SERVICE,
    PULSE_OXIMETER_SERVICE,
    HEART_RATE_SERVICE,
    WEIGHT_SCALE_SERVICE,
)
"""The standard health services the scanner looks for."""

_CONNECTION_ERRORS = (BleakError, TimeoutError, OSError, EOFError)
_MAX_IGNORED_LOGGED = 1024
MAX_SERVICE_DEVICES: Final = 16
"""How many devices allowed by service alone the manager follows (a cabin has a handful of devices)."""
"""How many ignored addresses are remembered for "log once" (a busy place has many devices around)."""


class DeviceManagerError(GatewayError, RuntimeError):
    """The device manager was used in a way it does not support (for example two readers at once)."""


@dataclass(frozen=True, slots=True)
class BleakBackends:
    """The bleak backend classes to use instead of the platform's (a custom or test backend)."""

    scanner: type[BaseBleakScanner] | None = None
    client: type[BaseBleakClient] | None = None
    adapter: type[BaseBleakAdapter] | None = None


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What the gateway knows of one allowlisted device: seen in a scan, connected, battery level."""

    address: str
    name: str = ""
    seen: bool = False
    connected: bool = False
    battery_percent: int | None = None
    # The allowlistable health services it advertised, by their configuration names ("blood-pressure"...).
    services: frozenset[str] = frozenset()


def _normalize(address: str) -> str:
    """An address as the manager keys it: stripped, upper case (BlueZ MACs; CoreBluetooth UUIDs too).

    Raises:
        ConfigError: empty.
    """
    normalized = address.strip().upper()
    if not normalized:
        raise ConfigError("an allowlisted device address is empty")
    return normalized


def _uuid16(uuid: str) -> int | None:
    """The 16-bit UUID of a characteristic on the Bluetooth base UUID, or None."""
    lowered = uuid.lower()
    if len(lowered) == 36 and lowered.startswith("0000") and lowered.endswith("-0000-1000-8000-00805f9b34fb"):
        return int(lowered[4:8], 16)
    return None


async def _first(*events: asyncio.Event) -> None:
    """Wait until any of `events` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


def _known(
    chars: Iterable[BleakGATTCharacteristic], wanted: Container[int]
) -> list[tuple[int, BleakGATTCharacteristic]]:
    """The characteristics whose 16-bit UUID is in `wanted`, with that UUID."""
    found = []
    for char in chars:
        uuid16 = _uuid16(char.uuid)
        if uuid16 is not None and uuid16 in wanted:
            found.append((uuid16, char))
    return found


class DeviceManager(AsyncResource):
    """Scans for, connects to and listens to the allowlisted health devices; an async context manager.

    Readings are queued from the moment the manager starts, so none sent before the first `async for` over
    `readings()` is lost (up to `max_queued`, beyond which the oldest are dropped and counted).
    """

    def __init__(
        self,
        allowlist: Iterable[str],
        *,
        services: Iterable[int] = (),
        backend: BleakBackends | None = None,
        adapter: str | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 20.0,
        read_timeout: float = 10.0,
        max_queued: int = 1000,
        cabin_id: str = "-",
    ) -> None:
        """Prepare a manager for the devices in `allowlist`; `adapter` is a BlueZ adapter name such as "hci0".

        `services` (16-bit health service UUIDs) also accepts any device advertising one of them, up to
        `MAX_SERVICE_DEVICES` such devices (a cabin that allows "any blood-pressure monitor").

        Raises:
            ConfigError: an empty address, a timeout <= 0, or `max_queued` < 1.
        """
        self._allowlist = frozenset(_normalize(address) for address in allowlist)
        self._services = frozenset(uuid128(service) for service in services)
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ConfigError(f"timeouts must be > 0 seconds, got {connect_timeout} and {read_timeout}")
        if max_queued < 1:
            raise ConfigError(f"max_queued must be >= 1, got {max_queued}")
        self._backend = backend or BleakBackends()
        self._adapter = adapter
        self._backoff = backoff or Backoff()
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._cabin = cabin_id
        self._states: dict[str, DeviceState] = {address: DeviceState(address) for address in self._allowlist}
        self._latest: dict[str, BLEDevice] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ignored: set[str] = set()
        self._readings: asyncio.Queue[Reading | None] = asyncio.Queue(maxsize=max_queued)
        self._reader_active = False
        self._state_sinks: set[asyncio.Queue[DeviceState | None]] = set()
        self._scanner: BleakScanner | None = None
        self._started = False
        self._closed = False
        self._stopping = asyncio.Event()
        self.decode_failures = 0
        """How many notifications could not be decoded (logged without their bytes)."""
        self.dropped_readings = 0
        """How many readings were dropped because nobody consumed `readings()` in time."""

    async def __aenter__(self) -> DeviceManager:
        await self.start()
        return self

    async def start(self) -> None:
        """Start scanning for the health services.

        Raises:
            DeviceManagerError: the manager was closed.
            BleakError: no usable Bluetooth adapter (bleak's own error, with its reason).
        """
        if self._closed:
            raise DeviceManagerError("the device manager is closed")
        if self._started:
            return
        self._started = True
        scanner = BleakScanner(
            self._on_advertisement,
            service_uuids=[uuid128(service) for service in HEALTH_SERVICES],
            bluez={"adapter": self._adapter} if self._adapter else {},
            backend=self._backend.scanner,
        )
        await scanner.start()
        self._scanner = scanner
        _logger.info("[cabin %s] scanning for health devices (%d allowlisted)", self._cabin, len(self._allowlist))
        await self._adopt_connected()

    async def _adopt_connected(self) -> None:
        """Take over the devices already connected to the adapter: they do not advertise, so no scan finds them.

        BlueZ keeps a link up when the process that opened it dies (bluez/bluez#89): after a gateway crash the
        devices stay connected to BlueZ, and bleak's client reuses such a link.
        """
        try:
            async with asyncio.timeout(self._read_timeout):
                adapter = await BleakAdapter.get(
                    bluez={"adapter": self._adapter} if self._adapter else {}, backend=self._backend.adapter
                )
                devices = await adapter.get_connected_devices([uuid128(service) for service in HEALTH_SERVICES])
        except NotImplementedError:
            return  # a backend that cannot tell (its devices advertise again when their central goes)
        except _CONNECTION_ERRORS as exc:
            _logger.warning("[cabin %s] could not list the connected devices: %s", self._cabin, exc)
            return
        for device in devices:
            details = device.details.get("props", {}) if isinstance(device.details, dict) else {}
            self._found(device, device.name or "", [str(uuid) for uuid in details.get("UUIDs", ())])
            if device.address.upper() in self._states:
                _logger.info("[cabin %s] %s: still connected to the adapter, taken over", self._cabin, device.address)

    async def close(self) -> None:
        """Stop scanning, disconnect every device, end the iterators; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        # Sessions also watch this event: a cancellation can be swallowed on its way through a library
        # (Python 3.11's asyncio.wait_for does when the awaited call completes at the same moment).
        self._stopping.set()
        scanner, self._scanner = self._scanner, None
        if scanner is not None:
            try:
                await scanner.stop()
            except _CONNECTION_ERRORS as exc:
                _logger.warning("[cabin %s] stopping the scanner failed: %s", self._cabin, exc)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._end_iterators()

    def _end_iterators(self) -> None:
        """Wake every iterator with the end marker."""
        if self._readings.full():
            self._readings.get_nowait()
            self.dropped_readings += 1
        self._readings.put_nowait(None)
        for sink in self._state_sinks:
            sink.put_nowait(None)

    # --- Public views --------------------------------------------------------------------------------------

    @property
    def allowlist(self) -> frozenset[str]:
        """The normalized addresses the manager connects to (besides those allowed by service)."""
        return self._allowlist

    @property
    def services(self) -> frozenset[str]:
        """The 128-bit UUIDs of the services whose devices are accepted whatever their address."""
        return self._services

    def states(self) -> Mapping[str, DeviceState]:
        """A snapshot of every allowlisted device's state, by address."""
        return MappingProxyType(dict(self._states))

    async def readings(self) -> AsyncGenerator[Reading, None]:
        """Yield decoded readings as they arrive, until the manager closes.

        Raises:
            DeviceManagerError: another `readings()` iteration is already running.
        """
        if self._reader_active:
            raise DeviceManagerError("readings() is already being iterated; use one consumer")
        self._reader_active = True
        try:
            while True:
                reading = await self._readings.get()
                if reading is None:
                    self._readings.put_nowait(None)  # a later iteration ends at once too
                    return
                yield reading
        finally:
            self._reader_active = False

    async def state_changes(self) -> AsyncGenerator[DeviceState, None]:
        """Yield every device's current state, then each change, until the manager closes."""
        sink: asyncio.Queue[DeviceState | None] = asyncio.Queue()
        for state in self._states.values():
            sink.put_nowait(state)
        if self._closed:
            sink.put_nowait(None)
        self._state_sinks.add(sink)
        try:
            while (change := await sink.get()) is not None:
                yield change
        finally:
            self._state_sinks.discard(sink)

    # --- Scanning ------------------------------------------------------------------------------------------

    def _on_advertisement(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        """Scanner callback: note allowlisted devices and start their connection task; ignore the others."""
        self._found(device, advertisement.local_name or "", advertisement.service_uuids)

    def _found(self, device: BLEDevice, name: str, service_uuids: list[str]) -> None:
        if self._closed:
            return
        address = device.address.upper()
        if address not in self._states and self._accepts_by_service(service_uuids):
            self._states[address] = DeviceState(address)
            _logger.info("[cabin %s] %s: allowed by its service", self._cabin, address)
        if address not in self._states:
            if address not in self._ignored and len(self._ignored) < _MAX_IGNORED_LOGGED:
                self._ignored.add(address)
                _logger.info("[cabin %s] ignoring %s: not on the allowlist", self._cabin, address)
            return
        self._latest[address] = device
        name = name or device.name or self._states[address].name
        advertised = {uuid.lower() for uuid in service_uuids}
        services = frozenset(key for key, uuid in HEALTH_SERVICE_KEYS.items() if uuid128(uuid) in advertised)
        self._set_state(address, seen=True, name=name or "", services=self._states[address].services | services)
        if address not in self._tasks:
            self._tasks[address] = asyncio.create_task(self._run_device(address), name=f"ble-{address}")

    def _accepts_by_service(self, service_uuids: list[str]) -> bool:
        if not self._services or len(self._states) - len(self._allowlist) >= MAX_SERVICE_DEVICES:
            return False
        return any(uuid.lower() in self._services for uuid in service_uuids)

    def _set_state(self, address: str, **changes: object) -> None:
        """Update a device's state and tell the state iterators if it changed."""
        old = self._states[address]
        new = replace(old, **changes)  # type: ignore[arg-type]
        if new == old:
            return
        self._states[address] = new
        for sink in self._state_sinks:
            sink.put_nowait(new)

    # --- One device ----------------------------------------------------------------------------------------

    async def _run_device(self, address: str) -> None:
        """Connect, listen until the link drops, and reconnect with backoff, until the manager closes."""
        failures = 0
        while not self._closed:
            try:
                connected = await self._session(address)
            except _CONNECTION_ERRORS as exc:
                connected = False
                _logger.info("[cabin %s] %s: connection failed (%s)", self._cabin, address, type(exc).__name__)
            except Exception:
                # A bug or an unexpected backend error must not end the device's task: log it and retry.
                connected = False
                _logger.exception("[cabin %s] %s: unexpected error in the connection", self._cabin, address)
            failures = 0 if connected else failures + 1
            delay = self._backoff.delay(failures)
            _logger.info("[cabin %s] %s: reconnecting in %.1f s", self._cabin, address, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    async def _session(self, address: str) -> bool:
        """One connection: subscribe, read battery and identity, wait for the disconnection.

        Returns whether the connection was established (so the backoff restarts from its initial delay).

        Raises:
            BleakError, TimeoutError, OSError, EOFError: the connection could not be made or broke.
        """
        disconnected = asyncio.Event()
        state = self._states[address]
        identity = DeviceIdentity(address=address, name=state.name)
        # Notifications that arrive before the Device Information is read wait here, then are decoded with
        # the full identity; after that they are decoded as they come.
        early: list[tuple[int, bytes, datetime]] = []
        buffering = True

        def on_value(uuid16: int) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
            def handle(_char: BleakGATTCharacteristic, data: bytearray) -> None:
                received_at = datetime.now(UTC)
                if buffering:
                    early.append((uuid16, bytes(data), received_at))
                else:
                    self._deliver(uuid16, bytes(data), identity, received_at)

            return handle

        def flush_early() -> None:
            nonlocal buffering
            buffering = False
            for uuid16, payload, received_at in early:
                self._deliver(uuid16, payload, identity, received_at)
            early.clear()

        client = BleakClient(
            self._latest[address],
            disconnected_callback=lambda _client: disconnected.set(),
            timeout=self._connect_timeout,
            backend=self._backend.client,
        )
        async with client:
            chars = [char for service in client.services for char in service.characteristics]
            measurement = [
                (uuid16, char)
                for uuid16, char in _known(chars, MEASUREMENT_CHARACTERISTICS)
                if "notify" in char.properties or "indicate" in char.properties
            ]
            try:
                for uuid16, char in measurement:
                    await client.start_notify(char, on_value(uuid16))
                self._set_state(address, connected=True)
                _logger.info(
                    "[cabin %s] %s: connected, %d measurement characteristic(s)",
                    self._cabin, address, len(measurement),
                )  # fmt: skip
                identity = await self._read_identity(client, chars, identity)
                await self._read_battery(client, chars, address)
                flush_early()
                # Also end on close, not only on cancellation (see `close`).
                await _first(disconnected, self._stopping)
            finally:
                # Even if the link or the manager went away meanwhile: the device considers these delivered.
                flush_early()
                self._set_state(address, connected=False)
        _logger.info("[cabin %s] %s: disconnected", self._cabin, address)
        return True

    async def _read_identity(
        self, client: BleakClient, chars: list[BleakGATTCharacteristic], identity: DeviceIdentity
    ) -> DeviceIdentity:
        """Read the Device Information strings the device has; a failed read leaves its field empty."""
        for uuid16, char in _known(chars, DEVICE_INFORMATION_STRINGS):
            if "read" not in char.properties:
                continue
            try:
                async with asyncio.timeout(self._read_timeout):
                    payload = await client.read_gatt_char(char)
                identity = apply_device_information(identity, uuid16, bytes(payload))
            except (*_CONNECTION_ERRORS, DecodeError) as exc:
                _logger.info(
                    "[cabin %s] %s: reading %s failed (%s)",
                    self._cabin, identity.address, characteristic_label(uuid16), type(exc).__name__,
                )  # fmt: skip
        return identity

    async def _read_battery(self, client: BleakClient, chars: list[BleakGATTCharacteristic], address: str) -> None:
        """Read the battery level and follow its notifications when the device offers them."""
        for _uuid, char in _known(chars, (BATTERY_LEVEL,)):
            try:
                if "read" in char.properties:
                    async with asyncio.timeout(self._read_timeout):
                        payload = await client.read_gatt_char(char)
                    self._set_state(address, battery_percent=decode_battery_level(bytes(payload)))
                if "notify" in char.properties:
                    await client.start_notify(char, lambda _c, data: self._on_battery(address, data))
            except (*_CONNECTION_ERRORS, DecodeError) as exc:
                _logger.info("[cabin %s] %s: battery level unavailable (%s)", self._cabin, address, type(exc).__name__)
            return

    def _on_battery(self, address: str, data: bytearray) -> None:
        """Battery Level notification."""
        try:
            self._set_state(address, battery_percent=decode_battery_level(bytes(data)))
        except DecodeError:
            self.decode_failures += 1
            _logger.warning("[cabin %s] %s: undecodable battery level", self._cabin, address)

    def _deliver(self, uuid16: int, payload: bytes, identity: DeviceIdentity, received_at: datetime) -> None:
        """Decode a measurement and queue it; a failure is counted and logged without the payload."""
        try:
            reading = decode(uuid16, payload, device=identity, received_at=received_at)
        except DecodeError:
            self.decode_failures += 1
            _logger.warning(
                "[cabin %s] %s: could not decode %s (%d bytes); %d decode failure(s) so far",
                self._cabin, identity.address, characteristic_label(uuid16), len(payload), self.decode_failures,
            )  # fmt: skip
            return
        if self._readings.full():
            self._readings.get_nowait()
            self.dropped_readings += 1
            _logger.warning("[cabin %s] reading queue full: dropped the oldest reading", self._cabin)
        self._readings.put_nowait(reading)
