"""Supervising a cabin from afar, for real: a gateway with its Bluetooth devices (bleak against BlueZ emulated by
bluezoo: no radio here) connects to a real signaling server; the operator's dashboard (headless Chromium), the REST
API, /metrics and a booking system's webhook endpoint on loopback are checked as a device is switched off, a battery
drains, the cabin's clock drifts, configurations good and bad arrive, the citizen calls for help, and the gateway
stops."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from cabine.demo.emulated import EmulatedKind
from cabine.demo.radio import EmulatedRadio
from gateway.app import Cabin
from gateway.config import DeviceAllowlist
from gateway.ice import LOOPBACK, host_addresses
from gateway.media.spec import VideoFormat
from gateway.media.synthetic import PatternVideoTrack, ToneAudioTrack
from gateway.session import rtc_configuration
from signaling.webhooks import WebhookTarget
from tests.browser import chromium
from tests.conftest import free_port, wait_until
from tests.signaling.conftest import OPERATOR_KEY, World, follow_fleet, open_alerts, receive_until, world
from tests.webhook_receiver import SECRET, Receiver, webhook_receiver

__all__ = ["world"]

pytestmark = pytest.mark.timeout(180)
AUTH = {"Authorization": f"Bearer {OPERATOR_KEY}"}
KINDS = (EmulatedKind.THERMOMETER, EmulatedKind.OXIMETER)


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    with host_addresses(LOOPBACK):
        yield


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver(free_port()) as running:
        yield running


@pytest.fixture
def server_options(receiver: Receiver) -> dict[str, Any]:
    # The fleet's thresholds shortened from minutes to seconds, so that the test sees them pass.
    return {
        "webhooks": (WebhookTarget(receiver.url, SECRET),),
        "refresh_interval": 0.2,
        "offline_after": timedelta(seconds=2),
        "device_missing_after": timedelta(seconds=2),
    }


@pytest.fixture
async def radio() -> AsyncIterator[EmulatedRadio]:
    async with EmulatedRadio.of_kinds(KINDS, period=None) as running:
        yield running


async def get(world: World, path: str) -> Any:
    async with world.client.get(path, headers=AUTH) as response:
        assert response.status == 200, f"{path}: {response.status} {await response.text()}"
        return await response.json() if response.content_type == "application/json" else await response.text()


async def alerts_of(world: World, cabin: str = "cabin-1") -> dict[str, dict[str, Any]]:
    """The cabin's open alerts by "kind subject"."""
    body = await get(world, "/api/v1/alerts")
    return {f"{a['kind']} {a['subject']}".strip(): a for a in body["alerts"] if a["cabin_id"] == cabin}


async def until_alerts(world: World, predicate: Any, *, what: str, timeout: float = 30) -> dict[str, dict[str, Any]]:
    """Follow the dashboard's live feed until the cabin's open alerts satisfy `predicate`; then the REST view."""
    await follow_fleet(world, lambda snapshot: bool(predicate(open_alerts(snapshot))), what=what, timeout=timeout)
    current = await alerts_of(world)
    assert predicate(set(current)), f"{what}: the REST API shows {sorted(current)}"
    return current


async def metric(world: World, line_start: str) -> float | None:
    text = await get(world, "/metrics")
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_an_operator_supervises_a_cabin_from_afar(
    world: World, radio: EmulatedRadio, receiver: Receiver, tmp_path: Path
) -> None:
    thermometer, oximeter = (radio.device(kind).address for kind in KINDS)
    async with (
        Cabin(
            world.cabin_config(devices=DeviceAllowlist.parse(radio.addresses), bluetooth_adapter=radio.adapter)
        ) as cabin,
        chromium(tmp_path / "profile") as browser,
    ):
        gateway = cabin.gateway
        hub = world.hub
        # The operator's dashboard, open all along: it must follow each step by itself.
        page = await browser.new_page()
        await page.goto(str(world.client.make_url("/operator/")))
        await page.get_by_label("Clé d'API opérateur").fill(OPERATOR_KEY)
        await page.get_by_role("button", name="Se connecter").click()
        row = page.locator('#cabins tr[data-cabin-id="cabin-1"]')

        async def shown(kind: str) -> str:
            alert = page.locator(f"li.incident[data-kind={kind}]")
            await alert.first.wait_for(timeout=30_000)
            return str(await alert.first.inner_text())

        async def gone(kind: str) -> None:
            await page.locator(f"li.incident[data-kind={kind}]").first.wait_for(state="detached", timeout=60_000)

        def devices_reported() -> bool:
            latest = hub.fleet.latest("cabin-1")
            return latest is not None and sum(d.connected for d in latest.heartbeat.devices) == 2

        await wait_until(devices_reported, timeout=30, what="both devices connected in a heartbeat")
        fleet = await get(world, "/api/v1/fleet")
        (entry,) = [c for c in fleet["cabins"] if c["id"] == "cabin-1"]
        assert entry["online"] is True and entry["alerts"] == []
        assert {d["address"]: d["battery"] for d in entry["heartbeat"]["devices"]} == {thermometer: 87, oximeter: 87}
        assert await metric(world, f'cabine_device_battery_percent{{cabin="cabin-1",device="{oximeter}"}}') == 87.0
        assert await metric(world, 'cabine_cabin_up{cabin="cabin-1"}') == 1.0
        await page.wait_for_function(
            "row => row && row.textContent.includes('87 %')", arg=await row.element_handle(timeout=30_000)
        )

        # 1. The oximeter's battery drains: an alert, a webhook, a gauge; charged again, all clear.
        radio.set_battery(EmulatedKind.OXIMETER, 12)
        alerts = await until_alerts(world, lambda kinds: f"battery-low {oximeter}" in kinds, what="battery low")
        assert "battery at 12 %" in alerts[f"battery-low {oximeter}"]["detail"]
        await receiver.wait_for("alert.opened", lambda d: d["kind"] == "battery-low" and d["subject"] == oximeter)
        assert await metric(world, f'cabine_device_battery_percent{{cabin="cabin-1",device="{oximeter}"}}') == 12.0
        assert "12 %" in await shown("battery-low")
        radio.set_battery(EmulatedKind.OXIMETER, 90)
        await until_alerts(world, lambda kinds: not kinds, what="the battery alert cleared")
        await gone("battery-low")
        await receiver.wait_for("alert.closed", lambda d: d["kind"] == "battery-low")

        # 2. The thermometer is switched off: missing after the threshold; back on, the alert clears by itself.
        await radio.switch_off(EmulatedKind.THERMOMETER)
        await until_alerts(world, lambda kinds: f"device-missing {thermometer}" in kinds, what="thermometer missing")
        await receiver.wait_for("alert.opened", lambda d: d["kind"] == "device-missing")
        assert await metric(world, f'cabine_device_connected{{cabin="cabin-1",device="{thermometer}"}}') == 0.0
        await shown("device-missing")
        await radio.switch_on(EmulatedKind.THERMOMETER)
        await until_alerts(world, lambda kinds: not kinds, what="the thermometer back", timeout=60)
        await gone("device-missing")

        # 3. The cabin's clock drifts 20 s ahead: the operator is told; set right, the alert goes.
        gateway.heartbeats.wall_clock = lambda: datetime.now(UTC) + timedelta(seconds=20)
        gateway.heartbeats.period = 0.5
        alerts = await until_alerts(world, lambda kinds: "clock-skew" in kinds, what="the clock off")
        assert "s ahead" in alerts["clock-skew"]["detail"]
        await shown("clock-skew")
        gateway.heartbeats.wall_clock = lambda: datetime.now(UTC)
        await until_alerts(world, lambda kinds: not kinds, what="the clock right again")
        await gone("clock-skew")

        # 4. A good configuration applies at once, without a restart; a bad one is refused with the cabin's reason.
        async with world.client.put(
            "/api/v1/cabins/cabin-1/config", headers=AUTH, json={"settings": {"camera": {"width": 1280, "height": 720}}}
        ) as response:
            assert response.status == 200
        await wait_until(lambda: gateway.config_version == "v1", timeout=10, what="v1 applied")
        assert gateway.config.video_format == VideoFormat(1280, 720, 30)
        await wait_until(
            lambda: (latest := hub.fleet.latest("cabin-1")) is not None and latest.heartbeat.config_version == "v1",
            timeout=10,
            what="the heartbeat to name v1 at once (a change is not kept for the next beat)",
        )
        async with world.client.put(
            "/api/v1/cabins/cabin-1/config", headers=AUTH, json={"settings": {"camera": {"width": 1000, "height": 720}}}
        ) as response:
            assert response.status == 200
        await wait_until(
            lambda: (said := hub.config_status.get("cabin-1")) is not None and said.version == 2,
            timeout=10,
            what="the cabin's answer to v2",
        )
        config = await get(world, "/api/v1/cabins/cabin-1/config")
        assert config["status"] == "refused" and "multiple of 16" in config["refusal"]
        assert config["running"] == "v1"

        # 5. The citizen calls for help: the operator's alert, the booking system's webhook.
        assert await gateway.request_help(None)
        await until_alerts(world, lambda kinds: "help" in kinds, what="the call for help")
        await receiver.wait_for("alert.opened", lambda d: d["kind"] == "help")
        await page.locator("#alerts li.alert").wait_for(timeout=10_000)
        await cabin.close()  # (closing again when the block ends is a no-op)
        # 6. The gateway stops: offline after the threshold, on the dashboard, in /metrics, to the booking system.
        await until_alerts(world, lambda kinds: "offline" in kinds, what="the cabin offline")
        await shown("offline")

    await receiver.wait_for("alert.opened", lambda d: d["kind"] == "offline")
    assert await metric(world, 'cabine_cabin_up{cabin="cabin-1"}') == 0.0
    assert receiver.bad_signatures == 0
    # Nothing sent to the booking system or kept on the server carries a reading: only parts and their state.
    alert_fields = {"alert_id", "cabin_id", "kind", "subject", "detail", "appointment_id"}
    assert all(set(e["data"]) <= alert_fields for e in receiver.events if e["type"].startswith("alert."))


class Doctor:
    """The doctor's page over a real aiortc peer: sends a camera and a microphone (the cabin watches that the
    professional is still there), says hello on the vitals channel and acknowledges each reading."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(rtc_configuration(()))
        self.readings: list[dict[str, Any]] = []
        self.pc.on("datachannel", self._on_channel)

    def _on_channel(self, channel: RTCDataChannel) -> None:
        channel.send(json.dumps({"v": 1, "type": "hello", "last_seq": 0}))

        @channel.on("message")
        def on_message(text: str) -> None:
            message = json.loads(text)
            if message.get("type") == "reading":
                self.readings.append(message)
                channel.send(json.dumps({"v": 1, "type": "ack", "seq": message["seq"]}))

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        self.pc.addTrack(PatternVideoTrack(320, 240, 15))
        self.pc.addTrack(ToneAudioTrack())
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)


def quantity_values(readings: list[dict[str, Any]]) -> set[float]:
    values: set[float] = set()
    for message in readings:
        for quantity in message["reading"]["quantities"]:
            if isinstance(quantity.get("value"), int | float):
                values.add(float(quantity["value"]))
    return values


async def test_nothing_the_operator_sees_carries_a_reading_or_a_name(
    world: World, radio: EmulatedRadio, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A medical call with readings flowing: the dashboard's data, the heartbeats, /metrics, the webhooks, the
    audit and the logs of both programs are captured, and no reading's value nor anyone's name is in them."""
    caplog.set_level(logging.INFO)
    config = world.cabin_config(devices=DeviceAllowlist.parse(radio.addresses), bluetooth_adapter=radio.adapter)
    professional = Doctor()
    async with Cabin(config) as cabin:
        gateway, hub = cabin.gateway, world.hub
        await wait_until(lambda: len(gateway.devices) == 2, timeout=30, what="both devices followed")
        await gateway.check_in("apt_med")
        pro = await world.professional(world.medical)
        while not (await receive_until(pro, "room"))["citizen_present"]:
            pass  # the citizen's check-in has not reached signaling yet
        await pro.send_str(json.dumps({"type": "admit", "appointment_id": "apt_med"}))
        offer = await receive_until(pro, "offer")
        answer = await professional.answer(offer["sdp"])
        await pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_med", "sdp": answer}))
        # A temperature no log line, figure or id could hold by chance: 37.73 °C (IEEE-11073 FLOAT 3773e-2).
        await wait_until(lambda: radio.subscribed(EmulatedKind.THERMOMETER), timeout=15, what="thermometer subscribed")
        radio.send_raw(EmulatedKind.THERMOMETER, b"\x00\xbd\x0e\x00\xfe")
        await wait_until(lambda: len(professional.readings) >= 1, timeout=15, what="the reading at the doctor's")
        radio.set_battery(EmulatedKind.OXIMETER, 11)  # an alert, hence a webhook, during the session
        await receiver.wait_for("alert.opened", lambda d: d["kind"] == "battery-low")
        await wait_until(
            lambda: (latest := hub.fleet.latest("cabin-1")) is not None and latest.heartbeat.in_session,
            timeout=15,
            what="a heartbeat during the session",
        )
        captured = {
            "dashboard": json.dumps(await get(world, "/api/v1/fleet"))
            + json.dumps(await get(world, "/api/v1/cabins/cabin-1/status")),
            "heartbeats": json.dumps([h.to_json() for h in hub.fleet.history("cabin-1")]),
            "metrics": await get(world, "/metrics"),
            "webhooks": json.dumps(receiver.events),
            "audit": json.dumps([e.detail for e in world.store.audit_log(limit=1000)]),
            "logs": caplog.text,
        }
        await pro.close()
    await professional.pc.close()

    values = quantity_values(professional.readings)
    assert values == {37.73}, "the doctor received the reading"
    for where, text in captured.items():
        for value in values:
            for shown in {f"{value:g}", f"{value:.1f}", str(value), f"{value:.2f}".replace(".", ",")}:
                pattern = rf"(?<![\d.]){re.escape(shown)}(?![\d])"
                assert not re.search(pattern, text), f"a reading's value ({shown}) is in the {where}"
        # The professional's name stays in the booking; the citizen has none anywhere in Cabine.
        assert "Dr A" not in text or where == "dashboard", f"the professional's name is in the {where}"
