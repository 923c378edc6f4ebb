"""Probes and figures for the machines that watch the server: /healthz, /readyz, /room-node, /metrics.

/healthz says the process answers (a liveness probe: restart it if not). /readyz says it can serve now: its store
answers and it is not shutting down (a load balancer's health check: send it no one if not). /metrics is the
Prometheus exposition, for the operator's key (`Authorization: Bearer`, as Prometheus's `authorization` sends it).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from signaling.http.rest import error_response, json_errors, operator
from signaling.keys import HUB, STORE
from signaling.metrics import CONTENT_TYPE
from signaling.store import StoreError

log = logging.getLogger("cabine.signaling")


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process is alive."""
    return web.json_response({"status": "ok"})


READY_TIMEOUT = 2.0


@json_errors
async def readyz(request: web.Request) -> web.StreamResponse:
    """GET /readyz: 200 when the store answers and the server is not shutting down, else 503 with the reason."""
    if request.app[HUB].closing:
        return error_response(503, "shutting down")
    try:
        # A load balancer asks every few seconds: a database that hangs is a node that is not ready.
        async with asyncio.timeout(READY_TIMEOUT):
            await request.app[STORE].get_cabin("")
    except (StoreError, TimeoutError) as exc:
        log.error("not ready: the store does not answer: %s", exc or "no answer in time")
        return error_response(503, "the database does not answer")
    cluster = request.app[HUB].cluster
    if cluster is not None:
        if not cluster.reachable:
            return error_response(503, "Redis does not answer")
        if cluster.room_node is None:
            return error_response(503, "no node of the cluster runs the rooms yet")
        return web.json_response({"status": "ready", "node": cluster.node_id, "room_node": cluster.room_node})
    return web.json_response({"status": "ready"})


async def room_node(request: web.Request) -> web.StreamResponse:
    """GET /room-node: 200 on the node of a cluster that runs the rooms (and on a single server), else 503: the
    load balancer's check for the REST API's backend."""
    hub = request.app[HUB]
    cluster = hub.cluster
    if hub.closing or (cluster is not None and not cluster.is_room_node):
        return web.json_response({"room_node": None if cluster is None else cluster.room_node}, status=503)
    return web.json_response({"room_node": None if cluster is None else cluster.node_id})


@operator
async def metrics(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /metrics: the Prometheus text format."""
    body = request.app[HUB].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/room-node", room_node)
    app.router.add_get("/metrics", metrics)
