# SPDX-License-Identifier: GPL-2.0-only
"""Entry point of the BlueZ emulator process: bluezoo's own `main`, with link loss made faithful to BlueZ.

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
from bluezoo.device import Device
from bluezoo.gatt import GattCharacteristicClientLink

_logger = logging.getLogger("cabine.bluezoo")
_bluezoo_disconnect = Device.disconnect


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


def main() -> None:
    """Run bluezoo with the link-loss fix."""
    Device.disconnect = _disconnect
    bluezoo.main()


if __name__ == "__main__":
    main()
