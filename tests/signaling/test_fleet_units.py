"""The fleet's pure parts: heartbeats on the wire, the conditions they raise, the settings an operator may send,
and the webhooks' signatures."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signaling.alerts import AlertBook, AlertKind
from signaling.cabin_settings import SettingsError, check_settings
from signaling.fleet import HISTORY, Fleet, clock_offset
from signaling.protocol import (
    CabinCheck,
    ConfigState,
    ConfigStatus,
    Configure,
    DeviceStatus,
    Heartbeat,
    ProtocolError,
    dump,
    parse,
)
from signaling.webhooks import WebhookError, WebhookTarget, event, sign, verify

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def beat(at: datetime = T0, **changes: object) -> Heartbeat:
    base = Heartbeat(
        software="0.1.0",
        uptime_s=12.0,
        config_version="v1",
        sent_at=at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        camera_present=True,
        microphone_present=True,
        devices=(DeviceStatus("AA:BB:CC:DD:EE:01", "Thermo", seen=True, connected=True, battery=80),),
        rtt_ms=20.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_heartbeat_round_trips_and_stays_small() -> None:
    heartbeat = beat(cpu=0.25, memory=0.5, disk=0.1, temperature_c=48.5, camera_fps=29.9, microphone_level_db=-42.0)
    text = dump(heartbeat)
    assert parse(text) == heartbeat
    # Four devices and every figure: well under a kilobyte every ten seconds.
    four = replace(heartbeat, devices=heartbeat.devices * 4)
    assert len(dump(four)) < 1000


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("loss", 1.5, "'loss' must be a number from 0 to 1"),
        ("cpu", "high", "'cpu' must be a number"),
        ("uptime_s", None, "'uptime_s' must be a number"),
        ("devices", [{"address": "x"}] * 33, "too many devices"),
        ("devices", [{"address": "x", "seen": "yes", "connected": True}], "'seen' must be true or false"),
        ("devices", [{"address": "x", "seen": True, "connected": True, "battery": 140}], "'battery'"),
        ("in_session", 1, "'in_session' must be true or false"),
    ],
)
def test_a_bad_heartbeat_is_refused_with_the_field_named(field: str, value: object, words: str) -> None:
    data = json.loads(dump(beat()))
    data[field] = value
    with pytest.raises(ProtocolError, match=words):
        parse(json.dumps(data))


def test_configure_status_and_cabin_check_round_trip() -> None:
    for message in (
        Configure(version=3, settings={"camera": {"width": 1280, "height": 720}}),
        ConfigStatus(version=3, state=ConfigState.REFUSED, reason="camera.width: too wide"),
        CabinCheck(appointment_id="apt_1", failed=("device:thermometer",)),
    ):
        assert parse(dump(message)) == message
    with pytest.raises(ProtocolError, match="'version' must be a positive integer"):
        parse(json.dumps({"type": "configure", "version": 0, "settings": {}}))
    with pytest.raises(ProtocolError, match="'settings' must be an object"):
        parse(json.dumps({"type": "configure", "version": 1, "settings": {"camera": 3}}))


def test_conditions_battery_clock_and_a_device_not_connected() -> None:
    fleet = Fleet(T0, device_missing_after=timedelta(minutes=10))
    fleet.connected("c1", T0)
    fleet.record("c1", beat(), T0)
    assert fleet.conditions("c1", T0) == {}

    low = beat(devices=(DeviceStatus("AA:BB:CC:DD:EE:01", "Thermo", True, True, 15),))
    fleet.record("c1", low, T0)
    assert fleet.conditions("c1", T0) == {(AlertKind.BATTERY_LOW, "AA:BB:CC:DD:EE:01"): "Thermo: battery at 15 %"}

    # The cabin's clock is 7 s behind ours (half the 20 ms round trip is taken off as transit).
    late = beat(at=T0 - timedelta(seconds=7))
    fleet.record("c1", late, T0)
    (detail,) = fleet.conditions("c1", T0).values()
    assert detail == "the cabin's clock is 7.0 s behind"
    assert clock_offset(late, T0) == pytest.approx(-6.99)

    gone = (DeviceStatus("AA:BB:CC:DD:EE:01", "Thermo", True, False, 80),)
    fleet.record("c1", beat(T0 + timedelta(minutes=1), devices=gone), T0 + timedelta(minutes=1))
    assert fleet.conditions("c1", T0 + timedelta(minutes=5)) == {}
    fleet.record("c1", beat(T0 + timedelta(minutes=11), devices=gone), T0 + timedelta(minutes=11))
    assert fleet.conditions("c1", T0 + timedelta(minutes=11)) == {
        (AlertKind.DEVICE_MISSING, "AA:BB:CC:DD:EE:01"): "Thermo: not connected since 2026-12-02T08:00:00+00:00"
    }


def test_offline_counts_from_the_disconnection_or_the_server_start() -> None:
    fleet = Fleet(T0, offline_after=timedelta(minutes=2))
    assert fleet.conditions("never", T0 + timedelta(minutes=1)) == {}
    (detail,) = fleet.conditions("never", T0 + timedelta(minutes=3)).values()
    assert "since the server started" in detail
    fleet.connected("c1", T0 + timedelta(minutes=3))
    fleet.disconnected("c1", T0 + timedelta(minutes=4))
    assert fleet.conditions("c1", T0 + timedelta(minutes=5)) == {}
    assert set(fleet.conditions("c1", T0 + timedelta(minutes=6, seconds=1))) == {(AlertKind.OFFLINE, "")}
    # A heartbeat's battery or clock says nothing once the cabin is offline.
    assert fleet.online_count() == 0


def test_the_fleet_is_bounded() -> None:
    fleet = Fleet(T0, max_cabins=3)
    for i in range(5):
        fleet.connected(f"c{i}", T0)
    assert len(fleet) == 3 and fleet.life("c0") is None and fleet.life("c4") is not None
    for i in range(HISTORY + 20):
        fleet.record("c4", beat(), T0 + timedelta(seconds=i))
    assert len(fleet.history("c4")) == HISTORY


def test_an_alert_condition_opens_once_and_clears() -> None:
    book = AlertBook()
    alert, new = book.open_condition("c1", AlertKind.BATTERY_LOW, "AA", "15 %", T0)
    assert new and alert is not None
    again, new = book.open_condition("c1", AlertKind.BATTERY_LOW, "AA", "12 %", T0, repeat=False)
    assert not new and again is not None and again.id == alert.id and again.presses == 1 and again.detail == "12 %"
    cleared = book.clear_condition("c1", AlertKind.BATTERY_LOW, "AA", T0, "signaling")
    assert cleared is not None and not cleared.open and cleared.resolved_by == "signaling"
    assert book.clear_condition("c1", AlertKind.BATTERY_LOW, "AA", T0, "signaling") is None


def test_settings_an_operator_may_send() -> None:
    settings = check_settings(
        {
            "camera": {"width": 1280, "height": 720, "fps": 25},
            "devices": {"allow": ["aa:bb:cc:dd:ee:01", " thermometer "]},
            "screen": {"languages": ["en", "fr"]},
        }
    )
    assert settings["devices"]["allow"] == ["AA:BB:CC:DD:EE:01", "thermometer"]
    for bad, words in (
        ({"signaling": {"server": "wss://evil"}}, r"\[signaling\]: cannot be changed from afar"),
        ({"camera": {"source": "v4l2:/dev/video1"}}, "camera.source: cannot be changed from afar"),
        ({"camera": {"width": 1281, "height": 720}}, "camera.width: the codecs need an even size"),
        ({"camera": {"width": 1280}}, "camera.width and camera.height go together"),
        ({"camera": {"fps": 0}}, "camera.fps: must be a whole number from 1 to 60"),
        ({"camera": {"fps": True}}, "camera.fps"),
        ({"devices": {"allow": ["not a device!"]}}, "devices.allow"),
        ({"screen": {"languages": []}}, "at least one language"),
        ({"screen": {"languages": ["fr", "ar"]}}, "the cabin screen does not speak ar"),
        ([], "settings must be an object"),
    ):
        with pytest.raises(SettingsError, match=words):
            check_settings(bad)


def test_webhook_signatures_follow_standard_webhooks() -> None:
    secret = b"0123456789abcdef0123"
    body = json.dumps(event("alert.opened", {"cabin_id": "c1"}, T0)).encode()
    signature = sign(secret, "evt_1", 1_700_000_000, body)
    headers = {"webhook-id": "evt_1", "webhook-timestamp": "1700000000", "webhook-signature": signature}
    assert signature.startswith("v1,")
    assert verify(secret, headers, body, now=1_700_000_010)
    assert not verify(secret, headers, body + b" ", now=1_700_000_010)
    assert not verify(b"another secret of 20b", headers, body, now=1_700_000_010)
    assert not verify(secret, headers, body, now=1_700_001_000), "an old timestamp is refused"
    with pytest.raises(WebhookError, match="at least 16 bytes"):
        WebhookTarget("https://book.example.org/hook", b"short")
    with pytest.raises(WebhookError, match="must be https://"):
        WebhookTarget("ftp://book.example.org/hook", secret)
    with pytest.raises(WebhookError, match="unknown webhook events"):
        WebhookTarget("https://book.example.org/hook", secret, frozenset({"appointment.eaten"}))


def test_each_appointments_end_is_told_once() -> None:
    from signaling.bookings import AppointmentLedger
    from signaling.models import Appointment
    from signaling.protocol import AppointmentKind

    called = Appointment("apt_1", AppointmentKind.MEDICAL, "c1", T0, timedelta(minutes=30), "Dr A")
    missed = Appointment("apt_2", AppointmentKind.BANK, "c1", T0 + timedelta(hours=1), timedelta(minutes=30), "M. B")
    ledger = AppointmentLedger(T0)
    again, (kind, data) = ledger.professional_joined(called)
    assert (again, kind, data["appointment_id"]) == (False, "appointment.professional_joined", "apt_1")
    assert "Dr A" not in str(data)
    assert ledger.professional_joined(called)[0] is True, "a second join is a reconnection"
    ledger.call_started(replace_room(called))
    assert ledger.endings([called, missed], T0 + timedelta(minutes=10), lambda _: False) == []
    (ended,) = ledger.endings([called, missed], T0 + timedelta(minutes=31), lambda _: False)
    assert ended[0] == "appointment.ended" and ended[1]["reason"] == "time"
    assert ledger.call_ended(replace_room(called), "bye") is None, "told once"
    (no_show,) = ledger.endings([called, missed], T0 + timedelta(hours=2), lambda _: True)
    assert no_show[0] == "appointment.no_show"
    assert (no_show[1]["professional_joined"], no_show[1]["citizen_present"]) == (False, True)
    assert ledger.endings([called, missed], T0 + timedelta(hours=3), lambda _: False) == []


def replace_room(appointment: Any) -> Any:
    from signaling.rooms import Room

    return Room(appointment.id, appointment.cabin_id, appointment.kind, appointment.ends_at)
