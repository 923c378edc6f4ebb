"""`cabine demo`: a signaling server on HTTPS and one cabin, built by the cabin's own root with emulated parts.

The cabin is `gateway.app.Cabin`, exactly as `cabine gateway` builds it on a cabin PC; the demo swaps in only what a
demonstration machine lacks: an emulated BlueZ with four emulated health devices (or payloads straight to the
decoders), a synthetic camera and microphone unless real ones are named, and a hook that makes an emulated device
measure when the doctor asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cabine.demo.bluetooth import EmulatedBluetooth
from cabine.demo.direct import DirectThermometer
from cabine.demo.paper import TrayPrinter, sane_test_scanner
from gateway.app import Cabin, ReadingSource, SelftestRunner
from gateway.cabin import CabinGateway, MeasurementHandler
from gateway.config import KNOWN_LANGUAGES, CabinConfig, DeviceAllowlist, ScreenSettings
from gateway.identity import CabinIdentity
from gateway.kiosk import KioskServer
from gateway.media.codecs import VideoCodec
from gateway.media.spec import SourceSpec, VideoFormat
from gateway.sound.settings import SoundSettings
from signaling.config import ServerConfig, hash_api_key
from signaling.hub import Hub
from signaling.keys import HUB
from signaling.links import professional_link
from signaling.models import Appointment
from signaling.models import Cabin as CabinRecord
from signaling.protocol import AppointmentKind
from signaling.server import Listener, load_or_create_operator_key, load_or_create_signer, serve
from signaling.sqlite_store import SQLiteStore
from signaling.tls import CertificatePaths, ensure_development_certificate, write_private
from signaling.tokens import TokenSigner

log = logging.getLogger("cabine.demo")

DEMO_CABIN = "demo-cabin"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8443
    data_dir: Path = Path(".cabine")
    video: SourceSpec = SourceSpec("test")
    audio: SourceSpec = SourceSpec("test")
    video_format: VideoFormat = VideoFormat()
    # None: every local address plus loopback (a browser elsewhere on the LAN can connect); else exactly these.
    ice_addresses: tuple[str, ...] | None = None
    reading_interval: float = 3.0
    appointment_kind: AppointmentKind = AppointmentKind.MEDICAL
    stamp_video: bool = False
    video_codec: VideoCodec | None = None
    # The professional admits the citizen (False) or the call starts as soon as both are there (benchmarks).
    auto_admit: bool = False
    # The cabin screen, on http://127.0.0.1:<kiosk_port>/ (None: no screen).
    kiosk_port: int | None = 8088
    # The citizen presses "start" on the cabin screen (False), or is taken as present as soon as the window opens
    # (True: tests and benchmarks that do not drive the screen).
    auto_checkin: bool = False
    # Medical devices: "bluetooth" (emulated peripherals read through bleak's real BlueZ code, against the
    # bluezoo emulator), "direct" (emulated payloads handed straight to the decoders), or "none".
    devices: str = "bluetooth"
    # With "bluetooth": every device measures on its own every this many seconds (None: only when asked).
    device_period: float | None = 10.0
    # The address professionals reach, used in the doctor link (default https://HOST:PORT).
    public_url: str | None = None
    languages: tuple[str, ...] = KNOWN_LANGUAGES
    # The cabin's self-test (at start-up and on request); None: none (tests that do not need it).
    selftest: SelftestRunner | None = None
    # The cabin's printer: a CUPS queue (CUPS_SERVER picks the scheduler); None: the test printer, or none.
    printer_queue: str | None = None
    # The cabin's scanner: a SANE device; None: SANE's test scanner, or none.
    scanner_device: str | None = None
    # Without a queue or a device: a test printer writing into DATA_DIR/printed, and SANE's test scanner (both said
    # so on the cabin screen); False: no printer, no scanner.
    test_paper: bool = True
    # Echo cancellation, noise suppression and gain control on the cabin's microphone.
    sound: SoundSettings = SoundSettings()


@dataclass(frozen=True, slots=True)
class RunningDemo:
    """What a running demo exposes to its caller (the CLI prints the link; tests drive the rest)."""

    doctor_link: str
    base_url: str
    certificates: CertificatePaths
    appointment: Appointment
    cabin: Cabin
    gateway: CabinGateway
    kiosk: KioskServer | None
    thermometer: DirectThermometer | None
    bluetooth: EmulatedBluetooth | None
    signer: TokenSigner
    store: SQLiteStore
    operator_key: str
    hub: Hub


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)


def ensure_demo_cabin(store: SQLiteStore, key_path: Path, now: datetime) -> CabinIdentity:
    """The demo's cabin, enrolled once: the same steps as `cabine cabin add` then `cabine cabin enroll`."""
    if key_path.exists():
        identity = CabinIdentity.load(key_path)
    else:
        identity = CabinIdentity.generate(DEMO_CABIN)
        write_private(key_path, identity.private_file_bytes())
    cabin = store.get_cabin(DEMO_CABIN)
    if cabin is None:
        store.add_cabin(CabinRecord(id=DEMO_CABIN, name="Cabine de démonstration"))
        cabin = store.get_cabin(DEMO_CABIN)
    if cabin is not None and cabin.public_key != identity.public_bytes():
        store.update_cabin(replace(cabin, public_key=identity.public_bytes(), enrolled_at=now, disabled=False))
    return identity


@contextlib.asynccontextmanager
async def run_demo(
    options: DemoOptions, *, readings: ReadingSource | None = None, trigger: MeasurementHandler | None = None
) -> AsyncIterator[RunningDemo]:
    """Start signaling, one cabin and its screen; yields when all are up, stops them on exit.

    Both ports are bound before anything is written or booked: a demo that cannot start changes nothing.
    `trigger` is awaited with the kind of measurement the professional asks for (emulated devices measure then).

    Raises:
        ListenError: a port cannot be bound (the message names it and says why).
    """
    with contextlib.ExitStack() as sockets:
        listener = sockets.enter_context(Listener.bind(options.host, options.port))
        screen_socket = None
        if options.kiosk_port is not None:
            screen_socket = sockets.enter_context(Listener.bind("127.0.0.1", options.kiosk_port)).sockets[0]
        async with _started(options, listener, screen_socket, readings, trigger) as demo:
            yield demo


@contextlib.asynccontextmanager
async def _started(
    options: DemoOptions,
    listener: Listener,
    screen_socket: socket.socket | None,
    readings: ReadingSource | None,
    trigger: MeasurementHandler | None,
) -> AsyncIterator[RunningDemo]:
    names = tuple(dict.fromkeys(("localhost", "127.0.0.1", "::1", options.host)))
    data = options.data_dir
    certs = ensure_development_certificate(data / "certs", names)
    signer = load_or_create_signer(data / "signing-key.pem")
    operator_key = load_or_create_operator_key(data / "operator-key")
    now = datetime.now(UTC)
    client_host = _client_host(options.host)
    base_url = options.public_url or f"https://{client_host}:{options.port}"
    with SQLiteStore.open(data / "cabine.sqlite") as store:
        identity = ensure_demo_cabin(store, data / "cabin.key", now)
        # One demo, one appointment: a previous run's, still open, would compete for the cabin screen's "start".
        for stale in store.list_appointments(cabin_id=DEMO_CABIN, since=now, include_cancelled=False):
            store.cancel_appointment(stale.id, now)
        appointment = Appointment(
            id=Appointment.new_id(),
            kind=options.appointment_kind,
            cabin_id=DEMO_CABIN,
            starts_at=now.replace(second=0, microsecond=0),
            duration=timedelta(hours=2),
            professional_name="Dr Demo",
            created_at=now,
        )
        store.add_appointment(appointment)
        config = ServerConfig(
            signer=signer,
            store=store,
            public_url=base_url,
            operator_key_hashes=(hash_api_key(operator_key),),
            auto_admit=options.auto_admit,
        )
        ice_addresses = options.ice_addresses
        if options.kiosk_port is not None and ice_addresses is not None and "127.0.0.1" not in ice_addresses:
            # The cabin screen's media goes over loopback: ICE must gather there too.
            ice_addresses = (*ice_addresses, "127.0.0.1")
        context = certs.server_context()
        async with (
            serve(config, options.host, options.port, context, listener=listener) as runner,
            contextlib.AsyncExitStack() as stack,
        ):
            thermometer: DirectThermometer | None = None
            bluetooth: EmulatedBluetooth | None = None
            devices = options.devices if options.appointment_kind is AppointmentKind.MEDICAL else "none"
            if readings is None and devices == "bluetooth":
                bluetooth = await _start_bluetooth(stack, options)
                if bluetooth is None:
                    devices = "direct"
                else:
                    trigger = trigger or bluetooth.trigger
            if readings is None and devices == "direct":
                thermometer = DirectThermometer(interval=options.reading_interval)
                readings = thermometer
            cabin_config = CabinConfig(
                cabin_id=DEMO_CABIN,
                signaling_url=f"wss://{client_host}:{options.port}",
                identity=identity,
                ca_file=certs.ca_cert,
                video=options.video,
                audio=options.audio,
                video_format=options.video_format,
                ice_addresses=ice_addresses,
                devices=bluetooth.allowlist if bluetooth is not None else DeviceAllowlist(),
                bluetooth_adapter=bluetooth.adapter if bluetooth is not None else None,
                stamp_video=options.stamp_video,
                video_codec=options.video_codec,
                auto_checkin=options.auto_checkin,
                printer_queue=options.printer_queue,
                scanner_device=options.scanner_device,
                sound=options.sound,
            )
            test_paper = options.test_paper
            printer = TrayPrinter(data / "printed") if test_paper and options.printer_queue is None else None
            scanner = sane_test_scanner(data / "sane.d") if test_paper and options.scanner_device is None else None
            cabin = await stack.enter_async_context(
                Cabin(
                    cabin_config,
                    screen=ScreenSettings(port=options.kiosk_port or 0, languages=options.languages),
                    readings=readings,
                    on_measurement_request=trigger,
                    selftest=options.selftest,
                    screen_socket=screen_socket,
                    printer=printer,
                    scanner=scanner,
                )
            )
            await asyncio.wait_for(cabin.gateway.connected.wait(), timeout=10)
            yield RunningDemo(
                doctor_link=professional_link(signer, base_url, appointment),
                base_url=base_url,
                certificates=certs,
                appointment=appointment,
                cabin=cabin,
                gateway=cabin.gateway,
                kiosk=cabin.kiosk,
                thermometer=thermometer,
                bluetooth=bluetooth,
                signer=signer,
                store=store,
                operator_key=operator_key,
                hub=runner.app[HUB],
            )


async def _start_bluetooth(stack: contextlib.AsyncExitStack, options: DemoOptions) -> EmulatedBluetooth | None:
    """The emulated Bluetooth devices, or None (with a clear message) where the machine cannot emulate them."""
    from cabine.demo.radio import EmulationError

    try:
        return await stack.enter_async_context(EmulatedBluetooth(period=options.device_period))
    except EmulationError as exc:
        log.warning("Bluetooth emulation unavailable (%s): using emulated payloads without the radio path", exc)
        print(f"Note: Bluetooth emulation unavailable ({exc}); devices are emulated without bleak.", flush=True)
        return None


def _process_age() -> float | None:
    """Seconds since this process started (Linux), so start-up time includes Python's own imports."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def serve_demo(options: DemoOptions) -> int:
    """Run the demo until Ctrl-C or SIGTERM; returns the process exit code."""
    started = time.monotonic() - (_process_age() or 0.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Closing the terminal (SIGHUP) stops the demo like Ctrl-C: its children are stopped in order.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with run_demo(options) as demo:
            elapsed = time.monotonic() - started
            print(
                f"Cabine demo ready in {elapsed:.2f} s: signaling on {demo.base_url}, cabin '{DEMO_CABIN}' connected."
            )
            print(f"Development CA (trust it, or accept the warning): {demo.certificates.ca_cert}")
            if demo.kiosk is not None:
                print(f"Cabin screen: {demo.kiosk.url}")
            print(f"Operator page: {demo.base_url}/operator/ (API key in {options.data_dir / 'operator-key'})")
            print(f"Doctor link: {demo.doctor_link}", flush=True)
            print("Press Ctrl-C to stop.", flush=True)
            await stop.wait()
            print("Stopping…", flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return 0
