"""The operator's dashboard in headless Chromium, live over its WebSocket: calls for help apart from the cabins'
incidents, in French and English; a cabin's heartbeats, its devices' batteries and the alerts they raise and clear,
without a reload nor a request; a cabin's detail with its history and a self-test run from the page; a refused key;
a dropped socket that comes back. Real server, real cabin sockets, real browser."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Request, WebSocketRoute

from tests.browser import assert_accessible, chromium
from tests.signaling.conftest import OPERATOR_KEY, World, receive, receive_until

pytestmark = pytest.mark.timeout(60)

OXIMETER = "A4:C1:38:00:00:01"
LIVE = re.compile(r"/api/v1/fleet/live$")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def heartbeat(battery: int = 85, rtt_ms: float = 42.0, last_reading_at: str | None = None) -> str:
    """A cabin's heartbeat (signaling/protocol.py `Heartbeat`): camera, microphone, one oximeter, a good link."""
    return json.dumps(
        {
            "type": "heartbeat",
            "software": "cabine 1.4.0",
            "uptime_s": 3725.0,
            "config_version": "sha256:0123456789ab",
            "sent_at": now_iso(),
            "camera_present": True,
            "microphone_present": True,
            "camera_fps": 30.0,
            "microphone_level_db": -48.0,
            "devices": [
                {
                    "address": OXIMETER,
                    "name": "Oxymètre",
                    "seen": True,
                    "connected": True,
                    "battery": battery,
                    "last_reading_at": last_reading_at,
                }
            ],
            "rtt_ms": rtt_ms,
            "loss": 0.0,
            "cpu": 0.12,
            "memory": 0.4,
            "disk": 0.3,
            "temperature_c": 47.0,
            "in_session": False,
        }
    )


async def log_in(page: Page, world: World, key: str = OPERATOR_KEY) -> None:
    await page.goto(str(world.client.make_url("/operator/")))
    await page.get_by_label("Clé d'API opérateur").fill(key)
    await page.get_by_role("button", name="Se connecter").click()


async def live(page: Page) -> None:
    await page.locator("#connection[data-state=live]").wait_for()


def page_errors(page: Page) -> list[str]:
    """Script errors and console errors (a CSP violation is one) from now on; an HTTP error status is not one."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None,
    )
    return errors


def cabin_row(page: Page, cabin_id: str) -> Any:
    return page.locator(f'#cabins tr[data-cabin-id="{cabin_id}"]')


async def test_incidents_on_the_operator_page(world: World, tmp_path: Path) -> None:
    cabin = await world.cabin("cabin-1")
    for incident in (
        {"kind": "camera-unavailable", "open": True, "detail": "/dev/video0 a disparu"},
        {"kind": "device-missing", "open": True, "subject": "A4:C1:38:00:00:01", "detail": "absent depuis 5 min"},
    ):
        await cabin.send_str(json.dumps({"type": "incident", **incident}))
    await cabin.send_str(json.dumps({"type": "help"}))
    await receive(cabin, "help-status")

    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await log_in(page, world)
        camera = page.locator("li.incident[data-kind=camera-unavailable]")
        await camera.wait_for()
        assert (await camera.locator("strong").inner_text()) == "Caméra indisponible : cabine cabin-1"
        assert "/dev/video0 a disparu" in await camera.inner_text()
        device = page.locator("li.incident[data-kind=device-missing]")
        assert "A4:C1:38:00:00:01" in await device.inner_text()
        # The call for help stays in its own list, first.
        assert await page.locator("#alerts li.alert").count() == 1
        assert await page.locator("#incidents li.incident").count() == 2
        assert "Nouvel appel à l'aide : cabine cabin-1." in await page.locator("#status").inner_text()
        await assert_accessible(page, "operator-incidents")

        await page.get_by_role("button", name="English").click()
        assert (await camera.locator("strong").inner_text()) == "Camera unavailable: cabin cabin-1"
        # Acknowledged by the operator: gone from the page and from the API's open alerts; focus moves to the
        # neighbour's button rather than being lost.
        camera_alert = await camera.get_attribute("data-alert-id")
        await device.get_by_role("button", name="Seen").focus()
        await page.keyboard.press("Enter")
        await device.wait_for(state="detached")
        assert await page.evaluate("document.activeElement.dataset.key") == f"seen:{camera_alert}"
        # The cabin's camera is back: the cabin closes its incident, the page follows live.
        await cabin.send_str(json.dumps({"type": "incident", "kind": "camera-unavailable", "open": False}))
        await page.get_by_text("No incident.").wait_for(timeout=5_000)
        # The call for help is resolved from the page too; the cabin's screen is told.
        await page.get_by_role("button", name="Resolved: Call for help: cabin cabin-1").click()
        await page.get_by_text("No call for help.").wait_for(timeout=5_000)
        assert (await receive_until(cabin, "help-status"))["open"] is False
        response = await world.client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
        assert (await response.json())["alerts"] == []
    await cabin.close()


async def test_heartbeats_and_battery_alert_show_live(world: World, tmp_path: Path) -> None:
    cabin = await world.cabin("cabin-1")
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        api_requests: list[str] = []

        def on_request(request: Request) -> None:
            if "/api/" in request.url and request.resource_type != "websocket":
                api_requests.append(f"{request.method} {request.url}")

        page.on("request", on_request)
        errors = page_errors(page)
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        await log_in(page, world)
        await live(page)
        row = cabin_row(page, "cabin-1")
        await row.get_by_text("En ligne, état inconnu").wait_for()
        await page.evaluate("window.notReloaded = true")

        await cabin.send_str(heartbeat(battery=85))
        await row.get_by_text("Oxymètre : pile 85 %").wait_for(timeout=5_000)
        text = await row.inner_text()
        for expected in ("Prête", "Caméra OK", "Micro OK", "Réseau bon (42 ms)", "Jamais lancé", "aucune"):
            assert expected in text, (expected, text)
        # Today: the medical appointment open now, the bank one in two hours.
        appointments = await row.locator("td.appointments").inner_text()
        assert appointments.startswith("2 en tout · en cours : médical"), appointments
        assert "prochain à" in appointments and "banque" in appointments, appointments
        assert await cabin_row(page, "cabin-2").get_by_text("Hors ligne").count() == 1
        assert await cabin_row(page, "cabin-off").get_by_text("Désactivée").count() == 1
        await assert_accessible(page, "operator-overview")

        # A flat battery raises an alert, live, and says so in the live region.
        await cabin.send_str(heartbeat(battery=15))
        battery = page.locator("li.incident[data-kind=battery-low]")
        await battery.wait_for(timeout=5_000)
        assert (await battery.locator("strong").inner_text()) == "Pile faible : cabine cabin-1"
        assert "Oxymètre : pile à 15 %" in await battery.inner_text()
        assert "Nouvel incident : Pile faible, cabine cabin-1." in await page.locator("#status").inner_text()
        assert "Oxymètre : pile faible (15 %)" in await row.inner_text()
        assert "À vérifier" in await row.inner_text()
        assert "1" in await row.locator("td.count").inner_text()
        await assert_accessible(page, "operator-battery-alert")

        # Charged again: the server closes the alert by itself, the page follows.
        await cabin.send_str(heartbeat(battery=80))
        await battery.wait_for(state="detached", timeout=5_000)
        await page.get_by_text("Aucun incident.").wait_for()
        await row.get_by_text("Oxymètre : pile 80 %").wait_for()
        # All of it came over the one socket: no reload, no request, no polling.
        assert await page.evaluate("window.notReloaded") is True
        assert api_requests == []
        assert len(sockets) == 1 and LIVE.search(sockets[0]), sockets

        # The cabin goes away: offline at once, its health line kept but marked as the last known state.
        await cabin.close()
        await row.get_by_text("Hors ligne").wait_for(timeout=5_000)
        assert "Dernier état connu, à " in await row.locator("td.health").inner_text()
        assert errors == []


async def test_detail_view_history_and_selftest(world: World, tmp_path: Path) -> None:
    cabin = await world.cabin("cabin-1")
    reading = "2025-03-04T08:15:42.000Z"
    await cabin.send_str(heartbeat(battery=90, rtt_ms=30.0, last_reading_at=reading))
    await cabin.send_str(heartbeat(battery=88, rtt_ms=55.0, last_reading_at=reading))
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        errors = page_errors(page)
        await log_in(page, world)
        row = cabin_row(page, "cabin-1")
        await row.get_by_text("Oxymètre : pile 88 %").wait_for(timeout=5_000)

        await row.get_by_role("button", name="Détails : cabine cabin-1").click()
        dialog = page.get_by_role("dialog", name="Cabine cabin-1")
        await dialog.wait_for()
        history = dialog.locator("#history tr")
        await history.nth(1).wait_for(timeout=5_000)
        assert await history.count() == 2
        assert "55 ms" in await history.nth(0).inner_text()  # newest first
        assert "30 ms" in await history.nth(1).inner_text()
        assert await dialog.locator("#history-chart canvas").count() == 1
        device = dialog.locator(f'#devices tr[data-address="{OXIMETER}"]')
        device_text = await device.inner_text()
        assert "Oxymètre" in device_text and "connecté" in device_text and "88 %" in device_text, device_text
        last_reading = device.locator("time")
        assert await last_reading.get_attribute("datetime") == reading
        assert re.fullmatch(r"\d\d:\d\d:\d\d", await last_reading.inner_text())  # the time only, in local time
        now = await dialog.locator("#detail-now").inner_text()
        assert "fonctionne (30 images/s)" in now and "1 h 02 min" in now and "cabine 1.4.0" in now, now
        events = await dialog.locator("#events").inner_text()
        assert "cabine connectée (cabine)" in events, events
        # No settings sent from afar yet: the cabin runs its own file, and the form shows the defaults.
        await dialog.locator("#config-form").wait_for()
        config_state = await dialog.locator("#config-state").inner_text()
        assert "Aucun réglage envoyé depuis le serveur" in config_state, config_state
        assert "son fichier de réglages local (sha256:0123456789ab)" in config_state, config_state
        assert await dialog.get_by_label("Taille de l'image").input_value() == "640x480"
        # A new heartbeat joins the history while the detail is open.
        await cabin.send_str(heartbeat(battery=87, rtt_ms=61.0, last_reading_at=reading))
        await history.nth(2).wait_for(timeout=5_000)
        assert "61 ms" in await history.nth(0).inner_text()
        await assert_accessible(page, "operator-detail")

        # The self-test, run from the page: the cabin is asked, answers a failure, the page shows it.
        await dialog.get_by_role("button", name="Lancer l'autotest").click()
        request = await receive_until(cabin, "selftest-request")
        await cabin.send_str(
            json.dumps(
                {
                    "type": "selftest-report",
                    "request_id": request["request_id"],
                    "ok": False,
                    "checks": [
                        {"name": "camera", "status": "failed", "detail": "no frame within 5 s", "required": True},
                        {"name": "microphone", "status": "ok", "detail": "-48 dBFS", "required": True},
                        {"name": "clock", "status": "skipped", "detail": "", "required": False},
                    ],
                    "finished_at": now_iso(),
                }
            )
        )
        await dialog.get_by_text("Autotest terminé : des vérifications ont échoué").wait_for(timeout=10_000)
        failed = dialog.locator("#selftest-checks li[data-check=camera][data-status=failed]")
        assert "Caméra : échoué" in await failed.inner_text()
        assert "no frame within 5 s" in await failed.inner_text()
        assert "Micro : réussi" in await dialog.locator("#selftest-checks").inner_text()
        assert "(facultatif)" in await dialog.locator("li[data-check=clock]").inner_text()
        assert "Dernier autotest, à " in await dialog.locator("#selftest-verdict").inner_text()
        await assert_accessible(page, "operator-detail-selftest")

        # Escape closes the detail; focus goes back to the row's button, whose row now says the self-test failed.
        await page.keyboard.press("Escape")
        await dialog.wait_for(state="hidden")
        assert await page.evaluate("document.activeElement.dataset.key") == "detail:cabin-1"
        await row.get_by_text(re.compile(r"Échoué à .* : Caméra")).wait_for(timeout=5_000)
        await page.locator("li.incident[data-kind=selftest-failed]").wait_for(timeout=5_000)

        # A cabin that is not connected: the page says so in plain words.
        await cabin_row(page, "cabin-2").get_by_role("button", name="Détails : cabine cabin-2").click()
        other = page.get_by_role("dialog", name="Cabine cabin-2")
        await other.get_by_role("button", name="Lancer l'autotest").click()
        await other.get_by_text("La cabine n'est pas connectée : l'autotest ne peut pas être lancé.").wait_for()
        assert await other.get_by_text("La cabine ne signale aucun appareil médical.").is_visible()
        await other.get_by_role("button", name="Fermer").click()
        await other.wait_for(state="hidden")
        assert errors == []
    await cabin.close()


@pytest.mark.parametrize("server_options", [{"selftest_timeout": 0.5}])
async def test_selftest_without_an_answer(world: World, tmp_path: Path) -> None:
    cabin = await world.cabin("cabin-1")
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await log_in(page, world)
        await cabin_row(page, "cabin-1").get_by_role("button", name="Détails : cabine cabin-1").click()
        dialog = page.get_by_role("dialog", name="Cabine cabin-1")
        await dialog.get_by_role("button", name="Lancer l'autotest").click()
        await receive_until(cabin, "selftest-request")  # and no answer
        await dialog.get_by_text("La cabine n'a pas répondu à temps.").wait_for(timeout=10_000)
        # The button works again for a new try.
        assert await dialog.get_by_role("button", name="Lancer l'autotest").get_attribute("aria-disabled") is None
    await cabin.close()


async def test_refused_key_and_reconnection(world: World, tmp_path: Path) -> None:
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        routes: list[WebSocketRoute] = []

        def through(route: WebSocketRoute) -> None:
            # The page's socket, passed through to the real server, so that the test can drop it.
            route.connect_to_server()
            routes.append(route)

        await page.route_web_socket(LIVE, through)
        await log_in(page, world, key="not-the-key")
        await page.get_by_text("Clé refusée : vérifiez-la.").wait_for(timeout=5_000)
        assert await page.get_by_label("Clé d'API opérateur").is_visible()
        assert await page.evaluate("sessionStorage.length") == 0
        assert await page.locator("#cabins-section").is_hidden()

        await page.get_by_label("Clé d'API opérateur").fill(OPERATOR_KEY)
        await page.get_by_role("button", name="Se connecter").click()
        await live(page)
        await cabin_row(page, "cabin-1").wait_for()
        assert len(routes) == 2

        # The socket drops: the page says it is reconnecting, keeps what it knew (marked as dated), and comes back.
        await routes[-1].close(code=1012, reason="server restart")
        reconnecting = page.locator("#connection[data-state=reconnecting]")
        await reconnecting.wait_for(timeout=5_000)
        assert re.match(r"Connexion perdue : nouvel essai dans \d+ s \(essai n° 1\)", await reconnecting.inner_text())
        assert "Ces informations datent de" in await page.locator("#stale").inner_text()
        assert await cabin_row(page, "cabin-1").is_visible()
        await assert_accessible(page, "operator-reconnecting")
        await live(page)
        assert len(routes) == 3
        assert await page.locator("#stale").is_hidden()
        await page.get_by_text("Connexion rétablie.").wait_for()


async def test_remote_settings_form(world: World, tmp_path: Path) -> None:
    cabin = await world.cabin("cabin-1")
    await cabin.send_str(heartbeat())
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await log_in(page, world)
        row = cabin_row(page, "cabin-1")
        await row.get_by_role("button", name="Détails : cabine cabin-1").click()
        dialog = page.get_by_role("dialog", name="Cabine cabin-1")
        form = dialog.locator("#config-form")
        await form.wait_for()
        assert await form.get_by_label("Images par seconde (de 5 à 30)").input_value() == "30"
        assert await form.get_by_label("Français").is_checked() and await form.get_by_label("English").is_checked()
        await assert_accessible(page, "operator-config")

        # Refused by the page before it reaches the server: plain words, focus on the field.
        fps = form.get_by_label("Images par seconde (de 5 à 30)")
        await fps.fill("50")
        await form.get_by_role("button", name="Envoyer à la cabine").click()
        await dialog.get_by_text("Les images par seconde doivent être un nombre entier de 5 à 30.").wait_for()
        assert await page.evaluate("document.activeElement.id") == "config-fps"
        assert await fps.get_attribute("aria-invalid") == "true"
        allow = form.get_by_label("Appareils médicaux autorisés, un par ligne")
        await fps.fill("15")
        await allow.fill("a4:c1:38:00:00:01\nfrigo")
        await form.get_by_role("button", name="Envoyer à la cabine").click()
        await dialog.get_by_text("« frigo » n'est ni une adresse Bluetooth ni un type d'appareil connu.").wait_for()

        # A new video size: version 1 goes to the cabin, pending until it answers, then applied. Only what the
        # operator changed is sent: the languages left as shown stay the cabin's own.
        await form.get_by_label("Taille de l'image").select_option("1280x720")
        await allow.fill("a4:c1:38:00:00:01\nthermometer")
        battery = form.get_by_label("Alerte quand la batterie d'un appareil passe sous (%)")
        assert await battery.input_value() == "20"
        await battery.fill("30")
        await form.get_by_role("button", name="Envoyer à la cabine").click()
        sent = await receive_until(cabin, "configure")
        assert sent["version"] == 1
        assert sent["settings"] == {
            "camera": {"width": 1280, "height": 720, "fps": 15},
            "devices": {"allow": [OXIMETER, "thermometer"]},
            "thresholds": {"battery_low": 30},
        }
        await dialog.get_by_text("Version n° 1 envoyée : en attente de la cabine.").wait_for()
        await dialog.locator("#config-state[data-status=pending]").wait_for()
        assert await allow.input_value() == f"{OXIMETER}\nthermometer"  # as the server normalised it
        await cabin.send_str(json.dumps({"type": "config-status", "version": 1, "state": "applied"}))
        await dialog.locator("#config-state[data-status=applied]").wait_for(timeout=5_000)
        await cabin.send_str(heartbeat().replace("sha256:0123456789ab", "v1"))
        await dialog.get_by_text("La cabine fonctionne avec : la version n° 1.").wait_for(timeout=5_000)
        assert "Dernière version envoyée : n° 1" in await dialog.locator("#config-state").inner_text()

        # Sending the form as shown changes nothing, and says so.
        await form.get_by_role("button", name="Envoyer à la cabine").click()
        await dialog.get_by_text("Rien n'a changé : modifiez un réglage avant d'envoyer.").wait_for()

        # The cabin refuses the next one: the reason shows, in the detail and on the overview.
        await fps.fill("20")
        await form.get_by_role("button", name="Envoyer à la cabine").click()
        assert (await receive_until(cabin, "configure"))["version"] == 2
        reason = "not applied: the camera cannot give 1280x720 at 20 fps"
        await cabin.send_str(json.dumps({"type": "config-status", "version": 2, "state": "refused", "reason": reason}))
        refusal = dialog.locator("#config-refusal")
        await refusal.wait_for(timeout=5_000)
        assert await refusal.inner_text() == f"Raison donnée par la cabine : {reason}"
        assert "La cabine a refusé la dernière version" in await dialog.locator("#config-state").inner_text()
        await assert_accessible(page, "operator-config-refused")
        events = dialog.locator("#events")
        await events.get_by_text("réglages refusés (cabine)").wait_for(timeout=5_000)
        assert "réglages appliqués (cabine)" in await events.inner_text()
        await dialog.get_by_role("button", name="Fermer").click()
        await row.get_by_text("Réglages n° 2 refusés").wait_for()
        assert "À vérifier" in await row.inner_text()
    await cabin.close()
