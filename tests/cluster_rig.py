"""Three signaling nodes for real, in a call: `cabine serve --redis` processes on one PostgreSQL and one Redis,
behind Debian's HAProxy configured with deploy/haproxy/cabine.cfg, a real gateway, and the doctor's page in headless
Chromium, joined and admitted. Shared by tests/test_cluster_failover.py and bench/cluster_failover.py.

Every process dies with the test: the nodes are stopped on exit (SIGINT, and none may have printed a traceback),
HAProxy runs under `setpriv --pdeathsig KILL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from gateway.app import Cabin
from gateway.cabin import CabinGateway
from gateway.config import CabinConfig
from gateway.ice import LOOPBACK
from gateway.identity import CabinIdentity
from gateway.media.spec import SourceSpec
from signaling.links import professional_token
from signaling.models import Appointment
from signaling.models import Cabin as CabinRow
from signaling.postgres_store import PostgresStore
from signaling.protocol import AppointmentKind
from signaling.tls import ensure_development_certificate, write_private
from signaling.tokens import TokenSigner
from tests.browser import FRAMES_JS, chromium, wait_js
from tests.conftest import free_port, unavailable

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "deploy" / "haproxy" / "cabine.cfg"
# The page's room state, once a room node sent one (empty it to wait for the next room node's word).
BACK_IN_THE_ROOM_JS = (
    "() => { const r = window.cabine.room;"
    " return Boolean(r && r.cabin_online && r.admitted && r.professional_present); }"
)


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        unavailable("haproxy is not installed (Debian package haproxy; .ci/run installs it)")
    assert found is not None
    return found


def adapt_sample(*, front: int, nodes: list[int], pem: Path) -> str:
    """deploy/haproxy/cabine.cfg with these ports and certificate; every replaced text must be there."""
    text = SAMPLE.read_text()
    replacements = {
        "bind :443 ": f"bind 127.0.0.1:{front} ",
        "/etc/haproxy/certs/cabine.pem": str(pem),
        **{f"127.0.0.1:{8081 + i}": f"127.0.0.1:{port}" for i, port in enumerate(nodes)},
    }
    for old, new in replacements.items():
        assert old in text, f"{SAMPLE} no longer has {old!r}"
        text = text.replace(old, new)
    return text


def read(log: Path) -> str:
    return log.read_text(errors="replace")


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


async def until(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.05) -> float:
    """Poll a plain or async predicate; the seconds it took (fails with `what` after `timeout`)."""
    started = time.monotonic()
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)


@dataclass
class Node:
    port: int
    proc: asyncio.subprocess.Process
    log: Path

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        """GET a probe on the node itself (not through HAProxy): (status, JSON), (0, {}) if it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except OSError:
            return 0, {}


@asynccontextmanager
async def node(port: int, *, front: int, data: Path, db: str, redis: str, log: Path) -> AsyncIterator[Node]:
    """`cabine serve` as one node of the cluster, up once it prints its operator key line."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cabine", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--behind-proxy", "--trusted-proxy", "127.0.0.1", "--public-url", f"https://127.0.0.1:{front}",
            "--data-dir", str(data), "--db", db, "--redis", redis,
            stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        await until(
            lambda: "Operator API key:" in read(log) or proc.returncode is not None, timeout=30, what=f"node {port}"
        )
        assert proc.returncode is None, f"node on {port} did not start: {read(log)[-2000:]}"
        yield Node(port, proc, log)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.wait(), timeout=20)
        assert "Traceback" not in read(log), read(log)[-3000:]


@asynccontextmanager
async def haproxy(config: Path, port: int, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """HAProxy in the foreground on `config` (checked first), up once it accepts connections on `port`."""
    pdeath = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
    check = await asyncio.create_subprocess_exec(
        haproxy_binary(), "-c", "-f", str(config), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    said, _ = await check.communicate()
    assert check.returncode == 0, said.decode()
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *pdeath, haproxy_binary(), "-db", "-f", str(config), stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    try:
        await until(lambda: accepts(port) or proc.returncode is not None, timeout=15, what="HAProxy to listen")
        assert proc.returncode is None, read(log)[-2000:]
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), timeout=10)


def seed(db: str, cabin_id: str, appointment_id: str, duration: timedelta) -> tuple[CabinIdentity, Appointment]:
    """An enrolled cabin and a medical appointment for it, open now, in the database at `db`."""
    identity = CabinIdentity.generate(cabin_id)
    now = datetime.now(UTC)
    with PostgresStore.open(db) as store:
        store.add_cabin(CabinRow(id=cabin_id, name=cabin_id))
        row = store.get_cabin(cabin_id)
        assert row is not None
        store.update_cabin(replace(row, public_key=identity.public_bytes(), enrolled_at=now))
        appointment = Appointment(appointment_id, AppointmentKind.MEDICAL, cabin_id, now, duration, "Dr A")
        store.add_appointment(appointment)
    return identity, appointment


def room_nodes(nodes: list[Node]) -> list[Node]:
    """The running nodes that say they run the rooms (one, once the cluster settled)."""
    return [n for n in nodes if n.proc.returncode is None and n.get("/room-node")[0] == 200]


async def all_ready(nodes: list[Node]) -> None:
    await until(lambda: all(n.get("/readyz")[0] == 200 for n in nodes), timeout=30, what="every node ready")


@dataclass
class ClusterCall:
    """The three nodes, the cabin's gateway and the doctor's page, in a call."""

    nodes: list[Node]
    gateway: CabinGateway
    page: Page
    restart: Callable[[Node], Any] = field(repr=False)

    def room_nodes(self) -> list[Node]:
        return room_nodes(self.nodes)

    async def frames(self) -> int:
        return int(await self.page.evaluate(FRAMES_JS))

    async def video_flows(self, *, more: int = 30, what: str) -> None:
        before = await self.frames()

        async def grew() -> bool:
            return await self.frames() > before + more

        await until(grew, timeout=20, what=what)

    async def kill_room_node(self) -> tuple[Node, float]:
        """SIGKILL the room node, as a crash would (no goodbye to anyone); (it, monotonic time of the kill). The page's
        room state is emptied first: whatever it shows next comes from the node that takes over."""
        [victim] = self.room_nodes()
        await self.page.evaluate("window.cabine.room = null")
        victim.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await victim.proc.wait()
        return victim, killed

    async def all_ready(self) -> None:
        await all_ready(self.nodes)


@asynccontextmanager
async def cluster_call(work: Path, db: str, redis: str) -> AsyncIterator[ClusterCall]:
    """Three nodes behind HAProxy (TLS there), a cabin and the doctor's page, the citizen admitted, video flowing."""
    front, ports = free_port(), [free_port() for _ in range(3)]
    data = work / "data"
    certs = ensure_development_certificate(work / "certs", ("127.0.0.1", "localhost"))
    pem = work / "haproxy.pem"
    write_private(pem, certs.cert.read_bytes() + certs.key.read_bytes())
    config = work / "haproxy.cfg"
    config.write_text(adapt_sample(front=front, nodes=ports, pem=pem))
    signer = TokenSigner.generate()
    write_private(data / "signing-key.pem", signer.private_pem())  # the key every node shares
    identity, appointment = seed(db, "cabin-1", "apt_cluster", timedelta(hours=3))

    async with contextlib.AsyncExitStack() as stack:

        async def start(i: int) -> Node:
            return await stack.enter_async_context(
                node(ports[i], front=front, data=data, db=db, redis=redis, log=work / f"node{i}-{time.time_ns()}.log")
            )

        nodes = [await start(i) for i in range(3)]

        async def restart(gone: Node) -> None:
            i = nodes.index(gone)
            nodes[i] = await start(i)

        await stack.enter_async_context(haproxy(config, front, work / "haproxy.log"))
        await until(lambda: len(room_nodes(nodes)) == 1, timeout=20, what="one node to run the rooms")
        await all_ready(nodes)
        cabin_config = CabinConfig(
            cabin_id="cabin-1",
            signaling_url=f"wss://127.0.0.1:{front}",
            identity=identity,
            ca_file=certs.ca_cert,
            video=SourceSpec("test"),
            audio=SourceSpec("test"),
            ice_addresses=LOOPBACK,
            auto_checkin=True,
            reconnect_max_delay=2.0,
        )
        cabin = await stack.enter_async_context(Cabin(cabin_config))
        browser = await stack.enter_async_context(chromium(work / "profile"))
        page = await browser.new_page()
        await page.goto(f"https://127.0.0.1:{front}/join/{professional_token(signer, appointment)}")
        await page.get_by_role("button", name="Rejoindre").click()
        await wait_js(page, "() => !document.getElementById('admit').disabled", timeout=30, what="the citizen")
        await page.get_by_role("button", name="Faire entrer").click()
        await page.wait_for_selector("body[data-state=inCall]", timeout=30_000)
        rig = ClusterCall(nodes, cabin.gateway, page, restart)
        await rig.video_flows(what="video in the call")
        yield rig
