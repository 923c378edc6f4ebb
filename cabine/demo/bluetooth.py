"""The demo's Bluetooth: an emulated BlueZ with four health devices, for the cabin's own device manager to find.

The cabin is built by the same root as on a real PC (`gateway.app.Cabin`): its DeviceManager, on real bleak, scans,
connects and subscribes as it would to real devices. Only what is under bleak is swapped in: BlueZ is emulated by
bluezoo on a private D-Bus, and the devices are emulated GATT peripherals. The demo also makes a device measure when
the doctor asks (in a real cabin the citizen does).
"""

from __future__ import annotations

from typing import Final

from cabine.demo.radio import EmulatedRadio
from gateway.config import DeviceAllowlist
from gateway.lifecycle import AsyncResource

# The reading kind a doctor asks for, and the emulated device that measures it.
DEVICE_FOR_KIND: Final = {
    "body-temperature": "thermometer",
    "blood-pressure": "blood-pressure",
    "oxygen-saturation": "oximeter",
    "body-weight": "scale",
}


class EmulatedBluetooth(AsyncResource):
    """An async context manager: the emulated radio with one device of each kind; close() is idempotent.

    Raises (on enter):
        EmulationError: dbus-daemon or bluezoo is missing, or the emulation did not start.
    """

    def __init__(self, *, period: float | None = 8.0) -> None:
        self.radio = EmulatedRadio.of_kinds(period=period)

    async def __aenter__(self) -> EmulatedBluetooth:
        await self.radio.start()
        return self

    async def close(self) -> None:
        await self.radio.close()

    @property
    def allowlist(self) -> DeviceAllowlist:
        """The cabin's allowlist: the emulated devices' addresses, as a technician would write them."""
        return DeviceAllowlist(addresses=tuple(self.radio.addresses))

    @property
    def adapter(self) -> str:
        """The emulated BlueZ adapter the cabin's manager uses (hci0)."""
        return self.radio.adapter

    async def trigger(self, kind: str) -> None:
        """Take the measurement the doctor asked for (unknown kinds are ignored)."""
        device = DEVICE_FOR_KIND.get(kind)
        if device is not None:
            self.radio.trigger(device)
