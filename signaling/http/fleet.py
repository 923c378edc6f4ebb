"""The operators' dashboard data: GET /api/v1/fleet, its live view over a WebSocket, and one cabin's status.

    GET /api/v1/fleet                 every cabin: online, last seen, latest heartbeat, today's appointments, alerts
    GET /api/v1/fleet/live            the same, pushed at every change (WebSocket; first message: the operator key)
    GET /api/v1/cabins/{id}/status    one cabin: the above, its heartbeat history, latest self-test, recent events

Nothing here names a citizen or carries a reading: heartbeats hold none, appointments show their kind and times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Final

from aiohttp import WSMsgType, web

from signaling.http.rest import PREFIX, ApiError, iso, key_label, operator
from signaling.hub import Hub
from signaling.keys import CONFIG, HUB, STORE
from signaling.models import Appointment, Cabin
from signaling.protocol import CloseCode

log = logging.getLogger("cabine.signaling.fleet")

# A live view sends at most one update per COALESCE seconds, and one every REFRESH seconds even without a change
# (so "last seen" ages keep moving).
COALESCE: Final = 0.25
REFRESH: Final = 15.0
MAX_LIVE_VIEWS: Final = 100
EVENTS: Final = 50


def _today(now: datetime) -> tuple[datetime, datetime]:
    """Today in the server's time zone, as the operator reads a day."""
    local = now.astimezone()
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def _appointment_json(appointment: Appointment) -> dict[str, Any]:
    return {
        "id": appointment.id,
        "kind": appointment.kind.value,
        "starts_at": iso(appointment.starts_at),
        "ends_at": iso(appointment.ends_at),
        "professional_name": appointment.professional_name,
        "cancelled": appointment.cancelled,
    }


async def cabin_entry(hub: Hub, cabin: Cabin, appointments: list[Appointment]) -> dict[str, Any]:
    """One cabin as the dashboard lists it."""
    life = hub.fleet.life(cabin.id)
    latest = None if life is None else life.latest
    report = hub.selftests.latest(cabin.id)
    return {
        "id": cabin.id,
        "name": cabin.name,
        "enrolled": cabin.enrolled,
        "disabled": cabin.disabled,
        "online": hub.rooms.cabin(cabin.id) is not None,
        "last_seen": None if life is None else iso(life.last_seen),
        "since": None if life is None else iso(life.since),
        "heartbeat": None if latest is None else latest.to_json(),
        "appointments_today": [_appointment_json(a) for a in appointments],
        "alerts": [a.to_json() for a in hub.alerts.for_cabin(cabin.id)],
        "config": await hub.config_json(cabin.id),
        "selftest": None
        if report is None
        else {
            "ok": report.report.ok,
            "finished_at": report.report.finished_at,
            "received_at": iso(report.received_at),
            "failed": report.failed,
            "summary": "" if report.report.ok else report.summary(),
        },
    }


async def fleet_snapshot(hub: Hub) -> dict[str, Any]:
    """Every cabin, by id, with the open alerts (those of cabins deleted since included)."""
    config = hub.config
    now = config.clock()
    start, end = _today(now)
    by_cabin: defaultdict[str, list[Appointment]] = defaultdict(list)
    for appointment in await hub.store.list_appointments(since=start, until=end):
        by_cabin[appointment.cabin_id].append(appointment)
    return {
        "type": "fleet",
        "at": iso(now),
        "cabins": [await cabin_entry(hub, c, by_cabin.get(c.id, [])) for c in await hub.store.list_cabins()],
        "alerts": [a.to_json() for a in hub.alerts.open_alerts()],
    }


async def shared_snapshot(hub: Hub, max_age: float) -> str:
    """The fleet snapshot as text, built once per change (and at least every `max_age` seconds), the same for every
    open dashboard."""
    now, changes = time.monotonic(), hub.changes
    cached = hub.snapshot
    if cached is not None and cached[0] == changes and now - cached[1] < max_age:
        return cached[2]
    text = json.dumps(await fleet_snapshot(hub))
    # As of `changes`: a change made while it was built makes the next call build it again.
    hub.snapshot = (changes, now, text)
    return text


@operator
async def show_fleet(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/fleet."""
    return web.json_response(await fleet_snapshot(request.app[HUB]))


@operator
async def cabin_status(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/cabins/{id}/status: what the dashboard's detail view shows."""
    hub = request.app[HUB]
    config = request.app[CONFIG]
    cabin = await request.app[STORE].get_cabin(request.match_info["id"])
    if cabin is None:
        raise ApiError(404, f"no cabin {request.match_info['id']!r}")
    start, end = _today(config.clock())
    appointments = await request.app[STORE].list_appointments(cabin_id=cabin.id, since=start, until=end)
    report = hub.selftests.latest(cabin.id)
    events = await request.app[STORE].audit_log(cabin_id=cabin.id, limit=EVENTS)
    return web.json_response(
        {
            "cabin": await cabin_entry(hub, cabin, appointments),
            "history": [h.to_json() for h in hub.fleet.history(cabin.id)],
            "selftest_report": None if report is None else report.to_json(),
            "events": [
                {"at": iso(e.at), "action": e.action.value, "actor": e.actor, "detail": e.detail} for e in events
            ],
        }
    )


async def _operator_hello(request: web.Request, ws: web.WebSocketResponse) -> str | None:
    """The first message must be {"type": "hello", "token": "<operator key>"}; returns its audit label."""
    config = request.app[CONFIG]
    try:
        msg = await ws.receive(timeout=config.hello_timeout)
    except TimeoutError:
        await ws.close(code=CloseCode.AUTH_TIMEOUT, message=b"no hello within the time allowed")
        return None
    key = None
    if msg.type is WSMsgType.TEXT:
        with contextlib.suppress(ValueError):
            data = json.loads(msg.data)
            if isinstance(data, dict) and data.get("type") == "hello" and isinstance(data.get("token"), str):
                key = data["token"]
    if key is None or not config.operator_key_ok(key):
        log.warning("refused a dashboard connection from %s: %s", request.remote, "bad key" if key else "no hello")
        reason = "invalid operator API key" if key else "the first message must be a hello with the operator key"
        await ws.send_str(json.dumps({"type": "error", "code": 4401, "message": reason}))
        await ws.close(code=CloseCode.UNAUTHORIZED, message=reason.encode())
        return None
    return key_label(key)


async def live_fleet(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/fleet/live: the fleet snapshot now and after every change, until the operator leaves."""
    hub = request.app[HUB]
    views = hub.live_views
    ws = web.WebSocketResponse(heartbeat=request.app[CONFIG].heartbeat, max_msg_size=4096)
    await ws.prepare(request)
    if views >= MAX_LIVE_VIEWS:
        reason = f"too many live dashboards open (at most {MAX_LIVE_VIEWS}): close one, or try again later"
        await ws.send_str(json.dumps({"type": "error", "code": int(CloseCode.RATE_LIMITED), "message": reason}))
        await ws.close(code=CloseCode.RATE_LIMITED, message=b"too many live dashboards open")
        return ws
    hub.live_views += 1
    try:
        label = await _operator_hello(request, ws)
        if label is None:
            return ws
        log.info("dashboard opened from %s (%s)", request.remote, label)
        reader = asyncio.create_task(_drain(ws), name="fleet-live-reader")
        try:
            while not ws.closed and not reader.done():
                changed = hub.changed
                await ws.send_str(await shared_snapshot(hub, REFRESH / 2))
                waiter = asyncio.ensure_future(changed.wait())
                await asyncio.wait({waiter, reader}, timeout=REFRESH, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if not reader.done():
                    await asyncio.sleep(COALESCE)
        except ConnectionResetError:
            pass
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    finally:
        hub.live_views -= 1
        if not ws.closed:
            await ws.close()
    return ws


async def _drain(ws: web.WebSocketResponse) -> None:
    """The dashboard sends nothing after its hello: read until it closes (garbage closes it)."""
    async for msg in ws:
        if msg.type is not WSMsgType.TEXT:
            break
        await ws.close(code=CloseCode.PROTOCOL_ERROR, message=b"the live view takes no messages")
        break


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/fleet", show_fleet)
    app.router.add_get(f"{PREFIX}/fleet/live", live_fleet)
    app.router.add_get(f"{PREFIX}/cabins/{{id}}/status", cabin_status)
