"""create_app(): the one place where routes, application keys, cleanup contexts and middlewares meet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from aiohttp.web_request import BaseRequest

from signaling import pages
from signaling.alerts_api import add_alert_routes
from signaling.api import ON_APPOINTMENT_CREATED, ON_CABIN_DISABLED, ON_CANCEL, add_api_routes
from signaling.config import ServerConfig
from signaling.ws import CONFIG, HUB, Hub, websocket

log = logging.getLogger("cabine.signaling")

_TOKEN_IN_PATH = re.compile(r"^(/join/)[^/?#]+")


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log lines without the credential that a join link carries in its path."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = _TOKEN_IN_PATH.sub(lambda m: m.group(1) + "<token>", request.path)
        self.logger.info('%s "%s %s" %s %.1fms', request.remote, request.method, path, response.status, time * 1000)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unexpected failures become a plain 500 with no traceback in the response."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, _TOKEN_IN_PATH.sub(r"\1<token>", request.path))
        return web.json_response({"error": "internal error"}, status=500)


async def _hub(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]

    async def refresh() -> None:
        # Windows open and appointments are added while a cabin is connected: keep its screen current.
        while True:
            await asyncio.sleep(30)
            try:
                await hub.refresh_schedules()
            except Exception:
                log.exception("schedule refresh failed")

    task = asyncio.create_task(refresh(), name="schedule-refresh")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # On shutdown, say goodbye to every connected client so pages show "server stopped", not a hang.
    await hub.close_all()


def create_app(config: ServerConfig) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=64 * 1024)
    app[CONFIG] = config
    hub = Hub(config)
    app[HUB] = hub
    app[ON_CANCEL] = hub.appointment_cancelled
    app[ON_CABIN_DISABLED] = hub.cabin_disabled
    app[ON_APPOINTMENT_CREATED] = hub.appointment_created
    app.cleanup_ctx.append(_hub)
    app.router.add_get("/", pages.index)
    app.router.add_get("/healthz", pages.health)
    app.router.add_get("/favicon.ico", pages.favicon)
    app.router.add_get("/join", pages.join_without_token)
    app.router.add_get("/join/", pages.join_without_token)
    app.router.add_get("/join/{token}", pages.join)
    app.router.add_get("/ws/{role}", websocket)
    app.router.add_static("/static/", config.webclient_dir, follow_symlinks=False)
    add_alert_routes(app)  # before the API's catch-all for unknown endpoints
    add_api_routes(app)
    return app
