"""Calls across real networks, in namespaces this test builds: the cabin behind a 4G router's symmetric NAT, the
doctor behind a hospital firewall that lets only TCP 443 out, coturn between them (tests/netlab, tests/networkrig.py).

Relay-only calls connect and carry media and readings; a 5-second cut of the cabin's link is detected and the call
comes back by itself with every reading exactly once; so does a gateway killed with SIGKILL and restarted; a restart
of signaling leaves the call alone; a TURN secret that does not match is said on both screens.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from tests.browser import FRAMES_JS, wait_js
from tests.networkrig import PAIR_JS, READINGS_JS, NetworkCall, admit, doctor_joined, network_call, wait_for

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _needs_root_and_tools() -> None:
    missing = [tool for tool in ("ip", "nft", "turnserver", "setpriv") if shutil.which(tool) is None]
    reason = "needs root" if os.geteuid() != 0 else f"needs {', '.join(missing)}" if missing else None
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"network tests {reason} in CI")
        pytest.skip(f"network tests {reason}")


async def frames(page: Page) -> int:
    return int(await page.evaluate(FRAMES_JS))


async def frames_flow(page: Page, *, more: int = 30, timeout: float = 20, what: str) -> None:
    before = await frames(page)

    async def grew() -> bool:
        return await frames(page) > before + more

    await wait_for(grew, timeout=timeout, what=what)


async def readings_on_page(page: Page) -> list[dict[str, Any]]:
    return list(await page.evaluate(READINGS_JS))


async def take(call: NetworkCall, page: Page, count: int) -> None:
    """The citizen uses the thermometer; wait until the page shows `count` readings in all."""
    await wait_for(lambda: call.radio.subscribed("thermometer"), timeout=20, what="the gateway on the thermometer")
    call.radio.trigger("thermometer")
    await readings_shown(page, count, timeout=20, what=f"reading {count} on the doctor's page")


async def readings_shown(page: Page, count: int, *, timeout: float, what: str) -> None:
    """Wait until the page shows `count` readings in all."""

    async def shown() -> bool:
        return len(await readings_on_page(page)) >= count

    await wait_for(shown, timeout=timeout, what=what)


def exactly_once(readings: list[dict[str, Any]], count: int) -> None:
    seqs = [r["seq"] for r in readings]
    assert seqs == list(range(1, count + 1)), f"each reading exactly once, in order: got seqs {seqs}"
    times = [r["at"] for r in readings]
    assert times == sorted(times), "in measurement order"


async def test_relay_only_call_through_symmetric_nat_and_udp_blocking_firewall(tmp_path: Path) -> None:
    async with network_call(tmp_path) as call:
        await call.start_gateway()
        async with doctor_joined(call, tmp_path / "doctor-profile") as page:
            await admit(page)
            await frames_flow(page, what="the cabin's video through the relays")
            # The doctor's path: a relay candidate, reached over TCP (the firewall drops every UDP packet).
            pair = await page.evaluate(PAIR_JS)
            assert pair is not None and pair["local"] == "relay", pair
            assert pair["relayProtocol"] == "tcp", pair
            # The cabin's path: relayed too, over UDP through its NAT (its log says which pair it took).
            await wait_for(
                lambda: "connected through relay/udp" in call.gateway_log(), timeout=10, what="the cabin's log"
            )
            line = next(x for x in call.gateway_log().splitlines() if "connected through" in x)
            assert "via turn/udp" in line, line
            # Readings flow, each exactly once.
            for n in (1, 2):
                await take(call, page, n)
            exactly_once(await readings_on_page(page), 2)
            # Audio reaches the doctor too.
            audio = await page.evaluate(
                """async () => { let n = 0; (await window.cabine.pc.getStats()).forEach((s) => {
                    if (s.type === "inbound-rtp" && s.kind === "audio") n = s.packetsReceived; }); return n; }"""
            )
            assert audio > 50


async def test_a_five_second_cut_with_readings_flowing(tmp_path: Path) -> None:
    async with network_call(tmp_path) as call:
        await call.start_gateway()
        async with doctor_joined(call, tmp_path / "doctor-profile") as page:
            await admit(page)
            await frames_flow(page, what="the call before the cut")
            await take(call, page, 1)
            await page.evaluate("window.cabine.pc.__before_cut = true")

            cut_at = time.monotonic()
            await call.lab.cut(True)
            # Both screens say "reconnecting" within 3 s (the doctor's page; the cabin's log and screen state).
            await page.wait_for_selector("body[data-state=reconnecting]", timeout=5_000)
            detected = time.monotonic() - cut_at
            # A reading taken during the cut waits in the cabin's journal.
            call.radio.trigger("thermometer")
            await wait_for(
                lambda: "nothing from the professional" in call.gateway_log(), timeout=5, what="the cabin to notice"
            )
            remaining = 5.0 - (time.monotonic() - cut_at)
            if remaining > 0:
                await wait_for(lambda: time.monotonic() - cut_at >= 5.0, timeout=remaining + 1, what="the cut")
            back_at = time.monotonic()
            await call.lab.cut(False)

            # The call comes back by itself, on a new peer connection; the doctor did nothing.
            await page.wait_for_selector("body[data-state=inCall]", timeout=30_000)
            await frames_flow(page, what="video after the cut")
            recovered = time.monotonic() - back_at
            assert await page.evaluate("window.cabine.pc.__before_cut") is None, "a fresh peer connection"
            await readings_shown(page, 2, timeout=15, what="the reading taken during the cut")
            await take(call, page, 3)
            exactly_once(await readings_on_page(page), 3)
            print(f"cut detected by the doctor's page in {detected:.2f} s; video back {recovered:.2f} s after")


async def test_the_gateway_killed_and_restarted(tmp_path: Path) -> None:
    async with network_call(tmp_path) as call:
        await call.start_gateway()
        async with doctor_joined(call, tmp_path / "doctor-profile") as page:
            await admit(page)
            await frames_flow(page, what="the call before the crash")
            await take(call, page, 1)
            # The doctor's page cannot acknowledge while the cabin's link is cut: the next reading is only in the
            # gateway's journal when the gateway dies.
            await call.lab.cut(True)
            call.radio.trigger("thermometer")
            await wait_for(
                lambda: "reading 2 kept until" in call.gateway_log(), timeout=10, what="the reading in the journal"
            )
            await call.kill_gateway()
            await call.lab.cut(False)
            killed = time.monotonic()
            await call.start_gateway()
            await page.wait_for_selector("body[data-state=inCall]", timeout=40_000)
            await frames_flow(page, what="video from the restarted gateway")
            seen_again = time.monotonic() - killed
            await readings_shown(page, 2, timeout=20, what="the journaled reading replayed")
            # The reading the crash interrupted came back from the journal; none was shown twice.
            exactly_once(await readings_on_page(page), 2)
            # The thermometer stayed connected to BlueZ on behalf of the dead process, so it does not advertise: the
            # restarted gateway takes the link over, and the next reading reaches the doctor.
            restarted = call.gateway
            assert restarted is not None
            await wait_for(
                lambda: "measurement characteristic" in restarted.log_path.read_text(errors="replace"),
                timeout=20,
                what="the restarted gateway on the thermometer",
            )
            await take(call, page, 3)
            exactly_once(await readings_on_page(page), 3)
            print(f"the doctor saw the cabin again {seen_again:.2f} s after the gateway was killed")


async def test_a_restart_of_signaling_leaves_the_call_alone(tmp_path: Path) -> None:
    async with network_call(tmp_path) as call:
        await call.start_gateway()
        async with doctor_joined(call, tmp_path / "doctor-profile") as page:
            await admit(page)
            await frames_flow(page, what="the call")
            await page.evaluate("window.cabine.pc.__first = true")
            await call.signaling.stop()
            # Peer to peer (through the relay), the media do not need signaling.
            await frames_flow(page, what="video while signaling is down")
            await call.signaling.start()
            await wait_for(
                lambda: call.gateway_log().count("connected to signaling") >= 2, timeout=30, what="the cabin back"
            )
            await frames_flow(page, what="video after signaling came back")
            assert await page.evaluate("window.cabine.pc.__first") is True, "the same peer connection all along"
            assert await page.locator("body").get_attribute("data-state") == "inCall"
            # The citizen was not sent back to the waiting room: the restarted server kept the admission.
            assert await page.locator("#admit").is_hidden()
            await take(call, page, 1)
            exactly_once(await readings_on_page(page), 1)


async def test_a_turn_secret_that_does_not_match(tmp_path: Path) -> None:
    async with network_call(tmp_path, server_secret="not-the-secret-coturn-has") as call:
        await call.start_gateway()
        async with doctor_joined(call, tmp_path / "doctor-profile") as page:
            await wait_js(page, "() => !document.getElementById('admit').disabled", timeout=30, what="the citizen")
            admitted = time.monotonic()
            await page.get_by_role("button", name="Faire entrer").click()
            await page.wait_for_selector("body[data-state=turnRefused]", timeout=10_000)
            said = time.monotonic() - admitted
            assert "refuse les identifiants" in await page.locator("#status").inner_text()
            # The cabin found out too, and told the operator.
            await wait_for(lambda: "turn-refused" in call.gateway_log(), timeout=10, what="the cabin's diagnosis")
            print(f"TURN refusal shown to the doctor {said:.2f} s after admission")
