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

from signaling.cluster import Cluster
from signaling.config import ServerConfig
from signaling.forwarding import forwarded_client
from signaling.http import alerts, appointments, cabin_config, cabins, fleet, health, pages, rest
from signaling.hub import Hub
from signaling.keys import (
    CLIENT_ADDRESS,
    CLUSTER,
    CONFIG,
    HUB,
    ON_APPOINTMENT_CREATED,
    ON_CABIN_DISABLED,
    ON_CANCEL,
    STORE,
)
from signaling.node_link import RemoteSocket
from signaling.protocol import CloseCode, Role
from signaling.ws import serve_socket, websocket

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
            if hub.cluster is not None and not hub.cluster.is_room_node:
                continue  # a door has no rooms, and must not tell the fleet's alerts or endings a second time
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


async def _cluster(app: web.Application) -> AsyncIterator[None]:
    """With --redis: this node joins the cluster; clients carried from other nodes are served here while this node
    runs the rooms, and every connection is dropped (to come back) when another node takes over."""
    config, hub = app[CONFIG], app[HUB]
    if config.redis_url is None:
        yield
        return
    serving: set[asyncio.Task[None]] = set()

    def on_remote(socket: RemoteSocket) -> None:
        try:
            role = Role(socket.role)
        except ValueError:
            socket.end()
            return
        task = asyncio.create_task(serve_socket(hub, socket, role, socket.peer), name="remote-client")
        serving.add(task)
        task.add_done_callback(serving.discard)

    async def on_room_node(mine: bool) -> None:
        if mine:
            hub.taking_over()
        else:
            await hub.drop_all(CloseCode.SERVICE_RESTART, "signaling node changed, connect again")

    async with Cluster(config.redis_url) as cluster:
        cluster.on_remote = on_remote
        cluster.on_room_node = on_room_node
        hub.cluster = cluster
        app[CLUSTER] = cluster
        try:
            yield
        finally:
            # Other nodes go on: clients come back at once, to one of them.
            await hub.drop_all(CloseCode.SERVICE_RESTART, "signaling node stopping, connect again")
            hub.cluster = None
    for task in list(serving):
        task.cancel()
    for task in list(serving):
        with contextlib.suppress(asyncio.CancelledError):
            await task


@web.middleware
async def room_node_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """In a cluster, the operators' and booking systems' API is answered by the node that runs the rooms (the load
    balancer sends it there; a request that reaches another node is told to try again)."""
    cluster = request.app[HUB].cluster
    if cluster is None or cluster.is_room_node or not request.path.startswith(_ROOM_NODE_PATHS):
        return await handler(request)
    return web.json_response(
        {"error": "this signaling node does not run the rooms now; try again (the load balancer knows which does)"},
        status=503,
        headers={"Retry-After": "1"},
    )


# What only the room node answers: the REST API (the live state it reads and changes is there).
_ROOM_NODE_PATHS = ("/api/",)


def create_app(config: ServerConfig) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, forwarded_middleware, room_node_middleware, audited_middleware],
        client_max_size=64 * 1024,
    )
    app[CONFIG] = config
    hub = Hub(config)
    app[HUB] = hub
    app[STORE] = hub.store
    app[ON_CANCEL] = hub.appointment_cancelled
    app[ON_CABIN_DISABLED] = hub.cabin_disabled
    app[ON_APPOINTMENT_CREATED] = hub.appointment_created
    app.cleanup_ctx.append(_housekeeping)
    app.cleanup_ctx.append(_cluster)
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
