"""Debian's nginx, configured with deploy/nginx/cabine.conf, in front of a real `cabine serve --behind-proxy`.

nginx runs as our child with its own prefix, pid and logs on free loopback ports. The client connects from
127.0.0.2 (any 127/8 address is local), so the address signaling records tells the client (127.0.0.2) from the
proxy (127.0.0.1). Through the proxy: the REST API, a professional's and a cabin's WebSockets, the audit's
addresses; directly: a forged X-Forwarded-For is ignored.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.identity import CabinIdentity
from signaling.config import ServerConfig
from signaling.models import AuditAction
from signaling.sqlite_store import SQLiteStore
from signaling.tls import create_ca, create_server_certificate
from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "deploy" / "nginx" / "cabine.conf"
CLIENT = "127.0.0.2"  # the "remote" client; nginx and signaling listen on 127.0.0.1
FORGED = "203.0.113.9"


def nginx_binary() -> str:
    """Debian's nginx; with CI=true a missing nginx fails instead of skipping."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("nginx is required in CI (apt-get install nginx) but was not found")
    pytest.skip("nginx is not installed (apt-get install nginx)")


def adapt_sample(*, https_port: int, http_port: int, upstream_port: int, cert: Path, key: Path, log: Path) -> str:
    """The sample configuration with this test's ports, certificate and log; every replaced text must be there."""
    text = SAMPLE.read_text()
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "    listen [::]:80;\n": "",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "    listen [::]:443 ssl;\n": "",
        "/etc/letsencrypt/live/visio.example.org/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/visio.example.org/privkey.pem": str(key),
        "/var/log/nginx/cabine.access.log": str(log),
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream_port};",
    }
    for old, new in replacements.items():
        assert old in text, f"the sample no longer has {old!r}: update this test with it"
        text = text.replace(old, new)
    return text


def main_config(prefix: Path, site: Path) -> str:
    """A whole nginx.conf of our own (Debian's /etc/nginx is never read): foreground, files under `prefix`."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers would otherwise run as nobody
    temp = " ".join(
        f"{name}_temp_path {prefix / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 64; }}
http {{
    {temp}
    access_log off;
    include {site};
}}
"""


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Stack:
    https: str  # through nginx
    http: str  # nginx's redirect to HTTPS
    direct: str  # signaling itself, plain HTTP on loopback
    data: Path
    operator_key: str
    tls: ssl.SSLContext
    nginx_log: Path
    signaling_log: Path

    def session(self) -> aiohttp.ClientSession:
        """A client whose connections come from 127.0.0.2."""
        connector = aiohttp.TCPConnector(local_addr=(CLIENT, 0), ssl=self.tls, force_close=True)
        return aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {self.operator_key}"})


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    nginx = nginx_binary()
    https_port, http_port, signaling_port = free_port(), free_port(), free_port()
    ca_cert, ca_key = create_ca(tmp_path / "ca")
    cert, key = create_server_certificate(tmp_path / "ca", ("127.0.0.1",), ca_cert=ca_cert, ca_key=ca_key)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    site = prefix / "cabine.conf"
    site.write_text(
        adapt_sample(
            https_port=https_port,
            http_port=http_port,
            upstream_port=signaling_port,
            cert=cert,
            key=key,
            log=prefix / "access.log",
        )
    )
    (prefix / "nginx.conf").write_text(main_config(prefix, site))
    command = [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
    checked = await asyncio.create_subprocess_exec(
        *command, "-t", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await checked.communicate()
    assert checked.returncode == 0, output.decode()

    data = tmp_path / "data"
    signaling_log = tmp_path / "signaling.log"
    with signaling_log.open("wb") as log_file:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cabine", "serve", "--behind-proxy",
            "--port", str(signaling_port), "--public-url", f"https://127.0.0.1:{https_port}",
            "--trusted-proxy", "127.0.0.1", "--data-dir", str(data),
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=log_file,
        )  # fmt: skip
    proxy = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL)
    try:
        assert server.stdout is not None
        lines = []
        while not (lines and lines[-1].startswith("Operator API key:")):
            line = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
            assert line, f"cabine serve exited: {signaling_log.read_text()[-2000:]}"
            lines.append(line)
        assert lines[1] == f"Plain HTTP on http://127.0.0.1:{signaling_port} for the reverse proxy (127.0.0.1/32)\n"
        await wait_until(lambda: port_open(https_port), timeout=10, what="nginx listening")
        yield Stack(
            https=f"https://127.0.0.1:{https_port}",
            http=f"http://127.0.0.1:{http_port}",
            direct=f"http://127.0.0.1:{signaling_port}",
            data=data,
            operator_key=(data / "operator-key").read_text().strip(),
            tls=ssl.create_default_context(cafile=str(ca_cert)),
            nginx_log=prefix / "access.log",
            signaling_log=signaling_log,
        )
    finally:
        for process, stop in ((proxy, signal.SIGQUIT), (server, signal.SIGINT)):
            if process.returncode is None:
                process.send_signal(stop)
                await asyncio.wait_for(process.wait(), 20)
    assert server.returncode == 0
    assert "Traceback" not in signaling_log.read_text()


async def receive(ws: aiohttp.ClientWebSocketResponse, expected: str) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, ws.close_code)
        data: dict[str, Any] = json.loads(msg.data)
        if data["type"] == expected:
            return data


async def test_through_nginx_the_audit_records_the_client_and_a_forged_header_is_ignored(stack: Stack) -> None:
    identity = CabinIdentity.generate("mairie-pq")
    async with stack.session() as session:
        # The operator's REST API through the proxy: a cabin, enrolled, and an appointment open now.
        async with session.post(f"{stack.https}/api/v1/cabins", json={"id": "mairie-pq"}) as response:
            assert response.status == 201, await response.text()
            code = (await response.json())["enrollment_code"]
        public_key = base64.b64encode(identity.public_bytes()).decode()
        enrollment = {"cabin_id": "mairie-pq", "code": code, "public_key": public_key}
        async with session.post(f"{stack.https}/api/v1/enroll", json=enrollment) as response:
            assert response.status == 200, await response.text()
        booking = {
            "kind": "bank",
            "cabin_id": "mairie-pq",
            "starts_at": datetime.now(UTC).isoformat(),
            "duration_minutes": 30,
            "professional_name": "Mme Martin",
        }
        async with session.post(
            f"{stack.https}/api/v1/appointments", json=booking, headers={"X-Forwarded-For": FORGED}
        ) as response:
            assert response.status == 201, await response.text()
            appointment = await response.json()
        link: str = appointment["link"]
        assert link.startswith(f"{stack.https}/join/")
        token = link.rsplit("/", 1)[1]
        async with session.get(link) as response:
            assert response.status == 200
            assert "Rejoindre" in await response.text()

        # The professional's and the cabin's WebSockets through the proxy (upgrade, both directions).
        pro = await session.ws_connect(f"{stack.https}/ws/professional", headers={"X-Forwarded-For": FORGED})
        await pro.send_json({"type": "hello", "token": token})
        assert (await receive(pro, "welcome"))["appointment"]["id"] == appointment["id"]
        cabin = await session.ws_connect(f"{stack.https}/ws/cabin")
        await cabin.send_json({"type": "hello", "token": identity.proof(datetime.now(UTC))})
        welcome = await receive(cabin, "welcome")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", welcome["server_time"])
        await cabin.send_json({"type": "presence", "appointment_id": appointment["id"], "present": True})
        while not (await receive(pro, "room"))["citizen_present"]:
            pass
        await pro.send_json({"type": "admit", "appointment_id": appointment["id"]})
        assert (await receive(cabin, "peer-joined"))["role"] == "professional"
        assert (await receive(pro, "peer-joined"))["role"] == "cabin"
        await pro.close()
        await cabin.close()

        # Directly to signaling, not through the proxy: the forged header is ignored.
        direct = await session.ws_connect(f"{stack.direct}/ws/professional", headers={"X-Forwarded-For": FORGED})
        await direct.send_json({"type": "hello", "token": token})
        await receive(direct, "welcome")
        await direct.close()
        async with session.get(f"{stack.direct}/api/v1/cabins", headers={"X-Forwarded-For": FORGED}) as response:
            assert response.status == 200
        # Plain HTTP to nginx is sent to HTTPS.
        async with session.get(f"{stack.http}/operator/", allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (301, "https://127.0.0.1/operator/")

    with SQLiteStore.open(stack.data / "cabine.sqlite") as store:
        events = store.audit_log(limit=100)
    addresses = {(e.action, e.actor, e.address) for e in events}
    assert (AuditAction.CABIN_CREATED, "operator", CLIENT) in addresses
    assert (AuditAction.CABIN_ENROLLED, "cabin", CLIENT) in addresses
    assert (AuditAction.APPOINTMENT_CREATED, "operator", CLIENT) in addresses
    assert (AuditAction.CABIN_CONNECTED, "cabin", CLIENT) in addresses
    assert (AuditAction.ADMITTED, "professional", CLIENT) in addresses
    joined = [e for e in events if e.action is AuditAction.JOINED and e.actor == "professional"]
    assert [e.address for e in joined] == [CLIENT, CLIENT]  # the direct one, then the one through nginx
    assert all(e.address not in (FORGED, "127.0.0.1") for e in events)

    # Both access logs name the client, and neither holds the link's credential.
    nginx_log = stack.nginx_log.read_text()
    assert f"{CLIENT} [" in nginx_log and '"GET /join/<token>" 200' in nginx_log
    await wait_until(lambda: "/api/v1/cabins" in stack.signaling_log.read_text(), timeout=5, what="access log")
    signaling_log = stack.signaling_log.read_text()
    assert f'{CLIENT} "GET /join/<token>" 200' in signaling_log
    assert f'{CLIENT} "GET /api/v1/cabins" 200' in signaling_log
    for text in (nginx_log, signaling_log):
        assert token not in text and FORGED not in text


def test_websocket_timeouts_outlast_the_heartbeat() -> None:
    """nginx closes a proxied connection idle for proxy_read_timeout: it must outlast signaling's ping period."""
    config = SAMPLE.read_text()
    ws_block = config[config.index("location /ws/") :]
    timeouts = [int(t) for t in re.findall(r"proxy_(?:read|send)_timeout (\d+)s;", ws_block)]
    [heartbeat] = [f.default for f in dataclasses.fields(ServerConfig) if f.name == "heartbeat"]
    assert isinstance(heartbeat, float)
    assert len(timeouts) == 2 and all(t >= 4 * heartbeat for t in timeouts), (timeouts, heartbeat)
