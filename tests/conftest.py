"""Shared fixtures: free ports, a clock, a wait helper."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from collections.abc import Callable
from typing import NoReturn

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


async def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll a cheap condition every 20 ms until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def unavailable(message: str) -> NoReturn:
    """Something a test needs is missing here: a skip locally, a failure under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def need_tool(name: str, package: str = "systemd") -> str:
    """The program's path; without it, a skip locally and a failure under CI=true."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (Debian package {package}; .ci/run installs it)")
    return path
