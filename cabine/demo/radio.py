"""The emulated radio: real bleak (BlueZ backend, unmodified) against BlueZ emulated by bluezoo, no controller.

`EmulatedRadio` starts a private `dbus-daemon`, runs bluezoo on it as the system bus's `org.bluez` (one adapter
for the gateway, `hci0`, and one per emulated device), points bleak at that bus through DBUS_SYSTEM_BUS_ADDRESS,
and serves each `EmulatedDevice` as a GATT application with an LE advertisement on its own adapter. Everything
between `DeviceManager` and the emulated device is the production path: bleak's BlueZ backend, D-Bus, the BlueZ
API (scan filters, Connect, StartNotify, PropertiesChanged, indication confirmations, link loss).

Needs the `dbus-daemon` program (Debian package `dbus-daemon` or `dbus`) and the `bluezoo` Python package.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from cabine.demo.emulated import EmulatedDevice, EmulatedKind, Measurement, make_devices
from cabine.demo.peripheral import EmulationError, GattPeripheral, call
from gateway.devices.manager import Backoff, DeviceManager
from gateway.errors import ConfigError
from gateway.lifecycle import AsyncResource

__all__ = ["ALL_KINDS", "CENTRAL_ADDRESS", "EmulatedRadio", "EmulationError", "emulated_devices"]

_logger = logging.getLogger(__name__)

CENTRAL_ADDRESS = "00:00:5E:00:53:01"
"""The gateway's own emulated adapter (hci0); an address from the documentation range."""

# The emulator is a separate program under bluezoo's licence, shipped beside this module as a file (never imported).
EMULATOR_SCRIPT = Path(__file__).resolve().parent / "emulator" / "bluezoo_emulator.py"
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0
_ENV = "DBUS_SYSTEM_BUS_ADDRESS"
ALL_KINDS: tuple[str, ...] = tuple(kind.value for kind in EmulatedKind)


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child between fork and exec: have the kernel send it SIGTERM when the demo dies, however it dies.

    The demo stops its children in order when it can (Ctrl-C, SIGTERM, SIGHUP); this covers the rest (SIGKILL,
    a crash), so that no dbus-daemon or emulator is left behind.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class EmulatedRadio(AsyncResource):
    """dbus-daemon + bluezoo + emulated peripherals; an async context manager, safe to close twice.

    While open, DBUS_SYSTEM_BUS_ADDRESS names the private bus, so bleak (and anything else using the system
    bus in this process) talks to the emulated BlueZ; the previous value is restored on close.
    """

    def __init__(
        self,
        devices: Sequence[EmulatedDevice],
        *,
        period: float | None = None,
        scan_interval: int = 1,
    ) -> None:
        """Prepare a radio for `devices`; `period` (seconds) makes every device measure on its own.

        Raises:
            ConfigError: no device, two devices with one address, or a period/scan interval <= 0.
        """
        if not devices:
            raise ConfigError("an emulated radio needs at least one device")
        addresses = [device.address for device in devices]
        if len(set(addresses)) != len(addresses) or CENTRAL_ADDRESS in addresses:
            raise ConfigError(f"emulated devices need distinct addresses, got {addresses}")
        if period is not None and period <= 0:
            raise ConfigError(f"period must be > 0 seconds, got {period}")
        if scan_interval < 1:
            raise ConfigError(f"bluezoo's scan interval is whole seconds >= 1, got {scan_interval}")
        self.devices: tuple[EmulatedDevice, ...] = tuple(devices)
        self._period = period
        self._scan_interval = scan_interval
        self._tmp: Path | None = None
        self._daemon: asyncio.subprocess.Process | None = None
        self._bluezoo: asyncio.subprocess.Process | None = None
        self._bus_address: str | None = None
        self._control: MessageBus | None = None
        self._peripherals: dict[str, GattPeripheral] = {}
        self._periodic: asyncio.Task[None] | None = None
        self._saved_env: str | None = None
        self._env_set = False
        self._started = False
        self._closed = False

    @classmethod
    def of_kinds(cls, kinds: Iterable[EmulatedKind | str] = ALL_KINDS, **options: Any) -> EmulatedRadio:
        """A radio with one device of each kind, at the default addresses.

        Raises:
            ConfigError: an unknown kind or a bad option.
        """
        return cls(make_devices(list(kinds)), **options)

    async def __aenter__(self) -> EmulatedRadio:
        await self.start()
        return self

    @property
    def bus_address(self) -> str:
        """The private bus's address (what DBUS_SYSTEM_BUS_ADDRESS is set to while the radio runs).

        Raises:
            EmulationError: the radio is not started.
        """
        if self._bus_address is None:
            raise EmulationError("the emulated radio is not started")
        return self._bus_address

    @property
    def adapter(self) -> str:
        """The BlueZ adapter the gateway must use (`DeviceManager(adapter=...)`)."""
        return "hci0"

    @property
    def addresses(self) -> tuple[str, ...]:
        """The emulated devices' Bluetooth addresses, in order."""
        return tuple(device.address for device in self.devices)

    def device(self, which: EmulatedKind | str) -> EmulatedDevice:
        """The emulated device with this address, or else the first one of this kind.

        Raises:
            ConfigError: no such device on this radio.
        """
        for device in self.devices:
            if device.address == which.upper():
                return device
        for device in self.devices:
            if device.kind == which:
                return device
        raise ConfigError(f"no emulated {which} on this radio (have: {', '.join(d.kind for d in self.devices)})")

    def device_manager(self, allowlist: Iterable[str] | None = None, **options: Any) -> DeviceManager:
        """A DeviceManager wired to this radio (adapter hci0), by default allowing every emulated device.

        Raises:
            ConfigError: a bad DeviceManager option.
        """
        options.setdefault("adapter", self.adapter)
        return DeviceManager(self.addresses if allowlist is None else allowlist, **options)

    async def start(self) -> None:
        """Start dbus-daemon and bluezoo, point bleak at them, register every emulated peripheral.

        Raises:
            EmulationError: dbus-daemon or bluezoo is missing or did not come up in time.
        """
        if self._started:
            return
        self._started = True
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                await self._start()
        except TimeoutError:
            await self.close()
            raise EmulationError(
                f"the emulated radio did not start within {_START_TIMEOUT} s{self._log_tail()}"
            ) from None
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        """The steps of `start`, in order."""
        daemon = shutil.which("dbus-daemon")
        if daemon is None:
            raise EmulationError("dbus-daemon is not installed (Debian package dbus-daemon)")
        if importlib.util.find_spec("bluezoo") is None:
            raise EmulationError("bluezoo is not installed (pip install bluezoo==1.0.2)")
        if not EMULATOR_SCRIPT.exists():
            raise EmulationError(f"the emulator program is missing: {EMULATOR_SCRIPT} (a broken installation)")
        self._tmp = Path(tempfile.mkdtemp(prefix="cabine-radio-"))
        # A session-type bus has the permissive policy the emulator needs (anyone may own org.bluez).
        self._daemon = await asyncio.create_subprocess_exec(
            daemon, "--session", "--nofork", "--nopidfile", "--nosyslog",
            f"--address=unix:path={self._tmp / 'bus'}", "--print-address=1",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal must reach the demo, which then stops this in order.
            start_new_session=True, preexec_fn=die_with_parent,
        )  # fmt: skip
        stdout = self._daemon.stdout
        if stdout is None:  # pragma: no cover - PIPE always gives a stream
            raise EmulationError("dbus-daemon gave no stdout")
        line = await stdout.readline()
        if not line:
            raise EmulationError("dbus-daemon exited at start")
        self._bus_address = line.decode().strip()
        self._saved_env = os.environ.get(_ENV)
        os.environ[_ENV] = self._bus_address
        self._env_set = True

        self._control = await MessageBus(bus_address=self._bus_address, bus_type=BusType.SYSTEM).connect()
        # bluezoo takes the name org.bluez first and adds its adapters after: wait for the last adapter object.
        changed = asyncio.Event()
        self._control.add_message_handler(
            lambda msg: changed.set() if msg.member in ("NameOwnerChanged", "InterfacesAdded") else None
        )
        await self._dbus_call("AddMatch", "s", ["type='signal',member='NameOwnerChanged',arg0='org.bluez'"])
        await self._dbus_call("AddMatch", "s", ["type='signal',sender='org.bluez',member='InterfacesAdded'"])

        adapters = [CENTRAL_ADDRESS, *self.addresses]
        with (self._tmp / "bluezoo.log").open("wb") as log:
            self._bluezoo = await asyncio.create_subprocess_exec(
                sys.executable, str(EMULATOR_SCRIPT),
                "--auto-enable", "--scan-interval", str(self._scan_interval),
                *(arg for address in adapters for arg in ("-a", address)),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                env={**os.environ, _ENV: self._bus_address},
                start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
        last_adapter = f"/org/bluez/hci{len(adapters) - 1}"
        exited = asyncio.ensure_future(self._bluezoo.wait())
        try:
            while True:
                changed.clear()
                if await self._adapter_present(last_adapter):
                    break
                waiter = asyncio.ensure_future(changed.wait())
                await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if exited.done():
                    raise EmulationError(f"bluezoo exited with status {exited.result()}{self._log_tail()}")
        finally:
            exited.cancel()

        for index, device in enumerate(self.devices, start=1):
            peripheral = GattPeripheral(device, bus_address=self._bus_address, adapter_path=f"/org/bluez/hci{index}")
            await peripheral.start()
            self._peripherals[device.address] = peripheral
        if self._period is not None:
            self._periodic = asyncio.create_task(self._measure_periodically(self._period), name="emulated-periodic")

    async def _adapter_present(self, path: str) -> bool:
        """Whether bluezoo runs and has exported the adapter at `path`."""
        if not (await self._dbus_call("NameHasOwner", "s", ["org.bluez"]))[0]:
            return False
        if self._control is None:  # pragma: no cover - set by _start before this is called
            raise EmulationError("the emulated radio is not started")
        reply = await self._control.call(
            Message(
                destination="org.bluez",
                path="/",
                interface="org.freedesktop.DBus.ObjectManager",
                member="GetManagedObjects",
            )
        )
        if reply is None or reply.message_type is MessageType.ERROR:
            return False
        return path in reply.body[0]

    async def _dbus_call(self, member: str, signature: str, body: list[Any]) -> list[Any]:
        """Call the bus daemon itself.

        Raises:
            EmulationError: the daemon answered with an error.
        """
        if self._control is None:
            raise EmulationError("the emulated radio is not started")
        reply = await self._control.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member=member,
                signature=signature,
                body=body,
            )
        )
        if reply is None or reply.message_type is MessageType.ERROR:
            raise EmulationError(f"D-Bus daemon call {member} failed: {None if reply is None else reply.body}")
        return list(reply.body)

    async def close(self) -> None:
        """Stop the peripherals, bluezoo and dbus-daemon, restore the environment; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._periodic is not None:
            self._periodic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._periodic
        for peripheral in self._peripherals.values():
            await peripheral.close()
        if self._control is not None:
            self._control.disconnect()
            # A bus that already went away (its daemon died) reports that here; closing goes on.
            with contextlib.suppress(EOFError, OSError):
                await self._control.wait_for_disconnect()  # type: ignore[no-untyped-call]  # dbus-fast: unannotated
        for process in (self._bluezoo, self._daemon):
            if process is not None:
                await _stop(process)
        if self._env_set:
            if self._saved_env is None:
                os.environ.pop(_ENV, None)
            else:
                os.environ[_ENV] = self._saved_env
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _log_tail(self) -> str:
        """The end of bluezoo's log, to explain a failed start."""
        if self._tmp is None:
            return ""
        try:
            text = (self._tmp / "bluezoo.log").read_text(errors="replace")
        except OSError:
            return ""
        return f"; bluezoo log ends with:\n{text[-2000:]}" if text else ""

    def _peripheral(self, kind: EmulatedKind | str) -> GattPeripheral:
        """The running peripheral of a device (by address or kind, as `device`).

        Raises:
            ConfigError: no such device.
            EmulationError: the radio is not started.
        """
        device = self.device(kind)
        peripheral = self._peripherals.get(device.address)
        if peripheral is None:
            raise EmulationError("the emulated radio is not started")
        return peripheral

    def kill_emulator(self) -> None:
        """Kill the BlueZ emulator at once (SIGKILL), as a crash would: for tests of a Bluetooth stack that dies.

        Raises:
            EmulationError: the radio is not started.
        """
        if self._bluezoo is None or self._bluezoo.returncode is not None:
            raise EmulationError("the emulated radio is not running")
        self._bluezoo.kill()

    def trigger(self, kind: EmulatedKind | str, *, continuous: bool = False) -> Measurement:
        """Have the device of `kind` take a measurement now; it is sent at once if a central listens.

        Raises:
            ConfigError: no device of that kind, or `continuous` on a non-oximeter.
            EmulationError: the radio is not started.
        """
        peripheral = self._peripheral(kind)
        measurement = peripheral.device.measure(continuous=continuous)
        if measurement.indicate:
            peripheral.wake()
        else:
            peripheral.push_now(measurement)
        return measurement

    def send_raw(self, which: EmulatedKind | str, payload: bytes, *, uuid16: int | None = None) -> Measurement:
        """Have a device send arbitrary bytes on a measurement characteristic (its first one by default).

        Raises:
            ConfigError: no such device or characteristic.
            EmulationError: the radio is not started.
        """
        peripheral = self._peripheral(which)
        measurement = peripheral.device.take_raw(payload, uuid16)
        if measurement.indicate:
            peripheral.wake()
        else:
            peripheral.push_now(measurement)
        return measurement

    def subscribed(self, which: EmulatedKind | str) -> bool:
        """Whether a central is subscribed to the device's measurements (by address or kind).

        Raises:
            ConfigError: no such device.
            EmulationError: the radio is not started.
        """
        return self._peripheral(which).subscribed

    def set_battery(self, kind: EmulatedKind | str, percent: int) -> None:
        """Change a device's battery level (notified to a subscribed central).

        Raises:
            ConfigError: no such device or not a percentage.
            EmulationError: the radio is not started.
        """
        if not 0 <= percent <= 100:
            raise ConfigError(f"battery must be a percentage (0..100), got {percent}")
        self._peripheral(kind).set_battery(percent)

    async def drop_link(self, kind: EmulatedKind | str) -> None:
        """Lose the radio link with the device of `kind` (BlueZ reports it disconnected; it stays in range).

        Raises:
            ConfigError: no such device.
            EmulationError: the radio is not started, or BlueZ refused.
        """
        device = self.device(kind)
        if self._control is None:
            raise EmulationError("the emulated radio is not started")
        path = f"/org/bluez/{self.adapter}/dev_{device.address.replace(':', '_')}"
        await call(self._control, path, "org.bluez.Device1", "Disconnect")

    async def switch_off(self, kind: EmulatedKind | str) -> None:
        """Switch the device off: its controller powers down, its link drops, and it answers no connection.

        Raises:
            ConfigError: no such device.
            EmulationError: the radio is not started, or BlueZ refused.
        """
        await self._power(kind, False)
        await self.drop_link(kind)

    async def switch_on(self, kind: EmulatedKind | str) -> None:
        """Switch the device on again: the gateway finds it and connects as to a device back in range."""
        await self._power(kind, True)

    async def _power(self, kind: EmulatedKind | str, on: bool) -> None:
        device = self.device(kind)
        if self._control is None:
            raise EmulationError("the emulated radio is not started")
        index = [d.address for d in self.devices].index(device.address) + 1
        await call(
            self._control,
            f"/org/bluez/hci{index}",
            "org.freedesktop.DBus.Properties",
            "Set",
            "ssv",
            ("org.bluez.Adapter1", "Powered", Variant("b", on)),
        )

    async def _measure_periodically(self, period: float) -> None:
        """Every `period` seconds, each device measures (the oximeter also streams a continuous sample)."""
        while True:
            await asyncio.sleep(period)
            for device in self.devices:
                self.trigger(device.kind)
                if device.kind is EmulatedKind.OXIMETER:
                    self.trigger(device.kind, continuous=True)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Terminate a child process and reap it (kill it if it does not stop in time)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(_STOP_TIMEOUT):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.stdout is not None:
        # Drain what is left so the pipe transport closes cleanly.
        await process.stdout.read()


@contextlib.asynccontextmanager
async def emulated_devices(
    kinds: Iterable[EmulatedKind | str] = ALL_KINDS,
    *,
    period: float | None = None,
    backoff: Backoff | None = None,
    cabin_id: str = "emulated",
) -> AsyncIterator[DeviceManager]:
    """A started DeviceManager connected, through real bleak, to emulated devices of `kinds`.

    With `period`, every device measures every `period` seconds; without it, only the blood-pressure monitor's
    stored readings arrive (use `EmulatedRadio` and `radio.trigger(kind)` for measurements on demand).

    Raises:
        ConfigError: an unknown kind or a bad option.
        EmulationError: the emulated radio could not start.
    """
    async with EmulatedRadio.of_kinds(kinds, period=period) as radio:
        options: dict[str, Any] = {"cabin_id": cabin_id}
        if backoff is not None:
            options["backoff"] = backoff
        async with radio.device_manager(**options) as manager:
            yield manager
