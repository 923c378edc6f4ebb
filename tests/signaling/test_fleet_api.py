"""Fleet supervision on a real server: heartbeats from a cabin's socket, the alerts they raise and clear, the live
dashboard feed, /metrics, remote configuration, the self-test told to the professional, and signed webhooks to a
booking system's endpoint on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import WSMsgType

from signaling.webhooks import WebhookTarget
from tests.conftest import free_port
from tests.signaling.conftest import OPERATOR_KEY, Clock, World, follow_fleet, receive, receive_until
from tests.webhook_receiver import SECRET, Receiver, webhook_receiver

pytestmark = pytest.mark.timeout(60)
AUTH = {"Authorization": f"Bearer {OPERATOR_KEY}"}
THERMO = "AA:BB:CC:DD:EE:01"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver(free_port()) as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC))


@pytest.fixture
def server_options(receiver: Receiver, clock: Clock) -> dict[str, Any]:
    return {
        "webhooks": (WebhookTarget(receiver.url, SECRET),),
        "refresh_interval": 0.1,
        "clock": clock,
        "device_missing_after": timedelta(minutes=5),
    }


def heartbeat(clock: Clock, *, battery: int = 80, skew: float = 0.0, **changes: Any) -> str:
    sent = clock.now + timedelta(seconds=skew)
    data = {
        "type": "heartbeat",
        "software": "0.1.0",
        "uptime_s": 42.0,
        "config_version": "sha256:abc",
        "sent_at": sent.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "camera_present": True,
        "microphone_present": True,
        "devices": [
            {"address": THERMO, "name": "Thermo", "seen": True, "connected": True, "battery": battery},
        ],
        "rtt_ms": 12.0,
        "loss": 0.0,
        "cpu": 0.3,
        "memory": 0.4,
        "disk": 0.2,
        "temperature_c": 51.0,
        "in_session": False,
        **changes,
    }
    return json.dumps(data)


async def api(world: World, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with world.client.request(method, path, headers=AUTH, **kwargs) as response:
        text = await response.text()
        return response.status, (json.loads(text) if text and text[0] in "[{" else text)


async def open_kinds(world: World, cabin: str = "cabin-1") -> set[str]:
    _, body = await api(world, "GET", "/api/v1/alerts")
    return {a["kind"] for a in body["alerts"] if a["cabin_id"] == cabin}


def kinds_of(snapshot: dict[str, Any], cabin: str) -> set[str]:
    return {a["kind"] for a in snapshot["alerts"] if a["cabin_id"] == cabin}


async def wait_kinds(world: World, predicate: Any, *, cabin: str = "cabin-1", what: str) -> set[str]:
    """Follow the live feed (as the dashboard does) until the cabin's open alert kinds satisfy `predicate`."""
    snapshot = await follow_fleet(world, lambda s: bool(predicate(kinds_of(s, cabin))), what=what)
    return kinds_of(snapshot, cabin)


async def test_heartbeats_reach_the_fleet_the_live_feed_and_metrics(world: World, clock: Clock) -> None:
    live = await world.client.ws_connect("/api/v1/fleet/live")
    await live.send_str(json.dumps({"type": "hello", "token": OPERATOR_KEY}))
    first = json.loads((await live.receive(timeout=5)).data)
    assert first["type"] == "fleet"
    assert {c["id"]: c["online"] for c in first["cabins"]} == {"cabin-1": False, "cabin-2": False, "cabin-off": False}

    cabin = await world.cabin("cabin-1")
    await cabin.send_str(heartbeat(clock))
    # The feed follows without being asked: the cabin is online with its heartbeat.
    entry: dict[str, Any] = {}
    while not entry.get("heartbeat"):
        snapshot = json.loads((await live.receive(timeout=5)).data)
        entry = next(c for c in snapshot["cabins"] if c["id"] == "cabin-1")
    assert entry["online"] is True
    assert entry["heartbeat"]["devices"] == [
        {"address": THERMO, "name": "Thermo", "seen": True, "connected": True, "battery": 80, "last_reading_at": None}
    ]
    assert entry["heartbeat"]["clock_offset_s"] == pytest.approx(0.006, abs=0.01)
    # Today's appointments (the bank one, in two hours, may fall tomorrow when the tests run late at night).
    assert "apt_med" in [a["id"] for a in entry["appointments_today"]]
    await live.close()

    status, body = await api(world, "GET", "/api/v1/cabins/cabin-1/status")
    assert status == 200 and len(body["history"]) == 1 and body["cabin"]["online"] is True
    assert any(e["action"] == "cabin-connected" for e in body["events"])

    status, text = await api(world, "GET", "/metrics")
    assert status == 200
    for line in (
        'cabine_cabin_up{cabin="cabin-1"} 1.0',
        f'cabine_device_battery_percent{{cabin="cabin-1",device="{THERMO}"}} 80.0',
        'cabine_cabin_temperature_celsius{cabin="cabin-1"} 51.0',
        'cabine_cabin_rtt_seconds{cabin="cabin-1"} 0.012',
        'cabine_joins_total{role="cabin"} 1.0',
        "cabine_heartbeats_total 1.0",
        "cabine_cabins_online 1.0",
    ):
        assert line in text, line
    async with world.client.get("/metrics") as response:
        assert response.status == 401, "the figures are for the operator's key"
    for probe in ("/healthz", "/readyz"):
        async with world.client.get(probe) as response:
            assert response.status == 200, probe
    await cabin.close()


async def test_a_bad_key_on_the_live_feed_is_refused(world: World) -> None:
    live = await world.client.ws_connect("/api/v1/fleet/live")
    await live.send_str(json.dumps({"type": "hello", "token": "wrong"}))
    error = json.loads((await live.receive(timeout=5)).data)
    assert error == {"type": "error", "code": 4401, "message": "invalid operator API key"}
    assert (await live.receive(timeout=5)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert live.close_code == 4401


async def test_battery_and_clock_alerts_open_and_clear_with_signed_webhooks(
    world: World, clock: Clock, receiver: Receiver
) -> None:
    receiver.refuse_next = 1  # the booking system is down for the first delivery: it is retried
    cabin = await world.cabin("cabin-1")
    await cabin.send_str(heartbeat(clock, battery=15))
    await wait_kinds(world, lambda kinds: kinds == {"battery-low"}, what="a battery-low alert")
    opened = await receiver.wait_for("alert.opened", lambda d: d["kind"] == "battery-low")
    assert opened["data"]["subject"] == THERMO and opened["data"]["detail"] == "Thermo: battery at 15 %"
    assert receiver.refused == 1 and receiver.bad_signatures == 0

    await cabin.send_str(heartbeat(clock, battery=80, skew=-30))
    await wait_kinds(world, lambda kinds: kinds == {"clock-skew"}, what="the battery cleared, the clock off")
    await receiver.wait_for("alert.closed", lambda d: d["kind"] == "battery-low")
    (skew,) = [a for a in (await api(world, "GET", "/api/v1/alerts"))[1]["alerts"] if a["kind"] == "clock-skew"]
    assert skew["detail"] == "the cabin's clock is 30.0 s behind"

    await cabin.send_str(heartbeat(clock))
    await wait_kinds(world, lambda kinds: not kinds, what="every alert cleared")
    # An alert an operator acknowledged while its condition holds is not raised again at each heartbeat.
    await cabin.send_str(heartbeat(clock, battery=10))
    await wait_kinds(world, lambda kinds: kinds == {"battery-low"}, what="the battery low again")
    (alert,) = (await api(world, "GET", "/api/v1/alerts"))[1]["alerts"]
    assert (await api(world, "POST", f"/api/v1/alerts/{alert['id']}/resolve"))[0] == 200
    await cabin.send_str(heartbeat(clock, battery=9))
    await cabin.send_str(json.dumps({"type": "ping", "id": 1}))
    await receive_until(cabin, "pong")
    assert await open_kinds(world) == set()
    await cabin.close()


async def test_offline_and_device_missing_follow_the_clock(world: World, clock: Clock, receiver: Receiver) -> None:
    cabin = await world.cabin("cabin-1")
    unplugged = [{"address": THERMO, "name": "Thermo", "seen": True, "connected": False, "battery": 80}]
    await cabin.send_str(heartbeat(clock, devices=unplugged))
    await cabin.send_str(json.dumps({"type": "ping", "id": 1}))
    await receive_until(cabin, "pong")
    clock.now += timedelta(minutes=5, seconds=1)
    await cabin.send_str(heartbeat(clock, devices=unplugged))
    kinds = await wait_kinds(world, lambda k: "device-missing" in k, what="the thermometer missing")
    assert kinds == {"device-missing"}
    # cabin-2 is enrolled and was never connected since the server started, five minutes ago.
    await wait_kinds(world, lambda k: k == {"offline"}, cabin="cabin-2", what="cabin-2 offline")
    await cabin.send_str(heartbeat(clock))
    await wait_kinds(world, lambda k: not k, what="the thermometer back")

    await cabin.close()
    clock.now += timedelta(minutes=2, seconds=1)
    await wait_kinds(world, lambda k: k == {"offline"}, what="cabin-1 offline")
    await receiver.wait_for("alert.opened", lambda d: d["kind"] == "offline" and d["cabin_id"] == "cabin-1")
    assert await open_kinds(world, "cabin-off") == set(), "a disabled cabin is not expected online"
    # Back (its proof signed by the same clock as the server's, moved forward by this test).
    cabin = await world.ws("cabin", world.cabins["cabin-1"].proof(clock.now))
    await receive(cabin, "welcome")
    await wait_kinds(world, lambda k: not k, what="cabin-1 back online")
    await cabin.close()


async def test_remote_configuration_versions_refusal_and_application(world: World, clock: Clock) -> None:
    cabin = await world.cabin("cabin-1")
    status, body = await api(world, "PUT", "/api/v1/cabins/cabin-1/config", json={"settings": {"camera": {"fps": 99}}})
    assert status == 400 and body["error"] == "camera.fps: must be a whole number from 1 to 60, got 99"
    status, _ = await api(world, "PUT", "/api/v1/cabins/nowhere/config", json={"settings": {}})
    assert status == 404

    settings = {"camera": {"width": 1280, "height": 720, "fps": 30}}
    status, body = await api(world, "PUT", "/api/v1/cabins/cabin-1/config", json={"settings": settings})
    assert status == 200 and body["version"] == 1 and body["status"] == "pending"
    configure = await receive_until(cabin, "configure")
    assert configure["version"] == 1 and configure["settings"] == settings
    reason = "configuration v1: camera.width: this camera does not do 1280x720"
    await cabin.send_str(json.dumps({"type": "config-status", "version": 1, "state": "refused", "reason": reason}))
    await wait_until_config(world, "refused")
    _, body = await api(world, "GET", "/api/v1/cabins/cabin-1/config")
    assert body["refusal"] == reason

    settings = {"camera": {"width": 640, "height": 480, "fps": 15}, "screen": {"languages": ["en", "fr"]}}
    status, body = await api(world, "PUT", "/api/v1/cabins/cabin-1/config", json={"settings": settings})
    assert body["version"] == 2 and [h["version"] for h in body["history"]] == [2, 1]
    assert (await receive_until(cabin, "configure"))["version"] == 2
    await cabin.send_str(json.dumps({"type": "config-status", "version": 2, "state": "applied"}))
    await cabin.send_str(heartbeat(clock, config_version="v2"))
    body = await wait_until_config(world, "applied")
    assert body["running"] == "v2" and body["refusal"] is None
    actions = [e.action.value for e in world.store.audit_log(cabin_id="cabin-1")]
    assert actions.count("config-changed") == 2 and "config-refused" in actions and "config-applied" in actions
    await cabin.close()
    # A cabin that reconnects (or was offline) gets the latest version at once.
    cabin = await world.cabin("cabin-1")
    assert (await receive(cabin, "configure"))["version"] == 2
    await cabin.close()


async def wait_until_config(world: World, state: str) -> dict[str, Any]:
    """Follow the live feed until cabin-1's configuration is in `state`; then the REST view of it."""

    def reached(snapshot: dict[str, Any]) -> bool:
        return any(c["id"] == "cabin-1" and c["config"]["status"] == state for c in snapshot["cabins"])

    await follow_fleet(world, reached, what=f"the configuration {state}")
    _, body = await api(world, "GET", "/api/v1/cabins/cabin-1/config")
    assert body["status"] == state
    return dict(body)


async def test_a_failed_self_test_reaches_the_operator_and_the_professional(world: World, clock: Clock) -> None:
    cabin = await world.cabin("cabin-1")
    pro = await world.professional(world.medical)
    report = {
        "type": "selftest-report",
        "request_id": "before-apt_med",
        "ok": False,
        "finished_at": clock.now.isoformat(),
        "checks": [
            {"name": "camera", "status": "ok", "detail": "30 fps"},
            {"name": "device:thermometer", "status": "failed", "detail": "not seen within 20 s"},
            {"name": "clock", "status": "failed", "detail": "9 s off"},
        ],
    }
    await cabin.send_str(json.dumps(report))
    check = await receive_until(pro, "cabin-check")
    assert check == {"type": "cabin-check", "appointment_id": "apt_med", "failed": ["device:thermometer"], "v": 1}
    kinds = await wait_kinds(world, lambda k: "selftest-failed" in k, what="the self-test alert")
    assert kinds == {"selftest-failed"}
    (alert,) = (await api(world, "GET", "/api/v1/alerts"))[1]["alerts"]
    assert alert["detail"] == "failed: device:thermometer (not seen within 20 s); clock (9 s off)"
    # A professional who joins later hears of it at once; a bank adviser is not told about medical devices.
    await pro.close()
    pro = await world.professional(world.medical)
    assert (await receive_until(pro, "cabin-check"))["failed"] == ["device:thermometer"]
    report["ok"], report["checks"] = True, [{"name": "camera", "status": "ok"}]
    await cabin.send_str(json.dumps(report))
    assert (await receive_until(pro, "cabin-check"))["failed"] == []
    await wait_kinds(world, lambda k: not k, what="the self-test alert cleared")
    await pro.close()
    await cabin.close()


async def test_appointment_events_reach_the_booking_system(world: World, clock: Clock, receiver: Receiver) -> None:
    cabin = await world.cabin("cabin-1")
    pro = await world.professional(world.medical)
    joined = await receiver.wait_for("appointment.professional_joined")
    assert joined["data"]["appointment_id"] == "apt_med" and joined["data"]["kind"] == "medical"
    await cabin.send_str(json.dumps({"type": "presence", "appointment_id": "apt_med", "present": True}))
    while not (await receive_until(pro, "room"))["citizen_present"]:
        pass  # the room's state from before the citizen was there
    await pro.send_str(json.dumps({"type": "admit", "appointment_id": "apt_med"}))
    await receive_until(pro, "peer-joined")
    admitted = await receiver.wait_for("appointment.citizen_admitted")
    assert admitted["data"]["by"] == "professional"
    await pro.send_str(json.dumps({"type": "bye", "appointment_id": "apt_med"}))
    ended = await receiver.wait_for("appointment.ended")
    assert ended["data"]["reason"] == "ended by the professional"

    status, _ = await api(world, "POST", "/api/v1/appointments/apt_bank/cancel")
    assert status == 200
    await receiver.wait_for("appointment.cancelled", lambda d: d["appointment_id"] == "apt_bank")
    # cabin-2's energy appointment ends with nobody there: a no-show, told once.
    clock.now += timedelta(minutes=31)
    no_show = await receiver.wait_for("appointment.no_show")
    assert no_show["data"] == {
        "appointment_id": "apt_other",
        "cabin_id": "cabin-2",
        "kind": "energy",
        "starts_at": world.other.starts_at.isoformat(),
        "ends_at": world.other.ends_at.isoformat(),
        "professional_joined": False,
        "citizen_present": False,
    }
    assert len(receiver.of_type("appointment.ended")) == 1, "apt_med's end was told at the bye, not again"
    assert receiver.bad_signatures == 0
    # Never a name, never a reading: only ids, kinds, times, parts.
    text = json.dumps(receiver.events)
    assert "Dr A" not in text and "Mme C" not in text
    await pro.close()
    await cabin.close()


async def test_a_cabins_battery_threshold_is_set_from_afar(world: World, clock: Clock) -> None:
    cabin = await world.cabin("cabin-1")
    await cabin.send_str(heartbeat(clock, battery=25))
    await cabin.send_str(json.dumps({"type": "ping", "id": 1}))
    await receive_until(cabin, "pong")
    assert await open_kinds(world) == set(), "25 % is above the default threshold (20 %)"
    settings = {"thresholds": {"battery_low": 30, "microphone_silence": -60}}
    status, body = await api(world, "PUT", "/api/v1/cabins/cabin-1/config", json={"settings": settings})
    assert status == 200, body
    await wait_kinds(world, lambda k: k == {"battery-low"}, what="25 % low for this cabin")
    status, body = await api(
        world, "PUT", "/api/v1/cabins/cabin-1/config", json={"settings": {"thresholds": {"battery_low": 100}}}
    )
    assert (status, body["error"]) == (400, "thresholds.battery_low: must be a whole number from 1 to 99, got 100")
    await cabin.close()
