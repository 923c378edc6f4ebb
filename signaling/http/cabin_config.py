"""A cabin's configuration set from afar: GET and PUT /api/v1/cabins/{id}/config.

Every change is a new version, kept and audited; the connected cabin gets it at once (a cabin offline gets it when
it connects), checks it with its own rules, applies it without restarting (at the end of a call in progress when
it must) and says so; a refusal and its reason show here and on the dashboard.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from aiohttp import web

from signaling.cabin_settings import SettingsError, check_settings
from signaling.http.rest import PREFIX, ApiError, audit, body, iso, only, operator
from signaling.keys import CONFIG, HUB, STORE
from signaling.models import AuditAction

log = logging.getLogger("cabine.signaling.api")

HISTORY: Final = 20


async def _config_response(request: web.Request, cabin_id: str) -> dict[str, Any]:
    hub = request.app[HUB]
    versions = await request.app[STORE].cabin_settings(cabin_id, limit=HISTORY)
    latest = versions[0] if versions else None
    return {
        **await hub.config_json(cabin_id),
        "settings": {} if latest is None else latest.settings,
        "created_at": None if latest is None else iso(latest.created_at),
        "created_by": None if latest is None else latest.created_by,
        "history": [
            {"version": v.version, "created_at": iso(v.created_at), "created_by": v.created_by} for v in versions
        ],
    }


async def _cabin_id(request: web.Request) -> str:
    cabin_id = request.match_info["id"]
    if await request.app[STORE].get_cabin(cabin_id) is None:
        raise ApiError(404, f"no cabin {cabin_id!r}")
    return cabin_id


@operator
async def show_config(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/cabins/{id}/config: the latest version, what the cabin did with it, the earlier versions."""
    return web.json_response(await _config_response(request, await _cabin_id(request)))


@operator
async def set_config(request: web.Request, operator: str) -> web.StreamResponse:
    """PUT /api/v1/cabins/{id}/config {"settings": {...}}: a new version for the cabin (400 with the reason if it
    cannot be used)."""
    cabin_id = await _cabin_id(request)
    data = await body(request)
    only(data, ("settings",))
    try:
        settings = check_settings(data.get("settings"))
    except SettingsError as exc:
        raise ApiError(400, str(exc)) from None
    config = request.app[CONFIG]
    stored = await request.app[STORE].add_cabin_settings(cabin_id, settings, config.clock(), operator)
    audit(request, AuditAction.CONFIG_CHANGED, "operator", cabin_id=cabin_id, detail=f"v{stored.version}; {operator}")
    log.info("cabin %s: configuration v%d set", cabin_id, stored.version)
    await request.app[HUB].send_config(cabin_id)
    return web.json_response(await _config_response(request, cabin_id))


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/cabins/{{id}}/config", show_config)
    app.router.add_put(f"{PREFIX}/cabins/{{id}}/config", set_config)
