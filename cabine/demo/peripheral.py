"""An emulated device served over BlueZ's D-Bus API: a GATT application plus an LE advertisement on one adapter.

This is the peripheral side a real BlueZ host would run (org.bluez.GattManager1.RegisterApplication and
org.bluez.LEAdvertisingManager1.RegisterAdvertisement), on its own D-Bus connection so that the emulator sees
one client per device. The central side is bleak, unmodified, talking to the same (emulated) BlueZ.
"""

# No `from __future__ import annotations` here: dbus-fast reads the D-Bus signatures from the annotations, and
# under PEP 563 it evaluates the string "None" of a void method to None instead of the empty signature.

import asyncio
import contextlib
import logging
from typing import Annotated, Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBool, DBusBytes, DBusDict, DBusObjectPath, DBusSignature, DBusStr
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from cabine.demo.emulated import CharacteristicSpec, EmulatedDevice, Measurement
from gateway.devices.gatt import BATTERY_LEVEL, uuid128
from gateway.errors import GatewayError

__all__ = ["EmulationError", "GattPeripheral"]

_logger = logging.getLogger(__name__)

DBusStrList = Annotated[list[str], DBusSignature("as")]

_BLUEZ = "org.bluez"
_CONFIRM_TIMEOUT = 5.0
"""How long an indication may wait for its confirmation (ATT's own transaction timeout is 30 s)."""


class EmulationError(GatewayError, RuntimeError):
    """The emulated radio could not be started or driven; the message says which step failed."""


class _Service(ServiceInterface):
    """org.bluez.GattService1 of the application."""

    def __init__(self, uuid16: int) -> None:
        super().__init__("org.bluez.GattService1")
        self._uuid = uuid128(uuid16)

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self._uuid

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> DBusBool:
        return True


class _Characteristic(ServiceInterface):
    """org.bluez.GattCharacteristic1 of the application; subscriptions and confirmations go to the peripheral."""

    def __init__(self, peripheral: "GattPeripheral", spec: CharacteristicSpec, service_path: str) -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self.spec = spec
        self._peripheral = peripheral
        self._service_path = service_path
        self.subscribed = False
        self.confirmed = asyncio.Event()

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return uuid128(self.spec.uuid16)

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> DBusObjectPath:
        return self._service_path

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> DBusStrList:
        return list(self.spec.flags)

    @dbus_method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:
        return self._peripheral.read_value(self.spec)

    @dbus_method()
    def StartNotify(self) -> None:
        self.subscribed = True
        self._peripheral.wake()

    @dbus_method()
    def StopNotify(self) -> None:
        self.subscribed = False

    @dbus_method()
    def Confirm(self) -> None:
        self.confirmed.set()

    def push(self, payload: bytes) -> None:
        """Send a value to the subscriber (BlueZ turns the property change into a notification)."""
        self.emit_properties_changed({"Value": payload})

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> DBusBytes:
        return b""


class _Advertisement(ServiceInterface):
    """org.bluez.LEAdvertisement1: connectable, discoverable, with the health service UUID and a local name."""

    def __init__(self, name: str, service_uuid16: int) -> None:
        super().__init__("org.bluez.LEAdvertisement1")
        self._name = name
        self._uuid = uuid128(service_uuid16)

    @dbus_method()
    def Release(self) -> None:
        return None

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> DBusStr:
        return "peripheral"

    @dbus_property(access=PropertyAccess.READ)
    def ServiceUUIDs(self) -> DBusStrList:
        return [self._uuid]

    @dbus_property(access=PropertyAccess.READ)
    def LocalName(self) -> DBusStr:
        return self._name

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> DBusBool:
        return True


async def call(bus: MessageBus, path: str, interface: str, member: str, signature: str = "", body: Any = ()) -> Any:
    """Call a BlueZ method and return its reply body.

    Raises:
        EmulationError: the call returned a D-Bus error.
    """
    reply = await bus.call(
        Message(destination=_BLUEZ, path=path, interface=interface, member=member, signature=signature, body=list(body))
    )
    if reply is None or reply.message_type is MessageType.ERROR:
        detail = "no reply" if reply is None else f"{reply.error_name}: {reply.body}"
        raise EmulationError(f"{interface}.{member} on {path} failed ({detail})")
    return reply.body


class GattPeripheral:
    """Serves one EmulatedDevice on one emulated adapter; an async context manager whose close is idempotent."""

    _APP = "/cabine/app"
    _ADVERTISEMENT = "/cabine/advertisement0"

    def __init__(self, device: EmulatedDevice, *, bus_address: str, adapter_path: str) -> None:
        self.device = device
        self._bus_address = bus_address
        self._adapter_path = adapter_path
        self._bus: MessageBus | None = None
        self._chars: dict[int, _Characteristic] = {}
        self._wakeup = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._closed = False

    async def __aenter__(self) -> "GattPeripheral":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect to the bus, export the GATT application and advertisement, and register both with BlueZ.

        Raises:
            EmulationError: BlueZ refused the application or the advertisement.
        """
        self._bus = await MessageBus(bus_address=self._bus_address, bus_type=BusType.SYSTEM).connect()
        try:
            for index, spec in enumerate(self.device.services()):
                service_path = f"{self._APP}/service{index}"
                self._bus.export(service_path, _Service(spec.uuid16))
                for char_index, char_spec in enumerate(spec.characteristics):
                    char = _Characteristic(self, char_spec, service_path)
                    self._chars[char_spec.uuid16] = char
                    self._bus.export(f"{service_path}/char{char_index}", char)
            self._bus.export(self._ADVERTISEMENT, _Advertisement(self.device.identity.name, self.device.health_service))
            await call(
                self._bus,
                self._adapter_path,
                "org.bluez.GattManager1",
                "RegisterApplication",
                "oa{sv}",
                (self._APP, {}),
            )
            await call(
                self._bus,
                self._adapter_path,
                "org.bluez.LEAdvertisingManager1",
                "RegisterAdvertisement",
                "oa{sv}",
                (self._ADVERTISEMENT, {}),
            )
        except BaseException:
            await self.close()
            raise
        self._sender = asyncio.create_task(self._send_loop(), name=f"emulated-{self.device.kind}-sender")

    async def close(self) -> None:
        """Stop sending and leave the bus (BlueZ drops the application and advertisement with the client)."""
        if self._closed:
            return
        self._closed = True
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._bus is not None:
            self._bus.disconnect()
            # A bus that already went away (its daemon died) reports that here; closing goes on.
            with contextlib.suppress(EOFError, OSError):
                await self._bus.wait_for_disconnect()  # type: ignore[no-untyped-call]  # dbus-fast: unannotated

    @property
    def subscribed(self) -> bool:
        """Whether a central is subscribed to at least one of the device's measurement characteristics."""
        return any(char.subscribed for char in self._chars.values() if char.spec.uuid16 != BATTERY_LEVEL)

    def read_value(self, spec: CharacteristicSpec) -> bytes:
        """The value a central reads: the live battery level, or the characteristic's static value."""
        if spec.uuid16 == BATTERY_LEVEL:
            return self.device.battery_payload()
        return spec.value

    def wake(self) -> None:
        """Tell the sender that memory or subscriptions changed."""
        self._wakeup.set()

    def push_now(self, measurement: Measurement) -> bool:
        """Send a notified measurement (PLX continuous) if someone listens; False when it is lost."""
        char = self._chars[measurement.uuid16]
        if not char.subscribed:
            return False
        char.push(measurement.payload)
        return True

    def set_battery(self, percent: int) -> None:
        """Change the battery level and notify a subscribed central."""
        self.device.battery = percent
        char = self._chars.get(BATTERY_LEVEL)
        if char is not None and char.subscribed:
            char.push(self.device.battery_payload())

    async def _send_loop(self) -> None:
        """Deliver the device's memory, oldest first, one indication at a time, each kept until confirmed."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            for measurement in self.device.pending():
                char = self._chars[measurement.uuid16]
                if not char.subscribed:
                    break  # keep the order: nothing newer goes out before this one
                char.confirmed.clear()
                char.push(measurement.payload)
                try:
                    async with asyncio.timeout(_CONFIRM_TIMEOUT):
                        await char.confirmed.wait()
                except TimeoutError:
                    # The link went away before the confirmation: keep it in memory for the next connection.
                    _logger.debug("emulated %s: indication %d not confirmed", self.device.kind, measurement.seq)
                    break
                self.device.delivered(measurement)
