# SPDX-License-Identifier: GPL-2.0-only
"""Entry point of the BlueZ emulator process: bluezoo's own `main`, with link loss and re-advertising made faithful
to BlueZ.

This is a separate program, under bluezoo's own licence (GPL-2.0-only), shipped as a data file beside the demo: the
gateway never imports it; the test harness starts it as a child process and talks to it over D-Bus only.

Run as `python bluezoo_emulator.py [bluezoo options]` (the harness does). bluezoo 1.0.2
keeps a device's GATT objects exported after a disconnection, so connecting again fails with EEXIST, and it
never tells the peripheral's GATT application that its subscriber went away. BlueZ itself, on link loss,
calls StopNotify on the application's subscribed characteristics, removes the remote GATT objects from the
bus and sets ServicesResolved to false; `_disconnect` below does exactly that before bluezoo's own code.

bluezoo also keeps one notification subscription per characteristic whoever asked for it: when the process that
subscribed dies, the subscription stays, and a second StartNotify opens a second path, so every value reaches the
bus twice. BlueZ keeps a session per D-Bus client, drops a client's sessions when it leaves the bus, subscribes the
device once and unsubscribes it with the last session (`_start_notify`, `_stop_notify`, `_session_lost`). The link
itself stays up when its client dies, as in BlueZ (bluez/bluez#89).
A device switched off (its emulated controller powered off) refuses connections (`_connect`); bluezoo would
connect to it anyway. This module runs only in the emulator's process; the gateway never imports it.
"""

from __future__ import annotations

import logging
from typing import Any

import sdbus
from bluezoo import bluezoo, events
from bluezoo.adapter import Adapter
from bluezoo.device import Device
from bluezoo.exceptions import DBusBluezFailedError
from bluezoo.gatt import GattCharacteristicClientLink

_logger = logging.getLogger("cabine.bluezoo")
_bluezoo_disconnect = Device.disconnect
_bluezoo_connect = Device.connect
_bluezoo_add_device = Adapter.add_device
_start_notify_method = GattCharacteristicClientLink.__dict__["StartNotify"]
_stop_notify_method = GattCharacteristicClientLink.__dict__["StopNotify"]
_bluezoo_start_notify = _start_notify_method.original_method
_DEVICE_INTERFACE = "org.bluez.Device1"

# Per characteristic link: the D-Bus clients with a notification session, each with its "left the bus" watch.
_sessions: dict[int, dict[str, events.Subscription]] = {}


async def _unsubscribe_device(link: Any) -> None:
    """Stop the device's notifications on `link` (what BlueZ does with the last session or on link loss)."""
    _sessions.pop(id(link), None)
    subscription = link.client_props_changed_subscription
    # bluezoo keeps an empty `events.Subscription` until StartNotify stores the live subscriber there.
    if not isinstance(subscription, events.Subscription):
        subscription.unsubscribe()
        link.client_props_changed_subscription = events.Subscription()
        try:
            await link.client.StopNotify()
        except Exception:  # the application may already be gone (peripheral powered off)
            _logger.debug("StopNotify on %s failed", link, exc_info=True)


async def _start_notify(self: Any) -> None:
    """A notification session for the calling client; the device is subscribed once, by the first."""
    sender = sdbus.get_current_message().sender or ""
    sessions = _sessions.setdefault(id(self), {})
    if sender in sessions:
        return
    first = not sessions

    async def lost() -> None:
        await _session_lost(self, sender)

    sessions[sender] = events.Subscription(events.subscribe(f"service:lost:{sender}", lost, once=True))
    if first:
        await _bluezoo_start_notify(self)


async def _stop_notify(self: Any) -> None:
    """End the calling client's session; the device is unsubscribed with the last one."""
    await _end_session(self, sdbus.get_current_message().sender or "")


async def _session_lost(link: Any, sender: str) -> None:
    """The client left the bus (exited, crashed): its sessions end with it."""
    _logger.debug("client %s left: its notification session on %s ends", sender, link)
    await _end_session(link, sender)


async def _end_session(link: Any, sender: str) -> None:
    sessions = _sessions.get(id(link), {})
    watch = sessions.pop(sender, None)
    if watch is None:
        return
    watch.unsubscribe()
    if not sessions:
        await _unsubscribe_device(link)


async def _disconnect(self: Any, uuid: str | None = None) -> None:
    """Tear the link down as BlueZ does, then let bluezoo mark both ends disconnected."""
    links = sorted(self.services.items(), reverse=True)  # children (longer paths) before their parents
    for _path, link in links:
        if isinstance(link, GattCharacteristicClientLink):
            for watch in _sessions.get(id(link), {}).values():
                watch.unsubscribe()
            await _unsubscribe_device(link)
    for _path, link in links:
        self.peer_adapter.mock.remove_object(link)
    self.services.clear()
    if self.services_resolved:
        await self.ServicesResolved.set_async(False)
    await _bluezoo_disconnect(self, uuid)


async def _add_device(self: Any, device: Any) -> None:
    """Report a device seen again in a scan as BlueZ does: a new RSSI, hence a PropertiesChanged signal.

    bluezoo updates a device it already knows only when its advertised data changed, so a central that starts a
    scan after another (a self-test, then the gateway) never hears of it again. BlueZ updates the RSSI of every
    advertisement it receives, and bleak reports each update as an advertisement.
    """
    before = set(self.devices)
    await _bluezoo_add_device(self, device)  # attaches the device to this adapter, which gives its object path
    path = device.get_object_path()
    known = self.devices.get(path) if path in before else None
    if known is not None and not known.connected:
        known.rssi = -50 - (known.rssi + 1) % 8  # a little variation, as real signal strength has
        known.properties_changed.emit((_DEVICE_INTERFACE, {"RSSI": ("n", known.rssi)}, []))


async def _connect(self: Any, uuid: str | None = None) -> None:
    """A device whose own (emulated) controller is powered off is switched off: it does not answer, and the
    connection fails as BlueZ's does. bluezoo connects to it regardless."""
    if not self.peer_adapter.powered:
        raise DBusBluezFailedError("le-connection-abort-by-local")
    await _bluezoo_connect(self, uuid)


def main() -> None:
    """Run bluezoo with the link-loss, re-advertising and notification-session fixes."""
    Device.disconnect = _disconnect
    Device.connect = _connect
    Adapter.add_device = _add_device
    # sdbus serves a D-Bus method through its descriptor's `original_method`.
    _start_notify_method.original_method = _start_notify
    _stop_notify_method.original_method = _stop_notify
    bluezoo.main()


if __name__ == "__main__":
    main()
