"""The operator's page in headless Chromium: a cabin's incidents show apart from calls for help, with their kind,
in French and English; the operator acknowledges one, the cabin closes another. Real server, real cabin socket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser import assert_accessible, chromium
from tests.signaling.conftest import OPERATOR_KEY, World, receive

pytestmark = pytest.mark.timeout(90)


async def test_incidents_on_the_operator_page(world: World, tmp_path: Path) -> None:
    cabin = await world.cabin("cabin-1")
    for incident in (
        {"kind": "camera-unavailable", "open": True, "detail": "/dev/video0 a disparu"},
        {"kind": "device-missing", "open": True, "subject": "A4:C1:38:00:00:01", "detail": "absent depuis 5 min"},
    ):
        await cabin.send_str(json.dumps({"type": "incident", **incident}))
    await cabin.send_str(json.dumps({"type": "help"}))
    await receive(cabin, "help-status")
    base = str(world.client.make_url("/"))

    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.goto(base + "operator/")
        await page.get_by_label("Clé d'API opérateur").fill(OPERATOR_KEY)
        await page.get_by_role("button", name="Se connecter").click()
        camera = page.locator("li.incident[data-kind=camera-unavailable]")
        await camera.wait_for()
        assert (await camera.locator("strong").inner_text()) == "Caméra indisponible : cabine cabin-1"
        assert "/dev/video0 a disparu" in await camera.inner_text()
        device = page.locator("li.incident[data-kind=device-missing]")
        assert "A4:C1:38:00:00:01" in await device.inner_text()
        # The call for help stays in its own list, first.
        assert await page.locator("#alerts li.alert").count() == 1
        assert await page.locator("#incidents li.incident").count() == 2
        await assert_accessible(page, "operator-incidents")

        await page.get_by_role("button", name="English").click()
        assert (await camera.locator("strong").inner_text()) == "Camera unavailable: cabin cabin-1"
        # Acknowledged by the operator: gone from the page and from the API's open alerts.
        await device.get_by_role("button", name="Seen").click()
        await device.wait_for(state="detached")
        # The cabin's camera is back: the cabin closes its incident, the page follows at its next poll.
        await cabin.send_str(json.dumps({"type": "incident", "kind": "camera-unavailable", "open": False}))
        await page.get_by_text("No incident.").wait_for(timeout=15_000)
        response = await world.client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
        assert [a["kind"] for a in (await response.json())["alerts"]] == ["help"]
    await cabin.close()
