"""The demo's medical devices: emulated peripherals behind real bleak code (BlueZ backend against bluezoo).

One object gives the gateway what a cabin's real devices give it: decoded readings, device states, and a way to
take a measurement when the doctor asks (here the emulated device measures; in a real cabin the citizen does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from cabine.demo.radio import EmulatedRadio
from gateway.devices.manager import DeviceManager, DeviceState
from gateway.devices.readings import Reading
from gateway.lifecycle import AsyncResource

# The reading kind a doctor asks for, and the emulated device that measures it.
DEVICE_FOR_KIND: Final = {
    "body-temperature": "thermometer",
    "blood-pressure": "blood-pressure",
    "oxygen-saturation": "oximeter",
    "body-weight": "scale",
}


class EmulatedBluetoothDevices(AsyncResource):
    """An async context manager: the emulated radio and a DeviceManager on it; close() is idempotent."""

    def __init__(self, cabin_id: str, *, period: float | None = 8.0) -> None:
        self._radio = EmulatedRadio.of_kinds(period=period)
        self._cabin_id = cabin_id
        self._manager: DeviceManager | None = None

    async def __aenter__(self) -> EmulatedBluetoothDevices:
        await self._radio.start()
        try:
            self._manager = self._radio.device_manager(cabin_id=self._cabin_id)
            await self._manager.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            await manager.close()
        await self._radio.close()

    @property
    def radio(self) -> EmulatedRadio:
        return self._radio

    def _started(self) -> DeviceManager:
        if self._manager is None:
            raise RuntimeError("the emulated devices are not started")
        return self._manager

    def readings(self) -> AsyncIterator[Reading]:
        return self._started().readings()

    def state_changes(self) -> AsyncIterator[DeviceState]:
        return self._started().state_changes()

    async def trigger(self, kind: str) -> None:
        """Take the measurement the doctor asked for (unknown kinds are ignored)."""
        device = DEVICE_FOR_KIND.get(kind)
        if device is not None:
            self._radio.trigger(device)
