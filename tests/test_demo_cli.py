"""`cabine demo` as a user runs it: a real process, a link printed, Ctrl-C, a clean exit."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

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


async def test_a_busy_port_gets_a_clear_error(tmp_path: Path, port: int) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        process = await start_demo(tmp_path, port)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 1
    assert b"Traceback" not in stderr
    assert b"cabine demo: error: cannot start:" in stderr
