"""Headless Debian Chromium for the tests, driven by Playwright (its own browser download cannot work here)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, async_playwright

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    # Without it a page on a loopback-only network gathers no ICE candidates.
    "--allow-loopback-in-peer-connection",
    # Host candidates as plain IPs, not mDNS names: nothing leaves loopback, not even a multicast query.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


def chromium_path() -> str:
    """The Chromium binary; with CI=true a missing browser fails instead of skipping."""
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("Chromium is required in CI (apt-get install chromium) but was not found")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


@asynccontextmanager
async def chromium(profile_dir: Path, *, extra_args: tuple[str, ...] = ()) -> AsyncIterator[BrowserContext]:
    """A fresh persistent Chromium profile that accepts the development certificate."""
    executable = chromium_path()
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_FLAGS, *extra_args],
            ignore_https_errors=True,
            permissions=["camera", "microphone"],
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield context
        finally:
            await context.close()
