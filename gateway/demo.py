"""`cabine demo`: a signaling server on HTTPS and one cabin gateway with synthetic sources, in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from gateway.cabin import CabinGateway, ReadingSource
from gateway.config import CabinConfig
from gateway.devices.direct import DirectThermometer
from gateway.media.sources import SourceSpec, VideoFormat
from signaling.app import RedactingAccessLogger, create_app
from signaling.appointments import Appointment, MemoryAppointmentStore
from signaling.config import ServerConfig
from signaling.protocol import AppointmentKind, IceServer, Role
from signaling.tls import CertificatePaths, ensure_development_certificate
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
    store: MemoryAppointmentStore


def load_or_create_signer(path: Path) -> TokenSigner:
    """The server's link-signing key, created on first run (mode 0600, git-ignored)."""
    if path.exists():
        return TokenSigner.from_pem(path.read_bytes())
    signer = TokenSigner.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(signer.private_pem())
    return signer


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)


@contextlib.asynccontextmanager
async def run_demo(options: DemoOptions, *, readings: ReadingSource | None = None) -> AsyncIterator[RunningDemo]:
    """Start signaling and one cabin; yields when both are up, stops both on exit."""
    names = tuple(dict.fromkeys(("localhost", "127.0.0.1", "::1", options.host)))
    certs = ensure_development_certificate(options.data_dir / "certs", names)
    signer = load_or_create_signer(options.data_dir / "signing-key.pem")
    store = MemoryAppointmentStore()
    now = datetime.now(UTC)
    appointment = Appointment(
        id=Appointment.new_id(),
        kind=options.appointment_kind,
        cabin_id=DEMO_CABIN,
        starts_at=now.replace(second=0, microsecond=0),
        duration=timedelta(hours=2),
        professional_name="Dr Demo",
    )
    store.add(appointment)
    config = ServerConfig(signer=signer, store=store, ice_servers=tuple[IceServer, ...]())
    app = create_app(config)
    runner = web.AppRunner(app, access_log_class=RedactingAccessLogger, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, options.host, options.port, ssl_context=certs.server_context())
        await site.start()
        client_host = _client_host(options.host)
        base_url = f"https://{client_host}:{options.port}"
        cabin_token = signer.issue(DEMO_CABIN, Role.CABIN, not_before=now, expires_at=now + timedelta(days=1))
        doctor_token = signer.issue(
            appointment.id, Role.PROFESSIONAL, not_before=appointment.opens_at, expires_at=appointment.ends_at
        )
        cabin = CabinConfig(
            cabin_id=DEMO_CABIN,
            signaling_url=f"wss://{client_host}:{options.port}",
            token=cabin_token,
            ca_file=certs.ca_cert,
            video=options.video,
            audio=options.audio,
            video_format=options.video_format,
            ice_addresses=options.ice_addresses,
            stamp_video=options.stamp_video,
        )
        thermometer = None
        if readings is None and options.appointment_kind is AppointmentKind.MEDICAL:
            thermometer = DirectThermometer(interval=options.reading_interval)
            readings = thermometer
        async with CabinGateway(cabin, readings=readings) as gateway:
            await asyncio.wait_for(gateway.connected.wait(), timeout=10)
            yield RunningDemo(
                doctor_link=f"{base_url}/join/{doctor_token}",
                base_url=base_url,
                certificates=certs,
                appointment=appointment,
                gateway=gateway,
                thermometer=thermometer,
                signer=signer,
                store=store,
            )
    finally:
        await runner.cleanup()


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
