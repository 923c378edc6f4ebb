"""`cabine demo` as a user runs it: a real process, a link printed, Ctrl-C, a clean exit."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.timeout(60)


async def start_demo(tmp_path: Path, port: int) -> asyncio.subprocess.Process:
    # Its own process group, like a command started from a terminal: Ctrl-C goes to the whole group.
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cabine", "demo", "--port", str(port), "--data-dir", str(tmp_path / "data"),
        "--ice-address", "127.0.0.1", "--kiosk-port", str(free_port()),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


async def read_until_link(process: asyncio.subprocess.Process) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        if not raw:
            pytest.fail(f"demo exited before printing a link: {lines}")
        lines.append(raw.decode().rstrip())
        if lines[-1].startswith("Doctor link: "):
            return lines


async def test_demo_prints_one_link_and_stops_cleanly_on_ctrl_c(tmp_path: Path, port: int) -> None:
    process = await start_demo(tmp_path, port)
    lines = await read_until_link(process)
    links = [line for line in lines if line.startswith("Doctor link: ")]
    assert len(links) == 1
    assert links[0].startswith(f"Doctor link: https://127.0.0.1:{port}/join/")
    # The certificate and signing key were generated, private ones readable by the owner only.
    data = tmp_path / "data"
    assert (data / "certs" / "ca.crt").exists()
    assert (data / "certs" / "server.key").stat().st_mode & 0o077 == 0
    assert (data / "signing-key.pem").stat().st_mode & 0o077 == 0

    # The cabin's emulated Bluetooth devices run as child processes (dbus-daemon, the BlueZ emulator).
    children = _descendants(process.pid)
    assert children, "the demo should run its Bluetooth emulation"
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0
    assert b"Traceback" not in stderr, stderr.decode()
    assert b"Traceback" not in stdout
    assert not _alive(children), "child processes left behind"
    # Nothing is left listening on the port (connections in TIME_WAIT do not count).
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


async def test_a_second_demo_on_a_busy_port_changes_nothing(tmp_path: Path, port: int) -> None:
    first = await start_demo(tmp_path, port)
    link = (await read_until_link(first))[-1].split(": ", 1)[1]
    ca = tmp_path / "data" / "certs" / "ca.crt"
    database = tmp_path / "data" / "cabine.sqlite"
    before = _appointments(database)
    try:
        second = await start_demo(tmp_path, port)
        _, stderr = await asyncio.wait_for(second.communicate(), timeout=30)
        assert second.returncode == 1
        assert stderr.decode() == f"cabine demo: error: cannot listen on 127.0.0.1:{port}: address already in use\n"
        # The running demo's appointment is untouched (its doctor link still opens) and none was booked.
        assert _appointments(database) == before
        assert await asyncio.to_thread(_status, link, ca) == 200
    finally:
        os.killpg(first.pid, signal.SIGINT)
        await asyncio.wait_for(first.communicate(), timeout=20)
    assert first.returncode == 0


async def test_a_busy_port_on_a_fresh_machine_leaves_no_file(tmp_path: Path, port: int) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        process = await start_demo(tmp_path, port)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 1
    assert b"Traceback" not in stderr
    assert f"cannot listen on 127.0.0.1:{port}: address already in use".encode() in stderr
    assert not (tmp_path / "data").exists(), "nothing may be written before start-up is known to succeed"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--port", "99999"], "argument --port: a port is from 1 to 65535, got 99999"),
        (["--port", "0"], "argument --port: a port is from 1 to 65535, got 0"),
        (["--kiosk-port", "70000"], "argument --kiosk-port: a port is from 1 to 65535 (or 0 for none), got 70000"),
        (["--public-url", "notaurl"], "argument --public-url: expected a URL such as https://visio.example.org"),
        (["--fps", "0"], "argument --fps: frames per second must be from 1 to 60, got 0"),
        (["--video-size", "641x480"], "argument --video-size: width and height must be even"),
        (["--ice-address", "bogus"], "argument --ice-address: expected an IP address such as 192.168.1.10"),
        (["--device-period", "-1"], "argument --device-period: seconds must be >= 0"),
        (["--video", "v4l2:/dev/nonexistent"], "camera /dev/nonexistent does not exist"),
        (["--video", "webcam"], "unknown video source 'webcam'"),
    ],
)
async def test_every_option_is_checked_before_anything_starts(
    tmp_path: Path, port: int, arguments: list[str], message: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cabine", "demo", "--port", str(port), "--data-dir", str(tmp_path / "data"), *arguments,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    text = stderr.decode()
    assert process.returncode == 2, text
    assert message in text
    assert "Traceback" not in text
    assert not (tmp_path / "data").exists()


async def test_sighup_ends_the_demo_and_its_children(tmp_path: Path, port: int) -> None:
    process = await start_demo(tmp_path, port)
    await read_until_link(process)
    children = _descendants(process.pid)
    assert children, "the demo should run its Bluetooth emulation"
    os.killpg(process.pid, signal.SIGHUP)  # what closing the terminal does
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, stderr.decode()
    assert not _alive(children), "child processes left behind"


async def test_killed_demo_leaves_no_child(tmp_path: Path, port: int) -> None:
    process = await start_demo(tmp_path, port)
    await read_until_link(process)
    children = _descendants(process.pid)
    assert children
    process.kill()  # no chance to clean up: the kernel ends the children (PR_SET_PDEATHSIG)
    await process.wait()
    await wait_until(lambda: not _alive(children), timeout=10, what="the children to end with the demo")


async def test_public_url_is_the_one_in_the_doctor_link(tmp_path: Path, port: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cabine", "demo", "--host", "0.0.0.0", "--port", str(port),
        "--data-dir", str(tmp_path / "data"), "--ice-address", "127.0.0.1", "--kiosk-port", "0", "--devices", "none",
        "--public-url", "https://cabine.example.org:9443",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        lines = await read_until_link(process)
        assert lines[-1].startswith("Doctor link: https://cabine.example.org:9443/join/")
    finally:
        os.killpg(process.pid, signal.SIGINT)
        await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0


def _appointments(database: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT id, cancelled_at FROM appointments ORDER BY id").fetchall()


def _status(url: str, ca: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
