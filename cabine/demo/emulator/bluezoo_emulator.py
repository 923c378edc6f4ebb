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
This module runs only in the emulator's process; the gateway never imports it.
"""

from __future__ import annotations

import logging
from typing import Any

from bluezoo import bluezoo, events
from bluezoo.adapter import Adapter
from bluezoo.device import Device
from bluezoo.gatt import GattCharacteristicClientLink

_logger = logging.getLogger("cabine.bluezoo")
_bluezoo_disconnect = Device.disconnect
_bluezoo_add_device = Adapter.add_device
_DEVICE_INTERFACE = "org.bluez.Device1"


async def _disconnect(self: Any, uuid: str | None = None) -> None:
    """Tear the link down as BlueZ does, then let bluezoo mark both ends disconnected."""
    links = sorted(self.services.items(), reverse=True)  # children (longer paths) before their parents
    for _path, link in links:
        if not isinstance(link, GattCharacteristicClientLink):
            continue
        subscription = link.client_props_changed_subscription
        # bluezoo keeps an empty `events.Subscription` until StartNotify stores the live subscriber there.
        if not isinstance(subscription, events.Subscription):
            subscription.unsubscribe()
            link.client_props_changed_subscription = events.Subscription()
            try:
                await link.client.StopNotify()
            except Exception:  # the application may already be gone (peripheral powered off)
                _logger.debug("StopNotify on %s failed", link, exc_info=True)
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


def main() -> None:
    """Run bluezoo with the link-loss and re-advertising fixes."""
    Device.disconnect = _disconnect
    Adapter.add_device = _add_device
    bluezoo.main()


if __name__ == "__main__":
    main()
