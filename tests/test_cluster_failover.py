"""Three signaling nodes for real: `cabine serve --redis` processes on one PostgreSQL and one Redis, behind Debian's
HAProxy configured with deploy/haproxy/cabine.cfg, a real gateway and the doctor's page in headless Chromium.

The node that runs the rooms is killed with SIGKILL in the middle of a call: the page and the gateway reconnect
through HAProxy to the nodes left, the call's media never stop (the same peer connection all along), the citizen
stays admitted, and another node runs the rooms. The REST API follows the room node.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.app import Cabin
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
from tests.postgres import PrivatePostgres
from tests.redis_server import PrivateRedis

pytestmark = pytest.mark.timeout(150)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "deploy" / "haproxy" / "cabine.cfg"


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        unavailable("haproxy is not installed (Debian package haproxy; .ci/run installs it)")
    assert found is not None
    return found


def adapt_sample(*, front: int, nodes: list[int], pem: Path) -> str:
    """deploy/haproxy/cabine.cfg with this test's ports and certificate; every replaced text must be there."""
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


@dataclass
class Node:
    port: int
    proc: asyncio.subprocess.Process
    log: Path

    def get(self, path: str) -> tuple[int, dict[str, object]]:
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
            stdout=out, stderr=subprocess_stdout(),
        )  # fmt: skip
    running = Node(port, proc, log)
    try:
        deadline = time.monotonic() + 30
        while "Operator API key:" not in read(log):
            if proc.returncode is not None or time.monotonic() > deadline:
                pytest.fail(f"node on {port} did not start: {read(log)[-2000:]}")
            await asyncio.sleep(0.05)
        yield running
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.wait(), timeout=20)
        assert "Traceback" not in read(log), read(log)[-3000:]


def read(log: Path) -> str:
    return log.read_text(errors="replace")


def subprocess_stdout() -> int:
    return asyncio.subprocess.STDOUT


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@asynccontextmanager
async def haproxy(config: Path, port: int, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
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


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as server:
        yield server


async def until(predicate: object, *, timeout: float, what: str, every: float = 0.05) -> float:
    """Poll a plain or async predicate; the seconds it took (the test fails with `what` after `timeout`)."""
    started = time.monotonic()
    while True:
        value = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)


async def test_the_room_node_killed_mid_call(tmp_path: Path, postgres: PrivatePostgres) -> None:
    front, ports = free_port(), [free_port() for _ in range(3)]
    data = tmp_path / "data"
    certs = ensure_development_certificate(tmp_path / "certs", ("127.0.0.1", "localhost"))
    pem = tmp_path / "haproxy.pem"
    write_private(pem, certs.cert.read_bytes() + certs.key.read_bytes())
    config = tmp_path / "haproxy.cfg"
    config.write_text(adapt_sample(front=front, nodes=ports, pem=pem))

    # The shared database: a cabin and an appointment open now; the nodes' shared signing key.
    db = postgres.database()
    signer = TokenSigner.generate()
    write_private(data / "signing-key.pem", signer.private_pem())
    identity = CabinIdentity.generate("cabin-1")
    store = PostgresStore.open(db)
    now = datetime.now(UTC)
    store.add_cabin(CabinRow(id="cabin-1", name="Mairie"))
    row = store.get_cabin("cabin-1")
    assert row is not None
    store.update_cabin(replace(row, public_key=identity.public_bytes(), enrolled_at=now))
    appointment = Appointment("apt_cluster", AppointmentKind.MEDICAL, "cabin-1", now, timedelta(minutes=30), "Dr A")
    store.add_appointment(appointment)
    store.close()

    with PrivateRedis() as redis:
        async with (
            node(ports[0], front=front, data=data, db=db, redis=redis.url, log=tmp_path / "node1.log") as n1,
            node(ports[1], front=front, data=data, db=db, redis=redis.url, log=tmp_path / "node2.log") as n2,
            node(ports[2], front=front, data=data, db=db, redis=redis.url, log=tmp_path / "node3.log") as n3,
            haproxy(config, front, tmp_path / "haproxy.log"),
        ):
            nodes = [n1, n2, n3]

            def room_nodes() -> list[Node]:
                return [n for n in nodes if n.proc.returncode is None and n.get("/room-node")[0] == 200]

            await until(lambda: len(room_nodes()) == 1, timeout=20, what="one node to run the rooms")
            await until(lambda: all(n.get("/readyz")[0] == 200 for n in nodes), timeout=20, what="every node ready")
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
            async with Cabin(cabin_config) as cabin, chromium(tmp_path / "profile") as browser:
                page = await browser.new_page()
                await page.goto(f"https://127.0.0.1:{front}/join/{professional_token(signer, appointment)}")
                await page.get_by_role("button", name="Rejoindre").click()
                await wait_js(page, "() => !document.getElementById('admit').disabled", timeout=30, what="citizen")
                await page.get_by_role("button", name="Faire entrer").click()
                await page.wait_for_selector("body[data-state=inCall]", timeout=30_000)

                async def frames() -> int:
                    return int(await page.evaluate(FRAMES_JS))

                before = await frames()
                await until(lambda: frames_above(frames, before + 30), timeout=20, what="video in the call")
                await page.evaluate("window.cabine.pc.__first = true")
                gateway = cabin.gateway
                session = gateway.sessions["apt_cluster"]

                # Kill the room node, as a crash would: no goodbye to anyone.
                [victim] = room_nodes()
                victim.proc.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                await victim.proc.wait()
                survivors = [n for n in nodes if n is not victim]

                # The media go on while signaling changes hands (peer to peer, loopback).
                before = await frames()
                await until(lambda: frames_above(frames, before + 30), timeout=20, what="video during failover")
                elected = await until(lambda: len(room_nodes()) == 1, timeout=30, what="another room node")
                # Both ends are back on signaling, in the same room: the page sees the cabin online again.
                await until(lambda: gateway.connected.is_set(), timeout=30, what="the cabin back on signaling")
                await wait_js(
                    page,
                    "() => window.cabine.room && window.cabine.room.cabin_online && window.cabine.room.admitted"
                    " && window.cabine.room.professional_present",
                    timeout=30,
                    what="the page back in the room",
                )
                found = time.monotonic() - killed
                before = await frames()
                await until(lambda: frames_above(frames, before + 30), timeout=20, what="video after failover")
                assert await page.evaluate("window.cabine.pc.__first") is True, "the same peer connection all along"
                assert gateway.sessions.get("apt_cluster") is session, "the gateway kept its call"
                assert await page.locator("body").get_attribute("data-state") == "inCall"
                assert await page.locator("#admit").is_hidden(), "the citizen stayed admitted"
                # The API through HAProxy reaches the new room node.
                status, body = room_nodes()[0].get("/room-node")
                assert status == 200 and body["room_node"]
                assert all(n.proc.returncode is None for n in survivors)
                print(
                    f"room node killed: another elected after {elected:.1f} s; "
                    f"page and cabin back in the room after {found:.1f} s"
                )


async def frames_above(frames: object, threshold: int) -> bool:
    return int(await frames()) > threshold  # type: ignore[operator]
