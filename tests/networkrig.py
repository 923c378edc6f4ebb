"""A Cabine call across the network laboratory: signaling in "the internet", the cabin behind its 4G router's NAT,
the doctor's Chromium behind the hospital firewall, coturn between them.

Everything is the real program: `cabine gateway` as its own process in the cabin's namespace (with its Bluetooth
devices on bluezoo's emulated BlueZ, reached through a D-Bus socket file), the signaling app on a TLS port in core,
the doctor's page in Chromium inside the doctor's namespace. Used by tests/test_networks.py and bench/network.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.async_api import BrowserContext, Page, async_playwright

from cabine.demo.radio import EmulatedRadio
from gateway.identity import CabinIdentity
from signaling.app import RedactingAccessLogger, create_app
from signaling.config import ServerConfig
from signaling.links import professional_token
from signaling.models import Appointment, Cabin
from signaling.protocol import AppointmentKind, IcePolicy
from signaling.sqlite_store import SQLiteStore
from signaling.tls import ensure_development_certificate
from signaling.tokens import TokenSigner
from signaling.turn import TurnSettings
from tests.browser import CHROMIUM_FLAGS, wait_js
from tests.netlab import SIGNALING_IP, SIGNALING_PORT, Coturn, Lab, NetnsThread, NsProcess, Role, chromium_in

CABIN_ID = "cabin-netlab"
TURN_SECRET = "netlab-turn-secret-" + "x" * 8
# The doctor's page in Chromium: the call's live objects (see webclient/pro/pro.js, window.cabine).
PAIR_JS = """async () => {
  const pc = window.cabine.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) {
    stats.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
  }
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
  return {local: local.candidateType, protocol: local.protocol, relayProtocol: local.relayProtocol ?? null,
          remote: remote.candidateType, address: local.address};
}"""
READINGS_JS = "() => window.cabine.vitals.readings.map((r) => ({seq: r.seq, kind: r.kind, at: r.measured_at}))"


@dataclass
class Signaling:
    """The signaling app inside core, restartable on the same address and database."""

    core: NetnsThread
    config: ServerConfig
    tls: ssl.SSLContext
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def up() -> web.AppRunner:
            runner = web.AppRunner(
                create_app(self.config), access_log_class=RedactingAccessLogger, handle_signals=False
            )
            await runner.setup()
            await web.TCPSite(runner, SIGNALING_IP, SIGNALING_PORT, ssl_context=self.tls, reuse_address=True).start()
            return runner

        self.runner = await self.core.run(up())

    async def stop(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            await self.core.run(runner.cleanup())


@dataclass
class NetworkCall:
    """One medical appointment open now, its cabin and its doctor's link, on the laboratory."""

    lab: Lab
    turn: Coturn
    signaling: Signaling
    radio: EmulatedRadio
    store: SQLiteStore
    appointment: Appointment
    link: str
    workdir: Path
    cabin_config: Path
    gateway: NsProcess | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    async def start_gateway(self) -> NsProcess:
        """`cabine gateway` in the cabin's namespace; returns once it is connected to signaling."""
        self.starts += 1
        name = f"gateway-{self.starts}"
        self.gateway = await self.lab.spawn(
            Role.CABIN, [sys.executable, "-m", "cabine", "-v", "gateway", "--config", str(self.cabin_config)], name=name
        )
        self.logs.append(self.gateway.log_path)
        return self.gateway

    def gateway_log(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.logs if path.exists())

    async def kill_gateway(self) -> None:
        """kill -9, as a crash would."""
        if self.gateway is not None:
            await self.gateway.kill()


def _cabin_toml(
    path: Path,
    *,
    ca: Path,
    key: Path,
    runtime: Path,
    devices: tuple[str, ...],
    relay_only: bool,
    camera_size: tuple[int, int],
    stamp: bool,
) -> None:
    allow = ", ".join(f'"{a}"' for a in devices)
    path.write_text(
        f"""[signaling]
server = "https://{SIGNALING_IP}:{SIGNALING_PORT}"
ca_file = "{ca}"
key_file = "{key}"

[camera]
source = "test"
width = {camera_size[0]}
height = {camera_size[1]}
fps = 30
stamp = {"true" if stamp else "false"}

[microphone]
source = "test"

[devices]
allow = [{allow}]
adapter = "hci0"

[screen]
port = 0

[ice]
relay_only = {"true" if relay_only else "false"}

[calls]
auto_checkin = true
runtime_dir = "{runtime}"
"""
    )


@contextlib.asynccontextmanager
async def network_call(
    tmp_path: Path,
    *,
    doctor_firewall: bool = True,
    relay_only: bool = True,
    turn_secret: str = TURN_SECRET,
    server_secret: str | None = None,
    turn_urls: tuple[str, ...] | None = None,
    camera_size: tuple[int, int] = (320, 240),
    stamp: bool = False,
) -> AsyncIterator[NetworkCall]:
    """The laboratory with coturn, signaling (TURN credentials from `server_secret`, default the same as coturn's),
    an enrolled cabin with emulated Bluetooth devices, and a medical appointment open now. The gateway is not
    started: `await call.start_gateway()`."""
    workdir = tmp_path / "rig"
    workdir.mkdir(parents=True, exist_ok=True)
    async with (
        Lab(tmp_path / "lab", doctor_firewall=doctor_firewall) as lab,
        Coturn(lab.ns(Role.CORE), tmp_path / "turn", secret=turn_secret) as turn,
        lab.thread(Role.CORE) as core,
        EmulatedRadio.of_kinds(period=None) as radio,
    ):
        certs = ensure_development_certificate(workdir / "certs", ("localhost", SIGNALING_IP))
        store = SQLiteStore.open(workdir / "signaling.sqlite")
        try:
            identity = CabinIdentity.generate(CABIN_ID)
            key = workdir / "cabin.key"
            key.write_bytes(identity.private_file_bytes())
            key.chmod(0o600)
            now = datetime.now(UTC)
            store.add_cabin(Cabin(id=CABIN_ID, name="Netlab"))
            cabin = store.get_cabin(CABIN_ID)
            assert cabin is not None
            store.update_cabin(replace(cabin, public_key=identity.public_bytes(), enrolled_at=now))
            appointment = Appointment(
                "apt_" + secrets.token_hex(6), AppointmentKind.MEDICAL, CABIN_ID, now, timedelta(minutes=30), "Dr Net"
            )
            store.add_appointment(appointment)
            signer = TokenSigner.generate()
            # TURN over UDP first (what aiortc, which uses only the first TURN URL, takes: the cabin's 4G lets UDP
            # out); the doctor's browser tries them all and gets through its firewall over TCP 443.
            urls = turn_urls or (turn.urls()[0], turn.urls()[1])
            config = ServerConfig(
                signer=signer,
                store=store,
                public_url=f"https://{SIGNALING_IP}:{SIGNALING_PORT}",
                turn=TurnSettings(urls=urls, secret=server_secret or turn_secret),
                ice_policy=IcePolicy.RELAY if relay_only else IcePolicy.ALL,
                hello_timeout=5.0,
            )
            signaling = Signaling(core, config, certs.server_context())
            await signaling.start()
            config_file = workdir / "cabin.toml"
            _cabin_toml(
                config_file,
                ca=certs.ca_cert,
                key=key,
                runtime=workdir / "run",
                devices=radio.addresses,
                relay_only=relay_only,
                camera_size=camera_size,
                stamp=stamp,
            )
            link = f"https://{SIGNALING_IP}:{SIGNALING_PORT}/join/{professional_token(signer, appointment)}"
            call = NetworkCall(lab, turn, signaling, radio, store, appointment, link, workdir, config_file)
            try:
                yield call
            finally:
                if call.gateway is not None:
                    await call.gateway.terminate()
                await signaling.stop()
        finally:
            store.close()


@contextlib.asynccontextmanager
async def chromium_in_namespace(call: NetworkCall, role: Role, profile_dir: Path) -> AsyncIterator[BrowserContext]:
    """A headless Chromium inside `role`'s namespace, with a camera and a microphone (fake ones)."""
    # No loopback candidates in a namespace: the page gathers on its own interface.
    flags = [f for f in CHROMIUM_FLAGS if f != "--allow-loopback-in-peer-connection"]
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=str(chromium_in(call.lab.ns(role), profile_dir.parent)),
            headless=True,
            args=[*flags, "--ignore-certificate-errors"],
            ignore_https_errors=True,
            permissions=["camera", "microphone"],
        )
        try:
            yield context
        finally:
            await context.close()


@contextlib.asynccontextmanager
async def doctor_joined(call: NetworkCall, profile_dir: Path) -> AsyncIterator[Page]:
    """The doctor's Chromium inside the doctor's namespace, on the appointment's link, joined (the waiting room)."""
    async with chromium_in_namespace(call, Role.DOCTOR, profile_dir) as context:
        page = await context.new_page()
        await page.goto(call.link, timeout=20_000)
        await page.wait_for_function("() => !document.getElementById('join').disabled", timeout=20_000)
        await page.get_by_role("button", name="Rejoindre").click()
        yield page


async def admit(page: Page) -> None:
    """The doctor lets the citizen in, once the cabin says they are there; returns when the call is up."""
    await wait_js(page, "() => !document.getElementById('admit').disabled", timeout=30, what="the citizen")
    await page.get_by_role("button", name="Faire entrer").click()
    await page.wait_for_selector("body[data-state=inCall]", timeout=30_000)


async def wait_for(predicate: Any, *, timeout: float, what: str, every: float = 0.1) -> None:
    """Poll an async or plain predicate until true (the test fails with `what` after `timeout`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)
