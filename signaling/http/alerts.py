"""The operators' alerts: GET /api/v1/alerts, POST /api/v1/alerts/{id}/resolve.

Calls for help and cabin incidents, each with its kind; resolving a call for help tells the cabin's screen.
"""

from __future__ import annotations

import logging

from aiohttp import web

from signaling.alerts import AlertKind, AlertNotFound
from signaling.http.rest import PREFIX, ApiError, audit, operator
from signaling.keys import CONFIG, HUB
from signaling.models import AuditAction

log = logging.getLogger("cabine.signaling.alerts")


@operator
async def list_alerts(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/alerts: open alerts (oldest first), recently resolved ones, and which cabins are online."""
    hub = request.app[HUB]
    return web.json_response(
        {
            "alerts": [a.to_json() for a in hub.alerts.open_alerts()],
            "recently_resolved": [a.to_json() for a in hub.alerts.recently_resolved()],
            "online_cabins": sorted(hub.rooms.cabin_ids()),
        }
    )


@operator
async def resolve_alert(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/alerts/{id}/resolve: someone is dealing with it; for a call for help, the cabin's screen stops
    saying "coming". Idempotent: resolving a recently resolved alert answers it again."""
    hub = request.app[HUB]
    config = request.app[CONFIG]
    try:
        alert, closed = hub.alerts.resolve(request.match_info["id"], config.clock(), operator)
    except AlertNotFound as exc:
        raise ApiError(404, str(exc)) from None
    if closed:
        log.info("cabin %s: alert %s (%s) resolved", alert.cabin_id, alert.id, alert.kind.value)
        help_alert = alert.kind is AlertKind.HELP
        audit(
            request,
            AuditAction.HELP_RESOLVED if help_alert else AuditAction.INCIDENT_CLEARED,
            "operator",
            appointment_id=alert.appointment_id,
            cabin_id=alert.cabin_id,
            detail=f"alert {alert.id}" + ("" if help_alert else f" ({alert.kind.value})") + f"; {operator}",
        )
        await hub.alert_resolved(alert)
    return web.json_response(alert.to_json())


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/alerts", list_alerts)
    app.router.add_post(f"{PREFIX}/alerts/{{id}}/resolve", resolve_alert)
