"""Headless Debian Chromium for the tests, driven by Playwright (its own browser download cannot work here)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

# Video frames the page's call (window.cabine.pc) has decoded so far.
FRAMES_JS = """async () => {
  const pc = window.cabine.pc;
  if (!pc) return 0;
  let frames = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0;
  });
  return frames;
}"""

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
            accept_downloads=True,
            permissions=["camera", "microphone"],
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield context
        finally:
            await context.close()


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


async def screenshot(page: Page, name: str) -> Path:
    """Save a screenshot as a test artefact (git-ignored test-artifacts/)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def assert_accessible(page: Page, state: str) -> None:
    """axe-core in the page: no serious or critical WCAG 2.1 A/AA violation in this state."""
    from axe_playwright_python.async_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
    results = await Axe().run(page, options=options)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    details = "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in bad
    )
    assert not bad, f"accessibility violations in state {state!r}: {details}"


async def wait_js(page: Page, predicate: str, *, timeout: float = 15.0, what: str) -> None:
    """Poll a JavaScript arrow function in the page until it returns true (works under a strict CSP)."""
    ok = await page.evaluate(
        """async ([source, ms]) => {
            const predicate = eval(source);
            const deadline = performance.now() + ms;
            while (performance.now() < deadline) {
              try { if (await predicate()) return true; } catch (e) {}
              await new Promise((r) => setTimeout(r, 50));
            }
            return false;
        }""",
        [predicate, timeout * 1000],
    )
    if not ok:
        pytest.fail(f"timed out after {timeout} s waiting for {what}")
