"""Calls for help: a cabin's "help" message, the operators' alert API, the operator page, the audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from signaling.alerts import MAX_INCIDENTS_PER_CABIN, AlertBook, AlertKind, AlertNotFound
from signaling.models import AuditAction
from signaling.protocol import HelpRequest, HelpStatus, IncidentKind, ProtocolError, dump, parse
from tests.signaling.conftest import OPERATOR_KEY, World, closed_with, receive

AUTH = {"Authorization": f"Bearer {OPERATOR_KEY}"}
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_help_messages_round_trip() -> None:
    for message in (HelpRequest(), HelpRequest(appointment_id="apt_1"), HelpStatus("alert_1", True)):
        assert parse(dump(message)) == message
    with pytest.raises(ProtocolError, match="'open' must be true or false"):
        parse(json.dumps({"type": "help-status", "alert_id": "a", "open": "yes"}))
    with pytest.raises(ProtocolError, match="'appointment_id' must be a string"):
        parse(json.dumps({"type": "help", "appointment_id": 3}))


def test_one_open_alert_per_cabin_and_idempotent_resolution() -> None:
    book = AlertBook()
    first, new = book.raise_alert("cabin-1", None, T0)
    assert new and first.presses == 1
    again, new = book.raise_alert("cabin-1", "apt_1", T0 + timedelta(seconds=5))
    assert not new and again.id == first.id and again.presses == 2 and again.appointment_id == "apt_1"
    other, _ = book.raise_alert("cabin-2", None, T0 + timedelta(seconds=1))
    assert [a.id for a in book.open_alerts()] == [first.id, other.id]
    resolved, closed = book.resolve(first.id, T0 + timedelta(minutes=1), "op")
    assert closed and not resolved.open and resolved.resolved_by == "op"
    assert book.resolve(first.id, T0 + timedelta(minutes=2), "op2") == (resolved, False)
    assert book.for_cabin("cabin-1") == [] and book.recently_resolved() == [resolved]
    with pytest.raises(AlertNotFound, match="no alert 'alert_nope'"):
        book.resolve("alert_nope", T0, "op")
    # A new press after resolution is a new alert.
    assert book.raise_alert("cabin-1", None, T0 + timedelta(minutes=3))[0].id != first.id


def test_one_alert_per_incident_and_the_cabin_closes_it() -> None:
    book = AlertBook()
    camera, new = book.open_incident("cabin-1", IncidentKind.CAMERA_UNAVAILABLE, "", "gone", T0)
    assert new and camera is not None and camera.kind is AlertKind.CAMERA_UNAVAILABLE
    again, new = book.open_incident("cabin-1", IncidentKind.CAMERA_UNAVAILABLE, "", "still gone", T0)
    assert not new and again is not None and (again.id, again.presses, again.detail) == (camera.id, 2, "still gone")
    device, _ = book.open_incident("cabin-1", IncidentKind.DEVICE_MISSING, "A4:C1", "", T0 + timedelta(seconds=1))
    help_alert, _ = book.raise_alert("cabin-1", None, T0 + timedelta(seconds=2))
    assert device is not None
    assert [a.id for a in book.for_cabin("cabin-1")] == [camera.id, device.id, help_alert.id]
    assert [a.id for a in book.open_alerts(AlertKind.HELP)] == [help_alert.id]
    cleared = book.clear_incident("cabin-1", IncidentKind.CAMERA_UNAVAILABLE, "", T0 + timedelta(minutes=1))
    assert cleared is not None and cleared.id == camera.id and cleared.resolved_by == "cabin" and not cleared.open
    assert book.clear_incident("cabin-1", IncidentKind.CAMERA_UNAVAILABLE, "", T0) is None
    assert book.clear_incident("cabin-2", IncidentKind.DEVICE_MISSING, "A4:C1", T0) is None  # another cabin's
    assert len(book) == 2
    assert cleared.to_json()["kind"] == "camera-unavailable" and cleared.to_json()["open"] is False


def test_alert_kinds_cover_every_incident_kind() -> None:
    assert {AlertKind.of_incident(kind).value for kind in IncidentKind} == {k.value for k in IncidentKind}


def test_incidents_are_bounded_per_cabin_but_help_always_opens() -> None:
    book = AlertBook()
    for i in range(MAX_INCIDENTS_PER_CABIN):
        alert, new = book.open_incident("cabin-1", IncidentKind.DEVICE_MISSING, f"dev-{i}", "", T0)
        assert new and alert is not None
    assert book.open_incident("cabin-1", IncidentKind.DEVICE_MISSING, "one-too-many", "", T0) == (None, False)
    # Refreshing an open one still works, other cabins are unaffected, and a call for help always opens.
    assert book.open_incident("cabin-1", IncidentKind.DEVICE_MISSING, "dev-0", "", T0)[0] is not None
    assert book.open_incident("cabin-2", IncidentKind.DEVICE_MISSING, "dev-0", "", T0)[1] is True
    assert book.raise_alert("cabin-1", None, T0)[1] is True
    assert len(book) == MAX_INCIDENTS_PER_CABIN + 2


async def test_a_call_for_help_reaches_the_operators_and_is_resolved(world: World) -> None:
    cabin = await world.cabin("cabin-1")
    await cabin.send_str(json.dumps({"type": "help", "appointment_id": world.medical.id}))
    status = await receive(cabin, "help-status", skip=("room", "schedule"))
    assert status["open"] is True

    response = await world.client.get("/api/v1/alerts", headers=AUTH)
    assert response.status == 200
    body = await response.json()
    [alert] = body["alerts"]
    assert alert["id"] == status["alert_id"]
    assert (alert["cabin_id"], alert["appointment_id"], alert["presses"]) == ("cabin-1", world.medical.id, 1)
    assert body["online_cabins"] == ["cabin-1"]

    # Pressing again does not open a second alert.
    await cabin.send_str(json.dumps({"type": "help"}))
    assert (await receive(cabin, "help-status"))["alert_id"] == alert["id"]
    assert len((await (await world.client.get("/api/v1/alerts", headers=AUTH)).json())["alerts"]) == 1

    response = await world.client.post(f"/api/v1/alerts/{alert['id']}/resolve", headers=AUTH)
    assert response.status == 200
    assert (await response.json())["open"] is False
    assert await receive(cabin, "help-status") == {
        "type": "help-status",
        "alert_id": alert["id"],
        "open": False,
        "v": 1,
    }
    # Resolving again answers the same; the list is empty.
    again = await world.client.post(f"/api/v1/alerts/{alert['id']}/resolve", headers=AUTH)
    assert again.status == 200
    body = await (await world.client.get("/api/v1/alerts", headers=AUTH)).json()
    assert body["alerts"] == [] and [a["id"] for a in body["recently_resolved"]] == [alert["id"]]

    actions = [e.action for e in world.store.audit_log(appointment_id=world.medical.id)]
    assert actions.count(AuditAction.HELP_REQUESTED) == 1  # the second press named no appointment
    assert AuditAction.HELP_RESOLVED in actions
    requested = [e for e in world.store.audit_log(limit=100) if e.action is AuditAction.HELP_REQUESTED]
    assert [e.actor for e in requested] == ["citizen", "citizen"] and "press 2" in requested[0].detail
    await cabin.close()


async def test_help_naming_another_cabins_appointment_still_opens_the_alert(world: World) -> None:
    cabin = await world.cabin("cabin-1")
    await cabin.send_str(json.dumps({"type": "help", "appointment_id": world.other.id}))
    assert (await receive(cabin, "help-status", skip=("room",)))["open"] is True
    [alert] = (await (await world.client.get("/api/v1/alerts", headers=AUTH)).json())["alerts"]
    assert alert["appointment_id"] is None
    [event] = [e for e in world.store.audit_log() if e.action is AuditAction.HELP_REQUESTED]
    assert "not this cabin's" in event.detail
    await cabin.close()


async def test_only_a_cabin_calls_for_help(world: World) -> None:
    pro = await world.professional(world.medical)
    await pro.send_str(json.dumps({"type": "help"}))
    assert await closed_with(pro) == (4400, "'help' is not expected from a professional")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing operator API key: send the header 'Authorization: Bearer <key>'"),
        ({"Authorization": "Bearer wrong"}, "invalid operator API key"),
    ],
)
async def test_the_alert_api_needs_the_operator_key(world: World, headers: dict[str, str], message: str) -> None:
    for method, path in (("GET", "/api/v1/alerts"), ("POST", "/api/v1/alerts/alert_x/resolve")):
        response = await world.client.request(method, path, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await response.json() == {"error": message}


async def test_resolving_an_unknown_alert_is_a_404(world: World) -> None:
    response = await world.client.post("/api/v1/alerts/alert_nope/resolve", headers=AUTH)
    assert response.status == 404
    assert await response.json() == {"error": "no alert 'alert_nope'"}


async def test_the_operator_page_is_served_with_strict_headers(world: World) -> None:
    response = await world.client.get("/operator/")
    assert response.status == 200
    assert "operator.js" in await response.text()
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    redirect = await world.client.get("/operator", allow_redirects=False)
    assert (redirect.status, redirect.headers["Location"]) == (308, "/operator/")
