"""Every aiohttp application and request key of the signaling app, in one place: handlers import these, never
each other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from signaling.async_store import AsyncStore
from signaling.cluster import Cluster
from signaling.config import ServerConfig
from signaling.hub import Hub

Hook = Callable[[str], Awaitable[None]]

CONFIG: web.AppKey[ServerConfig] = web.AppKey("config", ServerConfig)
# The live state: rooms, connected cabins, alerts, self-test reports.
HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
# With --redis: this node's part in the cluster (absent for one process).
CLUSTER: web.AppKey[Cluster] = web.AppKey("cluster", Cluster)
# The store, off the event loop (the hub's).
STORE: web.AppKey[AsyncStore] = web.AppKey("store", AsyncStore)
# Awaited with the appointment id after a cancellation: end its call and turn its professional away.
ON_CANCEL: web.AppKey[Hook] = web.AppKey("on_cancel")
# Awaited with the cabin id when the cabin's current connection must end: it was disabled, or re-enrolled with a
# new key (a replaced or stolen PC must not stay connected with the old one).
ON_CABIN_DISABLED: web.AppKey[Hook] = web.AppKey("on_cabin_disabled")
# Awaited with the appointment id after a creation: a connected cabin's schedule can be refreshed at once.
ON_APPOINTMENT_CREATED: web.AppKey[Hook] = web.AppKey("on_appointment_created")

# The client's address behind a trusted proxy, kept on the original request for the access log (handlers see it
# as `request.remote` on the request the forwarding middleware hands them).
CLIENT_ADDRESS: web.RequestKey[str] = web.RequestKey("client_address", str)
