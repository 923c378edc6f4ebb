"""Cabin health over signaling: the server's clock in the welcome, self-tests (at start-up and on request, through
the REST API), and incidents that become operators' alerts. Real server, real WebSockets, real SQLite audit."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signaling.models import AuditAction
from signaling.protocol import CheckStatus, SelftestCheck, SelftestReport, dump
from tests.signaling.conftest import OPERATOR_KEY, World, receive

AUTH = {"Authorization": f"Bearer {OPERATOR_KEY}"}
KEY_LABEL = "operator key sha256:"


@pytest.fixture
def server_options() -> dict[str, Any]:
    return {"selftest_timeout": 1.0}


def report(request_id: str | None, *, ok: bool = True) -> SelftestReport:
    return SelftestReport(
        request_id=request_id,
        ok=ok,
        checks=(
            SelftestCheck("camera", CheckStatus.OK if ok else CheckStatus.FAILED, "640x480, 30 fps, not black"),
            SelftestCheck("device:A4:C1:38:00:00:01", CheckStatus.WARNING, "battery 12 %", required=False),
        ),
        finished_at="2026-11-26T08:29:59.500Z",
    )


def report_json(cabin_id: str, sent: SelftestReport) -> dict[str, Any]:
    """What the API answers for `sent` (received_at aside)."""
    return {
        "cabin_id": cabin_id,
        "request_id": sent.request_id,
        "ok": sent.ok,
        "finished_at": sent.finished_at,
        "checks": [
            {"name": c.name, "status": c.status.value, "detail": c.detail, "required": c.required} for c in sent.checks
        ],
    }


async def call(world: World, method: str, path: str) -> tuple[int, Any]:
    response = await world.client.request(method, "/api/v1" + path, headers=AUTH)
    return response.status, await response.json()


def without_received_at(body: dict[str, Any]) -> dict[str, Any]:
    received = datetime.fromisoformat(body.pop("received_at"))
    assert abs(received - datetime.now(UTC)) < timedelta(seconds=10)
    return body


async def test_a_cabin_is_welcomed_with_the_server_time(world: World) -> None:
    cabin = await world.ws("cabin", world.proof("cabin-1"))
    welcome = await receive(cabin, "welcome")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", welcome["server_time"]), welcome
    assert abs(datetime.fromisoformat(welcome["server_time"]) - datetime.now(UTC)) < timedelta(seconds=5)
    pro = await world.ws("professional", world.pro_token(world.medical))
    assert (await receive(pro, "welcome"))["server_time"] is None  # only a cabin checks its clock
    await cabin.close()
    await pro.close()


async def test_the_operator_asks_a_cabin_for_its_selftest(world: World) -> None:
    cabin = await world.cabin("cabin-1")
    # Two operators ask at once: one request goes to the cabin, both get its answer.
    first = asyncio.create_task(call(world, "POST", "/cabins/cabin-1/selftest"))
    second = asyncio.create_task(call(world, "POST", "/cabins/cabin-1/selftest"))
    request = await receive(cabin, "selftest-request")
    assert re.fullmatch(r"st_[0-9a-f]{12}", request["request_id"])
    # A report for another request (a stale one) is kept as the latest but answers nobody: the operators get
    # the right one below. (The cabin's next message is answered only once this one was handled.)
    stale = report("st_000000000000", ok=False)
    await cabin.send_str(dump(stale))
    await cabin.send_str(json.dumps({"type": "presence", "appointment_id": "apt_bank", "present": True}))
    assert (await receive(cabin, "error"))["message"] == "this appointment is not open now"
    status, latest = await call(world, "GET", "/cabins/cabin-1/selftest")
    assert (status, without_received_at(latest)) == (200, report_json("cabin-1", stale))
    answer = report(request["request_id"])
    await cabin.send_str(dump(answer))
    for task in (first, second):
        status, body = await task
        assert status == 200, body
        assert without_received_at(body) == report_json("cabin-1", answer)
    status, latest = await call(world, "GET", "/cabins/cabin-1/selftest")
    assert (status, without_received_at(latest)) == (200, report_json("cabin-1", answer))
    assert len(world.hub._pending) == 0

    requests = [e for e in world.store.audit_log() if e.action is AuditAction.SELFTEST_REQUESTED]
    assert len(requests) == 2
    for event in requests:
        assert (event.actor, event.cabin_id, event.address) == ("operator", "cabin-1", "127.0.0.1")
        assert event.detail.startswith(KEY_LABEL)
    await cabin.close()


async def test_a_report_sent_at_start_up_is_the_latest(world: World) -> None:
    assert await call(world, "GET", "/cabins/cabin-1/selftest") == (
        404,
        {"error": "no self-test report from cabin 'cabin-1' yet"},
    )
    cabin = await world.cabin("cabin-1")
    at_start = report(None, ok=False)
    await cabin.send_str(dump(at_start))
    for _ in range(100):
        status, body = await call(world, "GET", "/cabins/cabin-1/selftest")
        if status == 200:
            break
        await asyncio.sleep(0.02)
    assert (status, without_received_at(body)) == (200, report_json("cabin-1", at_start))
    await cabin.close()


async def test_selftest_refusals(world: World) -> None:
    assert await call(world, "POST", "/cabins/ghost/selftest") == (404, {"error": "no cabin 'ghost'"})
    assert await call(world, "GET", "/cabins/ghost/selftest") == (404, {"error": "no cabin 'ghost'"})
    assert await call(world, "POST", "/cabins/cabin-2/selftest") == (409, {"error": "cabin 'cabin-2' is not connected"})
    cabin = await world.cabin("cabin-1")
    # The cabin says nothing: 504 after the server's timeout (1 s here).
    assert await call(world, "POST", "/cabins/cabin-1/selftest") == (
        504,
        {"error": "cabin 'cabin-1' did not answer the self-test within 1 s"},
    )
    # The cabin goes away before answering: 409 at once.
    pending = asyncio.create_task(call(world, "POST", "/cabins/cabin-1/selftest"))
    await receive(cabin, "selftest-request")  # the first request's, then this one's
    await receive(cabin, "selftest-request")
    await cabin.close()
    assert await pending == (409, {"error": "cabin 'cabin-1' disconnected before answering"})
    assert len(world.hub._pending) == 0
    # Only requests that reached a connected cabin are audited.
    requested = [e.cabin_id for e in world.store.audit_log() if e.action is AuditAction.SELFTEST_REQUESTED]
    assert requested == ["cabin-1", "cabin-1"]


async def test_incidents_become_operator_alerts(world: World) -> None:
    cabin = await world.cabin("cabin-1")

    async def incident(kind: str, is_open: bool, subject: str = "", detail: str = "") -> None:
        await cabin.send_str(
            json.dumps({"type": "incident", "kind": kind, "open": is_open, "subject": subject, "detail": detail})
        )

    async def alerts() -> dict[str, Any]:
        status, body = await call(world, "GET", "/alerts")
        assert status == 200
        return dict(body)

    async def open_alerts(count: int) -> list[dict[str, Any]]:
        for _ in range(100):
            found: list[dict[str, Any]] = (await alerts())["alerts"]
            if len(found) == count:
                return found
            await asyncio.sleep(0.02)
        pytest.fail(f"expected {count} open alerts, got {found}")

    await incident("camera-unavailable", True, detail="/dev/video0 disappeared")
    await incident("camera-unavailable", True, detail="/dev/video0 still missing")  # the same alert, again
    await incident("device-missing", True, "A4:C1:38:00:00:01", "not seen for 5 min")
    await incident("device-missing", True, "A4:C1:38:00:00:02", "not seen for 5 min")
    camera, device_1, device_2 = await open_alerts(3)
    assert {k: camera[k] for k in ("kind", "cabin_id", "subject", "detail", "presses", "open", "appointment_id")} == {
        "kind": "camera-unavailable",
        "cabin_id": "cabin-1",
        "subject": "",
        "detail": "/dev/video0 still missing",
        "presses": 2,
        "open": True,
        "appointment_id": None,
    }
    assert (device_1["kind"], device_1["subject"]) == ("device-missing", "A4:C1:38:00:00:01")
    assert (device_2["kind"], device_2["subject"]) == ("device-missing", "A4:C1:38:00:00:02")

    # The camera is back: the cabin closes its incident; clearing one that is not open changes nothing.
    await incident("camera-unavailable", False)
    await incident("microphone-unavailable", False)
    await open_alerts(2)
    assert [a["id"] for a in (await alerts())["recently_resolved"]] == [camera["id"]]
    # An operator acknowledges a device's alert: no "help is coming" for an incident.
    status, resolved = await call(world, "POST", f"/alerts/{device_1['id']}/resolve")
    assert (status, resolved["open"], resolved["kind"]) == (200, False, "device-missing")
    await cabin.send_str(json.dumps({"type": "help"}))
    help_status = await receive(cabin, "help-status")
    assert help_status["open"] is True  # the first message after the acknowledgement: nothing was sent for it
    kinds = sorted(a["kind"] for a in await open_alerts(2))
    assert kinds == ["device-missing", "help"]

    events = [e for e in reversed(world.store.audit_log()) if e.cabin_id == "cabin-1"]
    incidents = [(e.action, e.actor, e.detail.split(";")[0]) for e in events if "incident" in e.action]
    assert incidents == [
        (AuditAction.INCIDENT_OPENED, "cabin", "camera-unavailable"),
        (AuditAction.INCIDENT_OPENED, "cabin", "device-missing A4:C1:38:00:00:01"),
        (AuditAction.INCIDENT_OPENED, "cabin", "device-missing A4:C1:38:00:00:02"),
        (AuditAction.INCIDENT_CLEARED, "cabin", "camera-unavailable"),
        (AuditAction.INCIDENT_CLEARED, "operator", f"alert {device_1['id']} (device-missing)"),
    ]
    # The cabin's own words stay on the operators' page, never in the audit.
    assert all("not seen" not in e.detail and "/dev/video0" not in e.detail for e in events)
    await cabin.close()
