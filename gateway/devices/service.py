"""The cabin's medical devices for as long as the cabin runs: the bleak device manager, supervised.

The manager is started with the cabin's allowlist; its readings and device states go to the cabin. If it cannot
start (no adapter, BlueZ gone) or fails, the operator is told (an incident) and it is started again, with backoff,
for ever: a cabin whose Bluetooth dongle was unplugged for an hour gets its devices back when it is plugged in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Final, Protocol, TypeVar

from gateway.backoff import Backoff
from gateway.config import DeviceAllowlist
from gateway.devices.manager import DeviceManager, DeviceState
from gateway.devices.readings import Reading
from gateway.lifecycle import AsyncResource, cancel_and_wait

log = logging.getLogger("cabine.gateway.devices")

T = TypeVar("T")
RESTART: Final = Backoff(initial=2.0, factor=2.0, maximum=60.0, jitter=0.2)


class DeviceSink(Protocol):
    """Where readings and device states go (the cabin)."""

    def deliver_reading(self, reading: Reading) -> None: ...
    def device_state(self, state: DeviceState) -> None: ...


class DeviceService(AsyncResource):
    """Runs a DeviceManager for `allowlist` and restarts it when it fails; an async context manager.

    `on_health(available, reason)` is told when Bluetooth becomes unusable and when it works again.
    """

    def __init__(
        self,
        allowlist: DeviceAllowlist,
        sink: DeviceSink,
        *,
        adapter: str | None = None,
        cabin_id: str = "-",
        on_health: Callable[[bool, str], None] | None = None,
        manager_factory: Callable[[], DeviceManager] | None = None,
    ) -> None:
        self._allowlist = allowlist
        self._sink = sink
        self._adapter = adapter
        self._cabin = cabin_id
        self._on_health = on_health
        self._factory = manager_factory or self._default_manager
        self.manager: DeviceManager | None = None
        self.restarts = 0
        self.available: bool | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def _default_manager(self) -> DeviceManager:
        return DeviceManager(
            self._allowlist.addresses,
            services=self._allowlist.service_uuids,
            adapter=self._adapter,
            cabin_id=self._cabin,
        )

    @property
    def allowlist(self) -> DeviceAllowlist:
        return self._allowlist

    async def set_allowlist(self, allowlist: DeviceAllowlist) -> None:
        """Follow these devices from now on (a configuration from afar): the manager starts again with them."""
        if allowlist == self._allowlist:
            return
        self._allowlist = allowlist
        if self._task is not None and not self._closed:
            await cancel_and_wait([self._task])
            self._task = asyncio.create_task(self._supervise(), name="cabin-devices")

    def states(self) -> Mapping[str, DeviceState]:
        """Every followed device's state (empty while Bluetooth is down)."""
        manager = self.manager
        return {} if manager is None else manager.states()

    async def __aenter__(self) -> DeviceService:
        self._task = asyncio.create_task(self._supervise(), name="cabin-devices")
        return self

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def _supervise(self) -> None:
        failures = 0
        while True:
            manager = self._factory()
            try:
                await manager.start()
                self.manager = manager
                self._health(True, "")
                failures = 0
                await self._pump(manager)
                reason = "the device manager stopped"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # bleak's BleakError, D-Bus errors, OSError...: all mean "no Bluetooth now"
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                log.warning("[cabin %s] Bluetooth unavailable (%s)", self._cabin, reason)
            finally:
                self.manager = None
                try:
                    await manager.close()
                except Exception:
                    log.exception("[cabin %s] closing the device manager failed", self._cabin)
            self._health(False, reason)
            delay = RESTART.jittered(failures)
            failures += 1
            self.restarts += 1
            log.info("[cabin %s] starting the Bluetooth device manager again in %.0f s", self._cabin, delay)
            await asyncio.sleep(delay)

    async def _pump(self, manager: DeviceManager) -> None:
        """Hand readings and states to the cabin until the manager's iterators end."""

        async def readings() -> None:
            async for reading in manager.readings():
                self._safely(self._sink.deliver_reading, reading)

        async def states() -> None:
            async for state in manager.state_changes():
                self._safely(self._sink.device_state, state)

        tasks = [asyncio.create_task(readings()), asyncio.create_task(states())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(tasks)
        for task in tasks:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    def _safely(self, deliver: Callable[[T], None], value: T) -> None:
        # One reading that the cabin cannot take must not stop the next ones.
        try:
            deliver(value)
        except Exception:
            log.exception("[cabin %s] delivering a device event failed", self._cabin)

    def _health(self, available: bool, reason: str) -> None:
        if self.available is available:
            return
        self.available = available
        if self._on_health is not None:
            self._on_health(available, reason)
