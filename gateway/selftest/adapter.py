"""The Bluetooth adapter check: BlueZ has the adapter on the system D-Bus, and it is powered.

Reads org.bluez.Adapter1 through dbus_fast, the library bleak itself uses, on the bus bleak uses: the system bus,
or DBUS_SYSTEM_BUS_ADDRESS when set (as the Bluetooth emulation does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Final

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from gateway.selftest.report import failed, ok, skipped
from signaling.protocol import SelftestCheck

NAME: Final = "bluetooth-adapter"
ADAPTER_INTERFACE: Final = "org.bluez.Adapter1"
_PREFIX: Final = "/org/bluez/"

# What GetManagedObjects gives, values unwrapped: object path -> interface -> property -> value.
ManagedObjects = Mapping[str, Mapping[str, Mapping[str, Any]]]


def adapters_of(objects: ManagedObjects) -> dict[str, Mapping[str, Any]]:
    """The adapters among BlueZ's objects, by name ("hci0"), with their Adapter1 properties."""
    return {
        path.removeprefix(_PREFIX): interfaces[ADAPTER_INTERFACE]
        for path, interfaces in objects.items()
        if ADAPTER_INTERFACE in interfaces and path.startswith(_PREFIX)
    }


def _central(properties: Mapping[str, Any]) -> bool:
    # Older BlueZ has no Roles property; every adapter it has can scan.
    roles = properties.get("Roles")
    return roles is None or "central" in roles


def adapter_check(objects: ManagedObjects, wanted: str | None, *, required: bool = True) -> SelftestCheck:
    """The verdict on BlueZ's objects: the `wanted` adapter (or bleak's default: a powered central one)."""
    adapters = adapters_of(objects)
    if not adapters:
        return failed(NAME, "BlueZ runs but has no Bluetooth adapter (is the dongle plugged in?)", required=required)
    names = ", ".join(sorted(adapters))
    if wanted is not None:
        properties = adapters.get(wanted)
        if properties is None:
            return failed(NAME, f"no adapter {wanted} (BlueZ has {names})", required=required)
        if not properties.get("Powered", False):
            return failed(NAME, f"{wanted} is off (turn it on: bluetoothctl power on)", required=required)
        return ok(NAME, f"{wanted} ({properties.get('Address', 'no address')}) is powered", required=required)
    central = sorted(name for name, properties in adapters.items() if _central(properties))
    if not central:
        return failed(NAME, f"no adapter can scan for devices (BlueZ has {names})", required=required)
    powered = [name for name in central if adapters[name].get("Powered", False)]
    if not powered:
        return failed(NAME, f"{', '.join(central)} off (turn it on: bluetoothctl power on)", required=required)
    return ok(NAME, f"{powered[0]} ({adapters[powered[0]].get('Address', 'no address')}) is powered", required=required)


def _unwrap(body: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """GetManagedObjects' answer with each property's Variant replaced by its value."""
    return {
        str(path): {
            str(interface): {str(key): getattr(value, "value", value) for key, value in properties.items()}
            for interface, properties in interfaces.items()
        }
        for path, interfaces in body.items()
    }


async def bluez_objects() -> ManagedObjects | str:
    """BlueZ's objects from the system bus, or why they cannot be read (one sentence)."""
    try:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    except (OSError, EOFError, ValueError) as exc:  # no socket, refused, or a malformed bus address
        return f"cannot reach the system D-Bus ({type(exc).__name__}: {exc})"
    try:
        reply = await bus.call(
            Message(
                destination="org.bluez",
                path="/",
                interface="org.freedesktop.DBus.ObjectManager",
                member="GetManagedObjects",
            )
        )
    finally:
        bus.disconnect()
        with contextlib.suppress(EOFError, OSError):
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]  # dbus-fast: unannotated
    if reply is None:  # pragma: no cover - a method call always gets a reply or an error
        return "BlueZ gave no answer"
    if reply.message_type is MessageType.ERROR:
        if reply.error_name in (
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
        ):
            return "BlueZ (bluetoothd) is not running"
        return f"BlueZ refused: {reply.error_name}"
    return _unwrap(reply.body[0])


async def probe_adapter(wanted: str | None, *, needed: bool, required: bool = True) -> SelftestCheck:
    """The adapter check; skipped when no device is allowlisted (`needed` False)."""
    if not needed:
        return skipped(NAME, "no Bluetooth device allowlisted")
    objects = await bluez_objects()
    if isinstance(objects, str):
        return failed(NAME, objects, required=required)
    return adapter_check(objects, wanted, required=required)
