"""The demo's four medical devices, through bleak's real BlueZ code (against bluezoo), on the doctor's screen.

The doctor asks for each measurement; the emulated device takes it and sends its GATT payload; the gateway reads it
through bleak, decodes it and sends it over the data channel; the page shows it. The expected values come from
decoding the very bytes the emulated device sent.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cabine.demo.bluetooth import DEVICE_FOR_KIND
from cabine.demo.run import DemoOptions, RunningDemo, run_demo
from gateway.devices.gatt import decode
from gateway.devices.readings import DeviceIdentity
from tests.browser import chromium, screenshot, wait_js
from tests.conftest import wait_until

pytestmark = pytest.mark.timeout(120)

LABELS = {
    "body-temperature": "Température",
    "blood-pressure": "Tension artérielle",
    "oxygen-saturation": "Saturation en oxygène",
    "body-weight": "Poids",
}


async def test_all_four_device_kinds_reach_the_doctor_through_bleak(tmp_path: Path, port: int) -> None:
    options = DemoOptions(
        port=port,
        data_dir=tmp_path / "data",
        ice_addresses=("127.0.0.1",),
        kiosk_port=None,
        auto_checkin=True,
        devices="bluetooth",
        device_period=None,  # only what the doctor asks for (and the monitor's stored readings)
    )
    async with run_demo(options) as demo, chromium(tmp_path / "profile") as browser:
        bluetooth = demo.bluetooth
        assert bluetooth is not None, "the Bluetooth emulation must run here (dbus-daemon and bluezoo)"
        page = await browser.new_page()
        await page.goto(demo.doctor_link)
        await page.get_by_role("button", name="Rejoindre").click()
        await page.get_by_role("button", name="Faire entrer").click()
        await page.wait_for_selector("body[data-state=inCall]", timeout=20_000)
        # The devices' states (connected, battery) reach the doctor too.
        await wait_js(page, "() => window.cabine.panel.deviceStates.size >= 4", what="four devices listed")
        assert "batterie" in await page.locator("#devices").inner_text()

        for kind, label in LABELS.items():
            device = bluetooth.radio.device(DEVICE_FOR_KIND[kind])
            before = len(device.taken)
            await page.get_by_role("button", name=f"Demander une mesure : {label}").click()
            await wait_until(lambda d=device, n=before: len(d.taken) > n, timeout=10, what=f"{kind} measured")
            sent = device.taken[-1]
            expected = decode(
                sent.uuid16, sent.payload, device=DeviceIdentity(address="x"), received_at=datetime.now(UTC)
            )
            value = expected.primary.value
            await wait_js(
                page,
                f"() => window.cabine.panel.history.some((r) => r.kind === '{kind}' && r.value === {value!r})",
                timeout=15,
                what=f"the {kind} reading {value} on the page",
            )
            shown = await page.locator(f"#vital-{kind} .value").get_attribute("data-value")
            assert shown is not None and float(shown) == value
        kinds = await page.evaluate("[...new Set(window.cabine.panel.history.map((r) => r.kind))]")
        assert set(LABELS) <= set(kinds)
        spo2 = await page.locator("#vital-oxygen-saturation").inner_text()
        assert "%" in spo2 and "/min" in spo2
        bp = await page.locator("#vital-blood-pressure").inner_text()
        assert "mmHg" in bp and "pouls" in bp
        await screenshot(page, "pro-bluetooth-devices")


async def test_guided_measurement_round_trip_with_a_real_bleak_path(tmp_path: Path, port: int) -> None:
    """Doctor requests, the cabin screen prompts, the emulated monitor measures, both screens show the value."""
    from tests.conftest import free_port
    from tests.kiosk.test_cabin_screen_browser import doctor_joins, spoken

    options = DemoOptions(
        port=port,
        data_dir=tmp_path / "data",
        ice_addresses=("127.0.0.1",),
        kiosk_port=free_port(),
        devices="bluetooth",
        device_period=None,
    )
    # The citizen takes a moment to put the cuff on: the emulated monitor measures once the prompt is on screen.
    prompt_seen = asyncio.Event()
    running: dict[str, RunningDemo] = {}
    measuring: list[asyncio.Task[None]] = []

    async def citizen_measures(kind: str) -> None:
        async def later() -> None:
            await prompt_seen.wait()
            bluetooth = running["demo"].bluetooth
            assert bluetooth is not None
            await bluetooth.trigger(kind)

        measuring.append(asyncio.create_task(later()))

    async with run_demo(options, trigger=citizen_measures) as demo, chromium(tmp_path / "profile") as browser:
        running["demo"] = demo
        assert demo.kiosk is not None and demo.bluetooth is not None
        cabin = await browser.new_page()
        await cabin.goto(demo.kiosk.url)
        await cabin.get_by_role("button", name="Commencer").click()
        doctor = await doctor_joins(browser, demo)
        await doctor.get_by_role("button", name="Faire entrer").click()
        await cabin.wait_for_selector("body[data-state=in-call]", timeout=20_000)

        monitor = demo.bluetooth.radio.device(DEVICE_FOR_KIND["blood-pressure"])
        before = len(monitor.taken)
        await doctor.get_by_role("button", name="Demander une mesure : Tension artérielle").click()
        await cabin.wait_for_selector("#measure[data-mode=prompt][data-kind=blood-pressure]", timeout=10_000)
        assert await cabin.get_by_role("img", name="Tensiomètre").is_visible()
        await spoken(cabin, "Mettez le brassard autour du bras")
        prompt_seen.set()
        await wait_until(lambda: len(monitor.taken) > before, timeout=10, what="the monitor to measure")
        sent = monitor.taken[-1]
        expected = decode(sent.uuid16, sent.payload, device=DeviceIdentity(address="x"), received_at=datetime.now(UTC))
        systolic = expected.quantity("systolic")
        diastolic = expected.quantity("diastolic")
        assert systolic is not None and diastolic is not None
        shown = f"{systolic.value:.0f}/{diastolic.value:.0f}"
        await cabin.wait_for_selector("#measure[data-mode=reading]", timeout=15_000)
        assert shown in await cabin.locator("#reading").inner_text()
        await wait_js(
            doctor,
            f"() => document.querySelector('#vital-blood-pressure .value')?.textContent.startsWith('{shown}')",
            what="the doctor's screen to show the same blood pressure",
        )
        await screenshot(cabin, "cabin-bluetooth-reading")
