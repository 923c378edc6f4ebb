"""`cabine serve` checks every option before it changes anything, and takes its address before making files.

Real `python -m cabine serve` processes; each refusal must leave the data directory as it was: absent.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from signaling.tls import create_ca, create_server_certificate
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


async def serve(*args: str, cwd: Path) -> Result:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cabine", "serve", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


@pytest.fixture
def certificates(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """(CA, certificate, its key, another key)."""
    ca_cert, ca_key = create_ca(tmp_path / "ca")
    cert, key = create_server_certificate(tmp_path / "ca", ("127.0.0.1",), ca_cert=ca_cert, ca_key=ca_key)
    return ca_cert, cert, key, ca_key


async def test_a_port_in_use_changes_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await serve("--port", str(port), "--data-dir", "data", cwd=tmp_path)
    assert (result.code, result.out) == (1, "")
    assert result.err == f"cabine serve: error: cannot listen on 127.0.0.1:{port}: address already in use\n"
    assert not (tmp_path / "data").exists()


BAD_OPTIONS = [
    (["--port", "99999"], "argument --port: a port is from 1 to 65535, got 99999"),
    (["--port", "0"], "argument --port: a port is from 1 to 65535, got 0"),
    (["--port", "https"], "argument --port: expected a port number (a whole number), got 'https'"),
    (
        ["--public-url", "notaurl"],
        "argument --public-url: expected a URL such as https://visio.example.org, got 'notaurl'",
    ),
    (
        ["--ice-server", "bogus"],
        "argument --ice-server: ICE server URL 'bogus' must start with stun:, stuns:, turn: or turns:",
    ),
    (
        ["--trusted-proxy", "nope"],
        "argument --trusted-proxy: expected an address or network such as 10.0.0.0/8, got 'nope'",
    ),
    (["--cert", "{cert}"], "--cert and --key go together"),
    (["--cert", "missing.pem", "--key", "{key}"], "--cert: cannot read missing.pem: No such file or directory"),
    (["--cert", "{cert}", "--key", "{other_key}"], "--key {other_key} is not the private key of --cert {cert}"),
    (
        ["--cert", "{key}", "--key", "{key}"],
        "cannot load --cert {key} with --key {key}: expected a PEM certificate chain and its private key",
    ),
    (["--db", "nowhere/cabine.sqlite"], "the database's directory nowhere does not exist"),
    (["--db", "{not_a_database}"], "cannot use the database {not_a_database}: file is not a database"),
    (["--data-dir", "{not_a_database}"], "--data-dir {not_a_database} is not a directory"),
    (
        ["--insecure-dev-http", "--cert", "{cert}", "--key", "{key}"],
        "--insecure-dev-http serves plain HTTP: it cannot be combined with --cert/--key",
    ),
    (
        ["--behind-proxy", "--insecure-dev-http"],
        "--insecure-dev-http and --behind-proxy cannot be combined: --behind-proxy is for production",
    ),
    (
        ["--behind-proxy", "--trusted-proxy", "127.0.0.1"],
        "--behind-proxy needs --public-url with the https:// address the proxy serves, "
        "e.g. --public-url https://visio.example.org",
    ),
    (
        ["--behind-proxy", "--public-url", "http://visio.example.org", "--trusted-proxy", "127.0.0.1"],
        "--behind-proxy needs --public-url with the https:// address the proxy serves, "
        "e.g. --public-url https://visio.example.org",
    ),
    (
        ["--behind-proxy", "--public-url", "https://visio.example.org"],
        "--behind-proxy needs --trusted-proxy with the proxy's address (e.g. --trusted-proxy 127.0.0.1): "
        "otherwise every client would look like the proxy",
    ),
    (
        ["--behind-proxy", "--host", "0.0.0.0", "--public-url", "https://v.example.org", "--trusted-proxy", "10.0.0.4"],
        "--behind-proxy listens on loopback only (127.0.0.1 or ::1), not --host 0.0.0.0: "
        "a proxy on another machine reaches signaling over TLS (--cert/--key)",
    ),
    (
        ["--redis", "http://127.0.0.1:6379"],
        "--redis http://127.0.0.1:6379: expected redis://HOST:PORT/DB, rediss://… or unix://PATH",
    ),
    (
        ["--redis", "redis://127.0.0.1:1/0"],
        "--redis runs several nodes on one database: it needs --db postgresql://… (SQLite is one process's)",
    ),
    (["--webhook", "https://booking.example.org/hook"], "--webhook and --webhook-secret-file go together"),
    (["--webhook-event", "alert.opened"], "--webhook-event needs --webhook"),
    (
        ["--webhook", "ftp://booking.example.org/hook", "--webhook-secret-file", "{not_a_database}"],
        "--webhook: webhook URL 'ftp://booking.example.org/hook' must be https://host/path "
        "(http:// only on a private network)",
    ),
    (
        ["--webhook", "https://b.example.org/h", "--webhook-secret-file", "{not_a_database}", "--webhook-event", "x"],
        "--webhook: unknown webhook events ['x'] (known: alert.closed, alert.opened, appointment.cancelled, "
        "appointment.citizen_admitted, appointment.ended, appointment.no_show, appointment.professional_joined)",
    ),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS, ids=[" ".join(o) for o, _ in BAD_OPTIONS])
async def test_a_wrong_option_is_refused_before_anything_changes(
    tmp_path: Path, certificates: tuple[Path, Path, Path, Path], options: list[str], message: str
) -> None:
    _, cert, key, other_key = certificates
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("not a database " * 100)
    values = {"cert": str(cert), "key": str(key), "other_key": str(other_key), "not_a_database": str(not_a_database)}
    args = [option.format(**values) for option in options]
    data = [] if "--data-dir" in args else ["--data-dir", "data"]
    result = await serve("--port", str(free_port()), *data, *args, cwd=tmp_path)
    assert (result.code, result.out) == (2, "")
    assert "Traceback" not in result.err
    assert result.err.splitlines()[-1] == "cabine serve: error: " + message.format(**values)
    assert not (tmp_path / "data").exists()


async def test_serves_tls_with_the_given_certificate(
    tmp_path: Path, certificates: tuple[Path, Path, Path, Path]
) -> None:
    ca, cert, key, _ = certificates
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cabine", "serve", "--port", str(port), "--data-dir", "data",
        "--cert", str(cert), "--key", str(key), "--trusted-proxy", "10.0.0.0/24", "--ice-server", "stun:127.0.0.1:3478",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert first == f"Cabine signaling on https://127.0.0.1:{port} (database data/cabine.sqlite)\n"
        second = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert second == "Operator API key: data/operator-key\n"
        context = ssl.create_default_context(cafile=str(ca))
        url = f"https://127.0.0.1:{port}/healthz"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, context=context, timeout=10).read())
        assert body == b'{"status": "ok"}'
        # No development certificate was made: the given one is used.
        made = {p.name for p in (tmp_path / "data").iterdir()} - {"cabine.sqlite-wal", "cabine.sqlite-shm"}
        assert made == {"cabine.sqlite", "operator-key", "signing-key.pem"}
    finally:
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
