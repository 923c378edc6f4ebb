"""An operator's day, for real: processes, the CLI, a browser. Two appointments for one cabin, each link in its own
window and for its own cabin, a bank call with no vitals at any layer, and a server restart that loses nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium
from tests.postgres import PrivatePostgres

pytestmark = pytest.mark.timeout(150)


def run_cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "cabine", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, done.stdout, done.stderr


@asynccontextmanager
async def process(*args: str, cwd: Path, ready: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A `cabine` process, up once it prints a line starting with `ready`; stopped with SIGINT."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cabine", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode()
            if not line:
                err = await proc.stderr.read() if proc.stderr else b""
                pytest.fail(f"`cabine {args[0]}` exited early: {err.decode()[-2000:]}")
            if line.startswith(ready):
                break
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            _, stderr = await asyncio.wait_for(proc.communicate(), timeout=20)
            assert b"Traceback" not in stderr, stderr.decode()[-2000:]


def http_status(url: str, ca: Path) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as server:
        yield server


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_operator_books_two_kinds_for_one_cabin_and_restarts(
    tmp_path: Path, port: int, engine: str, request: pytest.FixtureRequest
) -> None:
    """On the embedded SQLite file, and on PostgreSQL (`cabine serve --db postgresql://…`)."""
    data, cabin_pc = tmp_path / "server", tmp_path / "cabin-pc"
    cabin_pc.mkdir()
    server = f"https://127.0.0.1:{port}"
    ca = data / "certs" / "ca.crt"
    serve_args: tuple[str, ...] = ("serve", "--port", str(port), "--data-dir", str(data))
    if engine == "postgres":
        serve_args += ("--db", request.getfixturevalue("postgres").database())
    op = ("--server", server, "--api-key-file", str(data / "operator-key"), "--ca-file", str(ca))
    now = datetime.now(UTC).replace(second=0, microsecond=0)

    async with process(*serve_args, cwd=tmp_path, ready="Operator API key:"):
        # The operator registers two cabins; the first is enrolled from its own PC with its one-time code.
        links: dict[str, str] = {}
        ids: dict[str, str] = {}
        for cabin in ("cabin-a", "cabin-b"):
            code, out, err = run_cli("cabin", "add", cabin, "--name", f"Mairie {cabin}", "--json", *op, cwd=tmp_path)
            assert code == 0, err
            enrollment = json.loads(out)["enrollment_code"]
            if cabin == "cabin-a":
                key = cabin_pc / "cabin.key"
                code, out, err = run_cli(
                    "cabin",
                    "enroll",
                    "--server",
                    server,
                    "--cabin",
                    cabin,
                    "--code",
                    enrollment,
                    "--key-file",
                    str(key),
                    "--ca-file",
                    str(ca),
                    cwd=cabin_pc,
                )
                assert code == 0, err
                assert key.stat().st_mode & 0o077 == 0

        bookings = {
            "bank": ("bank", "cabin-a", now + timedelta(minutes=5)),
            "medical": ("medical", "cabin-a", now + timedelta(hours=3)),
            "elsewhere": ("energy", "cabin-b", now),
        }
        for name, (kind, cabin, start) in bookings.items():
            code, out, err = run_cli(
                "appointment",
                "create",
                "--kind",
                kind,
                "--cabin",
                cabin,
                "--start",
                start.isoformat(),
                "--duration",
                "30",
                "--professional",
                f"Pro {name}",
                "--json",
                *op,
                cwd=tmp_path,
            )
            assert code == 0, err
            created = json.loads(out)
            links[name], ids[name] = created["link"], created["id"]

        # Each link works only in its own window: the bank one opens now, the medical one in 2 h 45.
        assert http_status(links["bank"], ca)[0] == 200
        status, body = http_status(links["medical"], ca)
        assert status == 403 and "pas encore valable" in body

        async with (
            process(
                "gateway",
                "--server",
                server,
                "--key-file",
                str(cabin_pc / "cabin.key"),
                "--ca-file",
                str(ca),
                "--auto-checkin",
                "--ice-address",
                "127.0.0.1",
                cwd=cabin_pc,
                ready="Cabin cabin-a",
            ),
            chromium(tmp_path / "profile") as browser,
        ):
            # The bank adviser's call: video and sound, and no vitals at any layer. The cabin has a screen: one data
            # channel, for documents only.
            page = await browser.new_page()
            await page.goto(links["bank"])
            await page.get_by_role("button", name="Rejoindre").click()
            await page.get_by_role("button", name="Faire entrer").click(timeout=20_000)
            await page.wait_for_selector("body[data-state=inCall]", timeout=20_000)
            sdp: str = await page.evaluate("window.cabine.pc.remoteDescription.sdp")
            assert "m=video" in sdp and "m=audio" in sdp
            assert sdp.count("m=application") == 1
            await page.get_by_role("button", name="Envoyer un document").wait_for()
            assert await page.evaluate("window.cabine.vitals.channel") is None, "no vitals channel"
            assert await page.evaluate("window.cabine.documents.channel.label") == "documents"
            assert await page.locator("#vitals").is_hidden()
            # cabin-a never sees cabin-b's appointment, and cabin-b's link waits for cabin-b only.
            other = await browser.new_page()
            await other.goto(links["elsewhere"])
            await other.get_by_role("button", name="Rejoindre").click()
            await other.wait_for_selector("body[data-state=waitingCabin]", timeout=10_000)
            assert await other.locator("#room-cabin").inner_text() == "non connectée"
            await page.get_by_role("button", name="Terminer").click()

    # The server restarts: nothing is lost, links still verify (the signing key persisted).
    async with process(*serve_args, cwd=tmp_path, ready="Operator API key:"):
        code, out, err = run_cli("appointment", "list", "--json", *op, cwd=tmp_path)
        assert code == 0, err
        listed: Any = json.loads(out)
        appointments = listed["appointments"] if isinstance(listed, dict) else listed
        assert {a["id"] for a in appointments} >= set(ids.values())
        assert http_status(links["bank"], ca)[0] == 200
        code, _, err = run_cli("appointment", "cancel", ids["bank"], *op, cwd=tmp_path)
        assert code == 0, err
        status, body = http_status(links["bank"], ca)
        assert status == 403 and "annulé" in body
        # A bad operator key is refused with one clear line.
        bad = tmp_path / "bad-key"
        bad.write_text("nope\n")
        code, _, err = run_cli(
            "appointment", "list", "--server", server, "--api-key-file", str(bad), "--ca-file", str(ca), cwd=tmp_path
        )
        assert code == 1
        assert err.count("\n") == 1 and "error" in err and "Traceback" not in err
