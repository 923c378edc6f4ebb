"""The operators' side of calls for help: GET /api/v1/alerts, POST /api/v1/alerts/{id}/resolve, the /operator/ page.

Same rules as the rest of the REST API (signaling/api.py): `Authorization: Bearer <operator API key>`, every error
is `{"error": message}` with its status. Mount with add_alert_routes(app) BEFORE add_api_routes(app): the API's
catch-all route for unknown endpoints would otherwise answer first.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Final

from aiohttp import web

from signaling.alerts import AlertNotFound
from signaling.models import AuditAction
from signaling.pages import SECURITY_HEADERS
from signaling.protocol import HelpStatus
from signaling.ws import CONFIG, HUB

log = logging.getLogger("cabine.signaling.alerts")

PREFIX: Final = "/api/v1"


def _error(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response({"error": message}, status=status, headers=headers)


def _operator_label(request: web.Request) -> str | None:
    """The audit label of a valid operator key (a prefix of its SHA-256), or None if the key is missing or wrong."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or not request.app[CONFIG].operator_key_ok(key):
        return None
    return "operator key sha256:" + hashlib.sha256(key.encode()).hexdigest()[:8]


def _refusal(request: web.Request) -> web.Response:
    if not request.headers.get("Authorization"):
        return _error(401, "missing operator API key: send the header 'Authorization: Bearer <key>'")
    log.warning("refused an operator request from %s: invalid API key", request.remote)
    return _error(401, "invalid operator API key")


async def list_alerts(request: web.Request) -> web.Response:
    """GET /api/v1/alerts: open calls for help (oldest first), recently resolved ones, and which cabins are online."""
    if _operator_label(request) is None:
        return _refusal(request)
    hub = request.app[HUB]
    return web.json_response(
        {
            "alerts": [a.to_json() for a in hub.alerts.open_alerts()],
            "recently_resolved": [a.to_json() for a in hub.alerts.recently_resolved()],
            "online_cabins": sorted(hub.rooms.cabin_ids()),
        }
    )


async def resolve_alert(request: web.Request) -> web.Response:
    """POST /api/v1/alerts/{id}/resolve: someone is dealing with it; the cabin's screen stops saying "coming".

    Idempotent: resolving a recently resolved alert answers it again.
    """
    operator = _operator_label(request)
    if operator is None:
        return _refusal(request)
    hub = request.app[HUB]
    config = request.app[CONFIG]
    try:
        alert, closed = hub.alerts.resolve(request.match_info["id"], config.clock(), operator)
    except AlertNotFound as exc:
        return _error(404, str(exc))
    if closed:
        log.info("cabin %s: alert %s resolved", alert.cabin_id, alert.id)
        hub.audit(
            AuditAction.HELP_RESOLVED,
            "operator",
            appointment_id=alert.appointment_id,
            cabin_id=alert.cabin_id,
            address=request.remote,
            detail=f"alert {alert.id}; {operator}",
        )
        cabin = hub.rooms.cabin(alert.cabin_id)
        if cabin is not None:
            await cabin.send(HelpStatus(alert_id=alert.id, open=False))
    return web.json_response(alert.to_json())


async def operator_page(request: web.Request) -> web.FileResponse:
    """GET /operator/: the operator's page (it asks for the API key itself; the page holds no secret)."""
    return web.FileResponse(request.app[CONFIG].webclient_dir / "operator" / "index.html", headers=SECURITY_HEADERS)


async def operator_redirect(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/operator/")


def add_alert_routes(app: web.Application) -> None:
    """Mount the alert API and the operator page on `app` (which holds CONFIG and HUB)."""
    app.router.add_get(f"{PREFIX}/alerts", list_alerts)
    app.router.add_post(f"{PREFIX}/alerts/{{id}}/resolve", resolve_alert)
    app.router.add_get("/operator", operator_redirect)
    app.router.add_get("/operator/", operator_page)
