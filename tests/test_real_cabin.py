"""A real cabin, as a town installs it: `cabine serve`, the cabin enrolled, its configuration file, the self-test, and
`cabine gateway` as its own process with its Bluetooth devices, its camera and its screen; a doctor in Chromium.

What the machine lacks is swapped in at the lowest honest layer: the Bluetooth radio is bluezoo's emulated BlueZ on a
private D-Bus (the gateway's own bleak code talks to it, found through DBUS_SYSTEM_BUS_ADDRESS as on a cabin PC), and
the camera is a `file:` source read by av (deleting the file is unplugging the camera, writing it back is plugging it
in again).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page

from cabine.demo.radio import EmulatedRadio
from gateway.devices.gatt import decode
from gateway.devices.readings import DeviceIdentity
from tests.browser import FRAMES_JS, chromium, wait_js
from tests.conftest import free_port
from tests.gateway.test_resilient_media import write_y4m
from tests.test_operator_flow import process

pytestmark = pytest.mark.timeout(240)

# The mean luma of the cabin's video as the doctor's page shows it (the test camera is light grey, the card dark).
LUMA_JS = """() => {
  const video = document.getElementById("remote");
  if (!video || !video.videoWidth) return null;
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 48;
  const context = canvas.getContext("2d");
  context.drawImage(video, 0, 0, 64, 48);
  const pixels = context.getImageData(0, 0, 64, 48).data;
  let sum = 0;
  for (let i = 0; i < pixels.length; i += 4) sum += 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
  return sum / (pixels.length / 4);
}"""


async def cli(*args: str, cwd: Path, timeout: float = 90) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cabine", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def cabin_file(path: Path, *, server: str, ca: Path, key: Path, camera: Path, devices: list[str], screen: int) -> None:
    """The cabin's configuration, as a technician writes it from the README."""
    allow = ", ".join(f'"{address}"' for address in devices)
    path.write_text(
        f"""# the cabin of the Petit-Quevilly town hall
[signaling]
server = "{server}"
ca_file = "{ca}"
key_file = "{key}"

[camera]
source = "file:{camera}"
width = 320
height = 240
fps = 30

[microphone]
source = "test"

[devices]
allow = [{allow}]
adapter = "hci0"

[screen]
port = {screen}
languages = ["fr", "en"]

[ice]
addresses = ["127.0.0.1"]
"""
    )


async def luma(page: Page) -> float:
    value = await page.evaluate(LUMA_JS)
    assert value is not None, "the doctor's page shows no cabin video"
    return float(value)


async def wait_luma(page: Page, *, above: float | None = None, below: float | None = None, what: str) -> None:
    condition = f"v !== null && v > {above}" if above is not None else f"v !== null && v < {below}"
    await wait_js(page, f"() => {{ const v = ({LUMA_JS})(); return {condition}; }}", timeout=20, what=what)


async def open_alerts(operator: aiohttp.ClientSession, cabin: str) -> list[dict[str, Any]]:
    async with operator.get("/api/v1/alerts") as response:
        assert response.status == 200
        alerts: list[dict[str, Any]] = (await response.json())["alerts"]
    return [a for a in alerts if a["cabin_id"] == cabin and a["kind"] != "help"]


async def wait_alerts(operator: aiohttp.ClientSession, cabin: str, kinds: set[str], *, what: str) -> None:
    """Poll the operator's API (as the operator page does) until the cabin's open incidents are `kinds`."""
    seen: set[str] = set()

    async def current() -> bool:
        nonlocal seen
        seen = {a["kind"] for a in await open_alerts(operator, cabin)}
        return seen == kinds

    for _ in range(100):
        if await current():
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}: open incidents {seen}")


async def test_a_real_cabin_from_its_configuration_file(tmp_path: Path, port: int) -> None:
    data, pc = tmp_path / "server", tmp_path / "cabin-pc"
    pc.mkdir()
    server, ca = f"https://127.0.0.1:{port}", data / "certs" / "ca.crt"
    op = ("--server", server, "--api-key-file", str(data / "operator-key"), "--ca-file", str(ca))

    async with process("serve", "--port", str(port), "--data-dir", str(data), cwd=tmp_path, ready="Operator API key:"):
        # The operator registers the cabin; the technician enrolls it from the cabin PC with the one-time code.
        code, out, err = await cli("cabin", "add", "mairie-pq", "--name", "Mairie", "--json", *op, cwd=tmp_path)
        assert code == 0, err
        enrollment = json.loads(out)["enrollment_code"]
        key = pc / "cabin.key"
        code, _, err = await cli(
            "cabin", "enroll", "--server", server, "--cabin", "mairie-pq", "--code", enrollment,
            "--key-file", str(key), "--ca-file", str(ca), cwd=pc,
        )  # fmt: skip
        assert code == 0, err
        start = datetime.now(UTC).replace(second=0, microsecond=0).isoformat()
        code, out, err = await cli(
            "appointment", "create", "--kind", "medical", "--cabin", "mairie-pq", "--start", start,
            "--duration", "60", "--professional", "Dr Martin", "--json", *op, cwd=tmp_path,
        )  # fmt: skip
        assert code == 0, err
        link = json.loads(out)["link"]

        async with EmulatedRadio.of_kinds(period=None) as radio:
            camera = pc / "camera.y4m"
            write_y4m(camera, frames=15)
            screen_port = free_port()
            config = pc / "cabin.toml"
            cabin_file(
                config, server=server, ca=ca, key=key, camera=camera, devices=list(radio.addresses), screen=screen_port
            )

            # The self-test: everything a call needs is there; the devices are seen with their batteries.
            code, out, err = await cli("gateway", "selftest", "--config", str(config), cwd=pc)
            assert code == 0, out + err
            lines = out.splitlines()
            for name in ("camera", "microphone", "bluetooth-adapter", "signaling", "clock"):
                assert any(line.startswith("[ ok ]") and f" {name} " in line for line in lines), (name, out)
            for address in radio.addresses:
                assert any(line.startswith("[ ok ]") and address in line and "battery" in line for line in lines), out
            assert lines[-1].startswith("Ready")
            # The same, for machines; and a device that is not there makes it fail, saying which.
            code, out, err = await cli(
                "gateway", "selftest", "--json", "--config", str(config), "--device", "00:00:5E:00:53:99", cwd=pc
            )
            assert code == 1, out + err
            report = json.loads(out)
            assert report["type"] == "selftest-report" and report["ok"] is False
            missing = next(c for c in report["checks"] if c["name"] == "device:00:00:5E:00:53:99")
            assert missing["status"] == "failed" and "not seen" in missing["detail"]

            async with (
                process("gateway", "--config", str(config), cwd=pc, ready="Cabin mairie-pq: running") as gateway,
                chromium(tmp_path / "browser") as browser,
                aiohttp.ClientSession(
                    base_url=server,
                    headers={"Authorization": f"Bearer {(data / 'operator-key').read_text().strip()}"},
                    connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(ca))),
                ) as operator,
            ):
                # The citizen presses "Commencer" on the cabin screen; the doctor joins and admits them.
                screen = await browser.new_page()
                await screen.goto(f"http://127.0.0.1:{screen_port}/")
                await screen.get_by_role("button", name="Commencer").click()
                await screen.wait_for_selector("body[data-state=waiting]")
                doctor = await browser.new_page()
                await doctor.goto(link)
                await wait_js(doctor, "() => !document.getElementById('join').disabled", what="the preflight")
                await doctor.get_by_role("button", name="Rejoindre").click()
                await doctor.get_by_role("button", name="Faire entrer").click()
                await doctor.wait_for_selector("body[data-state=inCall]", timeout=30_000)
                # The doctor sees the cabin's camera and is seen on the cabin screen.
                await wait_luma(doctor, above=150, what="the cabin's camera on the doctor's page")
                await screen.wait_for_selector("body[data-state=in-call]", timeout=20_000)
                await wait_js(
                    screen,
                    "() => document.getElementById('professional').videoWidth === 640",
                    timeout=20,
                    what="the doctor's video on the cabin screen",
                )
                # A reading taken in the cabin reaches the doctor, through the gateway's own Bluetooth code.
                taken = radio.trigger("thermometer")
                value = doctor.locator("#vital-body-temperature .value")
                await value.wait_for(timeout=20_000)
                sent = decode(
                    taken.uuid16, taken.payload, device=DeviceIdentity(address="-"), received_at=datetime.now(UTC)
                )
                shown = float(await value.get_attribute("data-value") or "nan")
                assert shown == pytest.approx(sent.quantities[0].value)
                await doctor.evaluate("window.cabine.pc.__test_marker = 'first'")

                # The camera is unplugged mid-call: the doctor sees the card, the operator an alert.
                camera.unlink()
                await wait_luma(doctor, below=80, what="the 'camera unavailable' card")
                await wait_alerts(operator, "mairie-pq", {"camera-unavailable"}, what="the camera alert")
                # Plugged back: the picture returns, the alert clears, and it was the same call all along.
                write_y4m(camera, frames=15)
                await wait_luma(doctor, above=150, what="the camera back on the doctor's page")
                await wait_alerts(operator, "mairie-pq", set(), what="the camera alert to clear")
                assert await doctor.evaluate("window.cabine.pc.__test_marker") == "first"
                assert await doctor.evaluate("window.cabine.pc.connectionState") == "connected"

                # The Bluetooth stack dies mid-call: the call goes on.
                radio.kill_emulator()
                before = await doctor.evaluate(FRAMES_JS)
                await wait_js(
                    doctor,
                    f"async () => (await ({FRAMES_JS})()) > {before} + 60",
                    timeout=20,
                    what="the call's video to keep flowing after the Bluetooth emulator died",
                )
                assert gateway.returncode is None, "the gateway process must survive"
                assert await doctor.evaluate("window.cabine.pc.connectionState") == "connected"
                assert await doctor.locator("body").get_attribute("data-state") == "inCall"
