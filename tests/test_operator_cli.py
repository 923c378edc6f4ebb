"""The operator CLI for real: `python -m cabine ...` subprocesses against a real TLS server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import stat
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from gateway.identity import CabinIdentity
from signaling.app import create_app
from signaling.config import ServerConfig, hash_api_key
from signaling.models import AuditAction
from signaling.protocol import (
    CheckStatus,
    Hello,
    SelftestCheck,
    SelftestReport,
    SelftestRequest,
    dump,
    parse,
)
from signaling.sqlite_store import SQLiteStore
from signaling.tls import create_ca, ensure_development_certificate
from signaling.tokens import TokenSigner
from tests.conftest import free_port

OPERATOR_KEY = "cli-test-operator-key-7d1f0c9a"
PARIS = timezone(timedelta(hours=1))


@dataclass(frozen=True)
class Server:
    url: str
    store: SQLiteStore
    workdir: Path
    key_file: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CABINE_") and "proxy" not in k.lower()}
        env.update({"CABINE_SERVER": self.url, "CABINE_API_KEY_FILE": str(self.key_file), "TZ": "UTC"})
        env.update(extra)
        return env


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


async def cabine(*args: str, cwd: Path, env: Mapping[str, str], timeout: float = 60) -> Result:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cabine",
        *args,
        cwd=cwd,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"cabine {' '.join(args)} did not finish within {timeout} s")
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    # The dev CA where the CLI looks by default: .cabine/certs/ca.crt under the working directory.
    certs = ensure_development_certificate(tmp_path / ".cabine" / "certs")
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    key_file = tmp_path / "operator-key"
    key_file.write_text(OPERATOR_KEY + "\n")
    with SQLiteStore.open(tmp_path / "cabine.sqlite") as store:
        config = ServerConfig(
            signer=TokenSigner.generate(),
            store=store,
            public_url=url,
            operator_key_hashes=(hash_api_key(OPERATOR_KEY),),
        )
        runner = web.AppRunner(create_app(config))
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=certs.server_context()).start()
            yield Server(url=url, store=store, workdir=tmp_path, key_file=key_file)
        finally:
            await runner.cleanup()


async def run(server: Server, *args: str, **env: str) -> Result:
    return await cabine(*args, cwd=server.workdir, env=server.env(**env))


def one_error_line(result: Result, command: str) -> str:
    """The single stderr line of a failed command, without its prefix."""
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    prefix = f"cabine {command}: error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0].removeprefix(prefix)


def tomorrow_at_9_30() -> str:
    day = datetime.now(PARIS).date() + timedelta(days=1)
    return f"{day.isoformat()}T09:30+01:00"


async def add_cabin(server: Server, cabin_id: str = "mairie-pq") -> str:
    result = await run(server, "cabin", "add", cabin_id, "--name", "Mairie de Petit-Quevilly", "--json")
    assert result.code == 0, result.err
    return str(json.loads(result.out)["enrollment_code"])


async def test_appointment_create_list_show_cancel(server: Server) -> None:
    await add_cabin(server)
    start = tomorrow_at_9_30()
    created = await run(
        server,
        "appointment",
        "create",
        "--kind",
        "bank",
        "--cabin",
        "mairie-pq",
        "--start",
        start,
        "--duration",
        "30",
        "--professional",
        "Mme Martin",
    )
    assert created.code == 0, created.err
    link = created.out.strip()
    assert link.startswith(f"{server.url}/join/")
    assert "\n" not in link
    [stored] = server.store.list_appointments()
    assert stored.starts_at == datetime.fromisoformat(start)
    assert stored.professional_name == "Mme Martin"

    as_json = await run(
        server, "appointment", "create", "--json", "--kind", "medical", "--cabin", "mairie-pq",
        "--start", start.replace("09:30", "11:00"), "--duration", "20", "--professional", "Dr Durand",
    )  # fmt: skip
    assert as_json.code == 0, as_json.err
    second = json.loads(as_json.out)
    assert (second["kind"], second["duration_minutes"], second["cabin_id"]) == ("medical", 20, "mairie-pq")
    assert second["link"].startswith(f"{server.url}/join/")

    listing = await run(server, "appointment", "list")
    assert listing.code == 0, listing.err
    lines = listing.out.splitlines()
    assert lines[0].split() == ["ID", "STARTS", "MIN", "KIND", "CABIN", "PROFESSIONAL", "STATUS"]
    assert lines[1].startswith(stored.id)
    assert stored.starts_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M +0000") in lines[1]
    assert "Mme Martin" in lines[1]
    assert lines[1].endswith("booked")
    assert lines[2].startswith(second["id"])
    assert "Dr Durand" in lines[2]

    shown = await run(server, "appointment", "show", stored.id)
    assert shown.code == 0, shown.err
    assert f"id:           {stored.id}" in shown.out
    assert "professional: Mme Martin" in shown.out
    assert f"link:         {server.url}/join/" in shown.out

    cancelled = await run(server, "appointment", "cancel", stored.id)
    assert cancelled.code == 0, cancelled.err
    assert cancelled.out.startswith(f"cancelled {stored.id} (Mme Martin, ")
    after = server.store.get_appointment(stored.id)
    assert after is not None
    assert after.cancelled

    listing = await run(server, "appointment", "list", "--cabin", "mairie-pq", "--json")
    assert [(a["id"], a["cancelled"]) for a in json.loads(listing.out)] == [(stored.id, True), (second["id"], False)]
    shown = await run(server, "appointment", "show", stored.id)
    assert "link:         -" in shown.out
    assert "status:       cancelled" in shown.out


async def test_appointment_create_names_the_appointment_in_the_way(server: Server) -> None:
    await add_cabin(server)
    start = tomorrow_at_9_30()
    book = ("appointment", "create", "--kind", "bank", "--cabin", "mairie-pq", "--duration", "30", "--professional")
    first = await run(server, *book, "Mme Martin", "--start", start, "--json")
    assert first.code == 0, first.err
    booked = json.loads(first.out)
    later = start.replace("09:30", "09:45")
    second = await run(server, *book, "M. Durand", "--start", later)
    assert (second.code, second.out) == (1, "")
    assert one_error_line(second, "appointment create") == (
        f"the server refused the request (409): cabin 'mairie-pq' is already booked from {booked['starts_at']} "
        f"to {booked['ends_at']} by appointment {booked['id']}: choose another time"
    )
    assert [a.id for a in server.store.list_appointments()] == [booked["id"]]


@asynccontextmanager
async def answering_cabin(server: Server, cabin_id: str, *, ok: bool) -> AsyncIterator[None]:
    """The cabin, enrolled and connected over WSS, answering every self-test request with a report."""
    identity = CabinIdentity.generate(cabin_id)
    cabin = server.store.get_cabin(cabin_id)
    assert cabin is not None
    server.store.update_cabin(replace(cabin, public_key=identity.public_bytes(), enrolled_at=datetime.now(UTC)))
    context = ssl.create_default_context(cafile=str(server.workdir / ".cabine" / "certs" / "ca.crt"))
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(server.url.replace("https://", "wss://") + "/ws/cabin", ssl=context)
        await ws.send_str(dump(Hello(token=identity.proof(datetime.now(UTC)))))

        async def answer() -> None:
            async for msg in ws:
                message = parse(msg.data)
                if isinstance(message, SelftestRequest):
                    checks = (
                        SelftestCheck("camera", CheckStatus.OK if ok else CheckStatus.FAILED, "640x480"),
                        SelftestCheck("scale", CheckStatus.WARNING, "battery 9 %", required=False),
                    )
                    report = SelftestReport(message.request_id, ok, checks, "2026-11-26T08:29:59.500Z")
                    await ws.send_str(dump(report))

        task = asyncio.create_task(answer())
        try:
            yield
        finally:
            await ws.close()
            await task


async def test_cabin_selftest(server: Server) -> None:
    await add_cabin(server)
    offline = await run(server, "cabin", "selftest", "mairie-pq")
    assert offline.code == 1
    assert one_error_line(offline, "cabin selftest") == (
        "the server refused the request (409): cabin 'mairie-pq' is not connected"
    )
    async with answering_cabin(server, "mairie-pq", ok=True):
        result = await run(server, "cabin", "selftest", "mairie-pq")
        assert (result.code, result.err) == (0, ""), result.err
        assert result.out.splitlines() == [
            "cabin mairie-pq: self-test passed (on request, finished 2026-11-26 08:29 +0000)",
            "STATUS   CHECK   DETAIL",
            "ok       camera  640x480",
            "warning  scale   battery 9 %  (not needed for a call)",
        ]
        as_json = await run(server, "cabin", "selftest", "mairie-pq", "--json")
        assert as_json.code == 0, as_json.err
        report = json.loads(as_json.out)
        assert (report["cabin_id"], report["ok"], [c["name"] for c in report["checks"]]) == (
            "mairie-pq",
            True,
            ["camera", "scale"],
        )
    async with answering_cabin(server, "mairie-pq", ok=False):
        failed = await run(server, "cabin", "selftest", "mairie-pq")
        assert failed.code == 1
        assert failed.out.splitlines()[:3] == [
            "cabin mairie-pq: self-test FAILED (on request, finished 2026-11-26 08:29 +0000)",
            "STATUS   CHECK   DETAIL",
            "FAILED   camera  640x480",
        ]
        assert one_error_line(failed, "cabin selftest") == "cabin mairie-pq failed its self-test: camera"
    # The latest report stays readable once the cabin is gone.
    last = await run(server, "cabin", "selftest", "mairie-pq", "--last", "--json")
    assert last.code == 1
    assert json.loads(last.out)["ok"] is False
    requested = [e for e in server.store.audit_log() if e.action is AuditAction.SELFTEST_REQUESTED]
    assert len(requested) == 3


async def test_cabin_add_prints_the_enroll_command(server: Server) -> None:
    result = await run(server, "cabin", "add", "gare-rouen", "--name", "Gare de Rouen")
    assert result.code == 0, result.err
    cabin = server.store.get_cabin("gare-rouen")
    assert cabin is not None
    assert cabin.name == "Gare de Rouen"
    lines = result.out.splitlines()
    assert lines[0].startswith("Cabin gare-rouen added. One-time enrollment code, valid until ")
    code = lines[1].strip()
    assert lines[2] == "On the cabin PC, run:"
    assert lines[3] == f"  cabine cabin enroll --server {server.url} --cabin gare-rouen --code {code} --ca-file ca.crt"
    assert lines[4] == "(after copying .cabine/certs/ca.crt to the cabin PC as ca.crt)"


async def test_cabin_enroll_on_the_cabin_pc(server: Server, tmp_path: Path) -> None:
    code = await add_cabin(server)
    key_file = tmp_path / "cabin-pc" / "cabin.key"
    enroll = ("cabin", "enroll", "--server", server.url, "--cabin", "mairie-pq", "--key-file", str(key_file))
    # The cabin PC has no operator key: the code is its credential.
    result = await run(server, *enroll, "--code", code, CABINE_API_KEY_FILE="/nonexistent")
    assert result.code == 0, result.err
    assert (
        result.out.splitlines()[0]
        == f"cabin mairie-pq enrolled; its key is in {key_file} (keep it: it is this cabin's identity)"
    )
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    identity = CabinIdentity.load(key_file)
    assert identity.cabin_id == "mairie-pq"
    cabin = server.store.get_cabin("mairie-pq")
    assert cabin is not None
    assert cabin.public_key == identity.public_bytes()
    original = key_file.read_bytes()

    # An existing key is never overwritten by accident.
    again = await run(server, *enroll, "--code", code)
    assert again.code == 1
    assert one_error_line(again, "cabin enroll") == (
        f"the cabin key {key_file} already exists: pass --force to replace it "
        "(the old key keeps working until the server accepts the new one)"
    )
    # With --force but a used code: refused, and the old key stays as it was.
    used = await run(server, *enroll, "--code", code, "--force")
    assert used.code == 1
    assert one_error_line(used, "cabin enroll") == (
        "the server refused the request (403): no enrollment code is pending for cabin 'mairie-pq' "
        "(already used, or never issued): ask the operator for a new one"
    )
    assert key_file.read_bytes() == original
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["cabin.key"]

    # A replaced PC: a new code, then --force.
    new_code = await run(server, "cabin", "new-code", "mairie-pq", "--json")
    assert new_code.code == 0, new_code.err
    replaced = await run(server, *enroll, "--code", json.loads(new_code.out)["enrollment_code"], "--force")
    assert replaced.code == 0, replaced.err
    cabin = server.store.get_cabin("mairie-pq")
    assert cabin is not None
    assert cabin.public_key == CabinIdentity.load(key_file).public_bytes() != identity.public_bytes()


async def test_cabin_enroll_wrong_code_leaves_no_key(server: Server, tmp_path: Path) -> None:
    await add_cabin(server)
    key_file = tmp_path / "cabin-pc" / "cabin.key"
    result = await run(
        server, "cabin", "enroll", "--cabin", "mairie-pq", "--code", "not-the-code", "--key-file", str(key_file)
    )
    assert result.code == 1
    assert one_error_line(result, "cabin enroll") == (
        "the server refused the request (403): wrong enrollment code for cabin 'mairie-pq'"
    )
    assert list(key_file.parent.iterdir()) == []


async def test_cabin_list_disable_enable(server: Server) -> None:
    await add_cabin(server)
    disabled = await run(server, "cabin", "disable", "mairie-pq")
    assert (disabled.code, disabled.out.strip()) == (
        0,
        "cabin mairie-pq disabled: it cannot connect until `cabine cabin enable mairie-pq`",
    )
    cabin = server.store.get_cabin("mairie-pq")
    assert cabin is not None
    assert cabin.disabled
    listing = await run(server, "cabin", "list")
    assert listing.out.splitlines() == [
        "ID         NAME                      ENROLLED  STATUS    CODE",
        "mairie-pq  Mairie de Petit-Quevilly  no        disabled  pending",
    ]
    booked = await run(
        server, "appointment", "create", "--kind", "bank", "--cabin", "mairie-pq", "--start", tomorrow_at_9_30(),
        "--duration", "30", "--professional", "Mme Martin",
    )  # fmt: skip
    assert booked.code == 1
    assert one_error_line(booked, "appointment create") == (
        "the server refused the request (409): cabin 'mairie-pq' is disabled: enable it before booking it"
    )
    enabled = await run(server, "cabin", "enable", "mairie-pq")
    assert (enabled.code, enabled.out.strip()) == (0, "cabin mairie-pq enabled")
    unknown = await run(server, "cabin", "disable", "ghost")
    assert unknown.code == 1
    assert one_error_line(unknown, "cabin disable") == "the server refused the request (404): no cabin 'ghost'"


async def test_clear_errors(server: Server, tmp_path: Path) -> None:
    bad_key = tmp_path / "bad-key"
    bad_key.write_text("wrong\n")
    result = await run(server, "appointment", "list", "--api-key-file", str(bad_key))
    assert result.code == 1
    assert result.out == ""
    assert (
        one_error_line(result, "appointment list") == "the server refused the request (401): invalid operator API key"
    )

    result = await run(server, "cabin", "list", CABINE_API_KEY_FILE=str(tmp_path / "missing"))
    assert result.code == 1
    assert one_error_line(result, "cabin list") == (
        f"cannot read the operator API key from {tmp_path / 'missing'}: No such file or directory; "
        "pass --api-key-file (cabine serve writes it on first run)"
    )

    closed = f"https://127.0.0.1:{free_port()}"
    result = await run(server, "cabin", "list", "--server", closed)
    assert result.code == 1
    assert one_error_line(result, "cabin list") == f"cannot reach the server at {closed}: Connection refused"

    other_ca, _ = create_ca(tmp_path / "other-ca")
    result = await run(server, "cabin", "list", "--ca-file", str(other_ca))
    assert result.code == 1
    line = one_error_line(result, "cabin list")
    # OpenSSL's own words vary with its version ("self-signed certificate in certificate chain", ...).
    assert re.fullmatch(
        rf"cannot verify the certificate of {re.escape(server.url)} \([^)]+\): "
        "pass --ca-file with the CA that signed it",
        line,
    ), line

    result = await run(server, "appointment", "show", "apt_nope")
    assert result.code == 1
    assert (
        one_error_line(result, "appointment show") == "the server refused the request (404): no appointment 'apt_nope'"
    )

    result = await run(
        server, "appointment", "create", "--kind", "bank", "--cabin", "mairie-pq", "--start", "2026-11-26T09:30",
        "--duration", "30", "--professional", "Mme Martin",
    )  # fmt: skip
    assert result.code == 1
    assert one_error_line(result, "appointment create") == (
        "the server refused the request (400): starts_at must be an ISO 8601 date and time with a timezone, "
        "e.g. 2026-11-26T09:30+01:00"
    )


async def test_usage_errors_exit_2(server: Server) -> None:
    result = await run(server, "appointment", "create", "--cabin", "mairie-pq")
    assert result.code == 2
    assert "the following arguments are required: --kind, --start, --duration, --professional" in result.err
    result = await run(server, "cabin", "list", "--server", "ftp://example.org")
    assert result.code == 2
    assert (
        one_error_line(result, "cabin list") == "--server must be an https:// (or http://) URL, got 'ftp://example.org'"
    )
    result = await run(server, "appointment")
    assert result.code == 2
    assert "Traceback" not in result.err


async def test_certs(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABINE_")}
    result = await cabine(
        "certs", "--out", str(out), "--name", "localhost", "--name", "192.168.1.10", cwd=tmp_path, env=env
    )
    assert result.code == 0, result.err
    assert f"server certificate: {out / 'server.crt'}  (for localhost, 192.168.1.10)" in result.out
    assert (
        f"serve with:  cabine serve --host 0.0.0.0 --cert {out / 'server.crt'} --key {out / 'server.key'}" in result.out
    )
    cert = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["192.168.1.10"]
    assert stat.S_IMODE((out / "server.key").stat().st_mode) == 0o600
    ca = (out / "ca.crt").read_bytes()
    again = await cabine("certs", "--out", str(out), cwd=tmp_path, env=env)
    assert again.code == 0, again.err
    assert again.out.startswith(f"reusing the CA in {out}\n")
    assert (out / "ca.crt").read_bytes() == ca


@pytest.mark.parametrize("retry_after", ["1", None])
async def test_a_cluster_between_two_room_nodes_is_waited_out(tmp_path: Path, retry_after: str | None) -> None:
    """A load balancer with no node ready, or a node that does not run the rooms, answers 503 with Retry-After: the
    command waits and sends again (the request was not handled). A 503 without it is an error at once."""
    certs = ensure_development_certificate(tmp_path / ".cabine" / "certs")
    port = free_port()
    key_file = tmp_path / "operator-key"
    key_file.write_text(OPERATOR_KEY + "\n")
    refused: list[str] = []

    @web.middleware
    async def not_yet(request: web.Request, handler: Any) -> web.StreamResponse:
        if len(refused) < 2:
            refused.append(request.path)
            headers = {} if retry_after is None else {"Retry-After": retry_after}
            return web.json_response({"error": "no signaling node is ready; try again"}, status=503, headers=headers)
        return await handler(request)

    with SQLiteStore.open(tmp_path / "cabine.sqlite") as store:
        config = ServerConfig(
            signer=TokenSigner.generate(), store=store, operator_key_hashes=(hash_api_key(OPERATOR_KEY),)
        )
        app = create_app(config)
        app.middlewares.insert(0, not_yet)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=certs.server_context()).start()
            server = Server(url=f"https://127.0.0.1:{port}", store=store, workdir=tmp_path, key_file=key_file)
            result = await run(server, "cabin", "list")
        finally:
            await runner.cleanup()
    if retry_after is None:
        assert result.code == 1 and len(refused) == 1
        assert one_error_line(result, "cabin list") == (
            "the server refused the request (503): no signaling node is ready; try again"
        )
    else:
        assert (result.code, refused) == (0, ["/api/v1/cabins", "/api/v1/cabins"]), result.err
