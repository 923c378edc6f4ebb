"""`cabine demo`: a signaling server on HTTPS and one cabin gateway with synthetic sources, in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.cabin import CabinGateway, ReadingSource
from gateway.config import CabinConfig
from gateway.devices.direct import DirectThermometer
from gateway.identity import CabinIdentity
from gateway.media.sources import SourceSpec, VideoFormat
from signaling.config import ServerConfig, hash_api_key
from signaling.links import professional_link
from signaling.models import Appointment, Cabin
from signaling.protocol import AppointmentKind
from signaling.server import load_or_create_operator_key, load_or_create_signer, serve
from signaling.sqlite_store import SQLiteStore
from signaling.tls import CertificatePaths, ensure_development_certificate
from signaling.tokens import TokenSigner
from signaling.ws import HUB, Hub

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
    # The professional admits the citizen (False) or the call starts as soon as both are there (benchmarks).
    auto_admit: bool = False
    # No kiosk screen yet in the demo: the emulated citizen checks in as soon as the window opens.
    auto_checkin: bool = True


@dataclass(frozen=True, slots=True)
class RunningDemo:
    """What a running demo exposes to its caller (the CLI prints the link; tests drive the rest)."""

    doctor_link: str
    base_url: str
    certificates: CertificatePaths
    appointment: Appointment
    gateway: CabinGateway
    thermometer: DirectThermometer | None
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
        identity.save(key_path)
    cabin = store.get_cabin(DEMO_CABIN)
    if cabin is None:
        store.add_cabin(Cabin(id=DEMO_CABIN, name="Cabine de démonstration"))
        cabin = store.get_cabin(DEMO_CABIN)
    if cabin is not None and cabin.public_key != identity.public_bytes():
        store.update_cabin(replace(cabin, public_key=identity.public_bytes(), enrolled_at=now, disabled=False))
    return identity


@contextlib.asynccontextmanager
async def run_demo(options: DemoOptions, *, readings: ReadingSource | None = None) -> AsyncIterator[RunningDemo]:
    """Start signaling and one cabin; yields when both are up, stops both on exit."""
    names = tuple(dict.fromkeys(("localhost", "127.0.0.1", "::1", options.host)))
    data = options.data_dir
    certs = ensure_development_certificate(data / "certs", names)
    signer = load_or_create_signer(data / "signing-key.pem")
    operator_key = load_or_create_operator_key(data / "operator-key")
    now = datetime.now(UTC)
    client_host = _client_host(options.host)
    base_url = f"https://{client_host}:{options.port}"
    with SQLiteStore.open(data / "cabine.sqlite") as store:
        identity = ensure_demo_cabin(store, data / "cabin.key", now)
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
        async with serve(config, options.host, options.port, certs.server_context()) as runner:
            cabin = CabinConfig(
                cabin_id=DEMO_CABIN,
                signaling_url=f"wss://{client_host}:{options.port}",
                identity=identity,
                ca_file=certs.ca_cert,
                video=options.video,
                audio=options.audio,
                video_format=options.video_format,
                ice_addresses=options.ice_addresses,
                stamp_video=options.stamp_video,
                auto_checkin=options.auto_checkin,
            )
            thermometer = None
            if readings is None and options.appointment_kind is AppointmentKind.MEDICAL:
                thermometer = DirectThermometer(interval=options.reading_interval)
                readings = thermometer
            async with CabinGateway(cabin, readings=readings) as gateway:
                await asyncio.wait_for(gateway.connected.wait(), timeout=10)
                yield RunningDemo(
                    doctor_link=professional_link(signer, base_url, appointment),
                    base_url=base_url,
                    certificates=certs,
                    appointment=appointment,
                    gateway=gateway,
                    thermometer=thermometer,
                    signer=signer,
                    store=store,
                    operator_key=operator_key,
                    hub=runner.app[HUB],
                )


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
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with run_demo(options) as demo:
            elapsed = time.monotonic() - started
            print(
                f"Cabine demo ready in {elapsed:.2f} s: signaling on {demo.base_url}, cabin '{DEMO_CABIN}' connected."
            )
            print(f"Development CA (trust it, or accept the warning): {demo.certificates.ca_cert}")
            print(f"Doctor link: {demo.doctor_link}", flush=True)
            print("Press Ctrl-C to stop.", flush=True)
            await stop.wait()
            print("Stopping…", flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
