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

from signaling.config import ServerConfig
from signaling.forwarding import forwarded_client
from signaling.http import alerts, appointments, cabin_config, cabins, fleet, health, pages, rest
from signaling.hub import Hub
from signaling.keys import CLIENT_ADDRESS, CONFIG, HUB, ON_APPOINTMENT_CREATED, ON_CABIN_DISABLED, ON_CANCEL, STORE
from signaling.ws import websocket

log = logging.getLogger("cabine.signaling")

_TOKEN_IN_PATH = re.compile(r"^(/join/)[^/?#]+")


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log lines without the credential that a join link carries in its path; behind a trusted proxy, with
    the client's forwarded address."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = _TOKEN_IN_PATH.sub(lambda m: m.group(1) + "<token>", request.path)
        address = request.get(CLIENT_ADDRESS) or request.remote
        self.logger.info('%s "%s %s" %s %.1fms', address, request.method, path, response.status, time * 1000)


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


@web.middleware
async def forwarded_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Behind a trusted proxy, handlers see the client's address as `request.remote` (audit, logs, limits)."""
    proxies = request.app[CONFIG].trusted_proxies
    if not proxies:
        return await handler(request)
    client = forwarded_client(
        request.remote,
        request.headers.getall("X-Forwarded-For", ()),
        request.headers.get("X-Forwarded-Proto"),
        proxies,
    )
    if client.address is None or (client.address == request.remote and client.scheme is None):
        return await handler(request)
    request[CLIENT_ADDRESS] = client.address  # the access log sees this original request
    if client.scheme is None:
        return await handler(request.clone(remote=client.address))
    return await handler(request.clone(remote=client.address, scheme=client.scheme))


async def _housekeeping(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    interval = app[CONFIG].refresh_interval

    async def loop() -> None:
        # Windows open and appointments are added while a cabin is connected: keep its screen current; and
        # forget the rooms of appointments that are over.
        while True:
            await asyncio.sleep(interval)
            try:
                await hub.housekeeping()
            except Exception:
                log.exception("housekeeping failed")

    task = asyncio.create_task(loop(), name="signaling-housekeeping")
    await hub.webhooks.__aenter__()
    yield
    await hub.webhooks.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # On shutdown, say goodbye to every connected client so pages show "server stopped", not a hang.
    await hub.close_all()
    # What is queued for the store (audit events) is written before the store's thread stops.
    await asyncio.to_thread(hub.store.close)


@web.middleware
async def audited_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request's audit events are written before its answer leaves: whoever reads the log next sees them."""
    try:
        return await handler(request)
    finally:
        await request.app[STORE].flush()


def create_app(config: ServerConfig) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, forwarded_middleware, audited_middleware], client_max_size=64 * 1024
    )
    app[CONFIG] = config
    hub = Hub(config)
    app[HUB] = hub
    app[STORE] = hub.store
    app[ON_CANCEL] = hub.appointment_cancelled
    app[ON_CABIN_DISABLED] = hub.cabin_disabled
    app[ON_APPOINTMENT_CREATED] = hub.appointment_created
    app.cleanup_ctx.append(_housekeeping)
    pages.add_routes(app)
    health.add_routes(app)
    app.router.add_get("/ws/{role}", websocket)
    # Only the pages signaling serves and what they use: not the package's own files, nor the cabin screen's.
    for folder in ("pro", "operator", "shared", "vendor"):
        app.router.add_static(f"/static/{folder}/", config.webclient_dir / folder, follow_symlinks=False)
    alerts.add_routes(app)
    appointments.add_routes(app)
    cabins.add_routes(app)
    fleet.add_routes(app)
    cabin_config.add_routes(app)
    rest.add_catch_all(app)  # last: it answers every other /api/v1 path
    return app
