"""Several signaling nodes on one Redis: which node runs the rooms, who is alive, and the links between them.

Every node accepts WebSockets (it is a door). One node at a time, the room node, runs the rooms, the waiting rooms,
the cabins' connections and the fleet's live state: a professional and a cabin that reached different doors meet
in its memory as if they had reached the same node. A door carries each of its clients to the room node over a
link (signaling/node_link.py) on Redis's publish/subscribe, acknowledged and resent.

The room node holds a lease in Redis (`cabine:room-node`), renewed every `tick`; when it stops renewing (it died,
or lost Redis), another node takes the lease after `lease` seconds and becomes the room node. Every door then
closes its clients' connections with 1012 ("connect again"): they come back through the load balancer, their
calls' media (peer to peer) never stopping, and the new room node rebuilds the rooms from what they say again
(presence, help, incidents) and from the store and Redis (admissions, who checked in).

A Redis restart loses the lease and the links' frames in flight: the room node takes its lease back at once, the
others wait one more tick before trying, and unacknowledged frames are published again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from signaling.errors import SignalingError
from signaling.node_link import LOST, DoorLink, LinkBroken, LinkEnd, Received, RemoteSocket, ack, frame, parse_frame

log = logging.getLogger("cabine.signaling")

PREFIX: Final = "cabine:"
ROOM_NODE_KEY: Final = PREFIX + "room-node"
# Renew the room node's lease if it is still ours, or take it back if Redis forgot it (a restart): 1 if ours now.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Links closed recently: a frame that arrives late for one is acknowledged and dropped, not taken for a new link.
_CLOSED_REMEMBERED = 10_000
# Frames waiting to be published, at most (Redis away: the links' outboxes keep them meanwhile).
_MAX_QUEUED = 50_000
# A link whose first frame ("open") has not come this long after another of its frames is dropped.
_OPEN_WAIT = 30.0


class ClusterError(SignalingError, ConnectionError):
    """Redis cannot be reached or refused us; the message says where and why (never a password)."""


def redacted(url: str) -> str:
    """The Redis URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user + ':***' if ':' in credentials else user}@{host}"


async def check_redis(url: str, timeout: float = 5.0) -> None:
    """Reach Redis at `url` and ask it something.

    Raises:
        ClusterError: the URL is not a Redis URL, or Redis does not answer in time, or refuses us.
    """
    try:
        client = aioredis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as exc:
        raise ClusterError(f"--redis {redacted(url)}: not a Redis URL ({exc})") from None
    try:
        async with asyncio.timeout(timeout):
            await client.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach Redis at {redacted(url)}: {exc or 'no answer in time'}") from None
    finally:
        await client.aclose()


OnRemote = Callable[[RemoteSocket], None]
OnRoomNode = Callable[[bool], Awaitable[None]]


class Cluster:
    """This node's part in a cluster: an async context manager (`async with Cluster(url) as cluster`).

    `on_remote` is called on the room node with each client that a door carries to it; `on_room_node` is awaited
    when this node becomes the room node (True) or stops being it (False).
    """

    def __init__(
        self,
        url: str,
        *,
        node_id: str | None = None,
        tick: float = 1.0,
        lease: float = 3.0,
        resend_after: float = 1.0,
    ) -> None:
        if not (0 < tick < lease):
            raise ValueError(f"the cluster's tick ({tick} s) must be shorter than its lease ({lease} s)")
        self.url = url
        self.node_id = node_id or secrets.token_hex(6)
        self.tick = tick
        self.lease = lease
        self.resend_after = resend_after
        self.on_remote: OnRemote | None = None
        self.on_room_node: OnRoomNode | None = None
        self.room_node: str | None = None  # who runs the rooms, as last read
        self._redis = aioredis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0)
        self._renew = self._redis.register_script(_RENEW)
        self._links: dict[str, LinkEnd] = {}
        self._closed_links: OrderedDict[str, None] = OrderedDict()
        self._first_seen: dict[str, float] = {}  # links waiting for their "open" frame
        self._outgoing: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._absent = 0  # ticks in a row that found no room node
        self._healthy = 0  # ticks in a row that reached Redis
        self._missing: dict[str, int] = {}  # doors not seen alive, in ticks in a row
        self.reachable = False  # the last tick reached Redis

    @property
    def is_room_node(self) -> bool:
        return self.room_node == self.node_id

    @property
    def channel(self) -> str:
        return f"{PREFIX}node:{self.node_id}"

    # --- life ------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Cluster:
        try:
            async with asyncio.timeout(5.0):
                await self._redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            await self._redis.aclose()
            raise ClusterError(f"cannot reach Redis at {redacted(self.url)}: {exc or 'no answer in time'}") from None
        self._tasks = [
            asyncio.create_task(self._publisher(), name="cluster-publisher"),
            asyncio.create_task(self._reader(), name="cluster-reader"),
            asyncio.create_task(self._ticker(), name="cluster-ticker"),
        ]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop: links end (doors' clients are told to connect again, the room node that they left), the lease is
        given up if ours."""
        for end in list(self._links.values()):
            if isinstance(end, DoorLink):
                self.close_door(end)
            self._end_link(end, LOST)
        # What the links said last (closes) leaves before the publisher stops.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._outgoing.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                if self.is_room_node:
                    # Give the lease up: another node takes over at its next tick instead of after the lease.
                    await self._redis.eval(
                        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
                        1,
                        ROOM_NODE_KEY,
                        self.node_id,
                    )
                await self._redis.delete(f"{PREFIX}alive:{self.node_id}")
        await self._redis.aclose()

    # --- links -----------------------------------------------------------------------------------------------

    def open_door(self, role: str, peer: str) -> DoorLink | None:
        """Carry a client that reached this node to the room node; None when no room node is known now."""
        room_node = self.room_node
        if room_node is None or room_node == self.node_id:
            return None
        link = DoorLink(secrets.token_hex(8), self.node_id, room_node, self._publish, resend_after=self.resend_after)
        self._links[link.link] = link
        link.put({"open": {"role": role, "peer": peer}}, time.monotonic())
        return link

    def send(self, end: LinkEnd, payload: dict[str, Any]) -> None:
        """Send on a link; a link that cannot go on ends (the door's client is told to connect again)."""
        try:
            end.put(payload, time.monotonic())
        except LinkBroken as exc:
            log.warning("link %s to node %s: %s", end.link, end.other, exc)
            self._end_link(end, LOST)

    def close_door(self, link: DoorLink) -> None:
        """The client at this door went (or was closed here): tell the room node, unless it closed the link itself;
        the link is forgotten once that is acknowledged."""
        if link.link in self._links and not link.room_closed:
            link.room_closed = True
            self.send(link, {"close": [1000, "client gone"]})

    def _end_link(self, end: LinkEnd, close: tuple[int, str]) -> None:
        """End a link at once, whatever it waits for (the other node is gone, or the room node changed)."""
        self._forget(end)
        if isinstance(end, DoorLink):
            end.lost(*close)
        elif isinstance(end, RemoteSocket):
            end.end()

    def _publish(self, node: str, text: str) -> None:
        # While Redis is away the queue would only grow: what is dropped here is still in a link's outbox (or is an
        # acknowledgement, sent again when its frame is), and goes out again once Redis answers.
        if self._outgoing.qsize() < _MAX_QUEUED:
            self._outgoing.put_nowait((f"{PREFIX}node:{node}", text))

    def _received(self, text: bytes) -> None:
        received = parse_frame(text)
        if received is None:
            log.warning("cluster: a malformed frame on %s, dropped", self.channel)
            return
        end = self._links.get(received.link)
        if end is None:
            end = self._new_link(received)
            if end is None:
                return
        try:
            ready = end.take(received)
        except LinkBroken as exc:
            log.warning("link %s from node %s: %s", end.link, end.other, exc)
            self._end_link(end, LOST)
            return
        for payload in ready:
            if isinstance(end, RemoteSocket) and "open" in payload:
                self._opened(end, payload["open"])
            elif isinstance(end, RemoteSocket | DoorLink):
                end.deliver(payload)
        self._forget_if_done(end)

    def _forget_if_done(self, end: LinkEnd) -> None:
        """A link both of whose ends are finished, all its frames acknowledged, is forgotten."""
        done = end.room_closed if isinstance(end, DoorLink) else isinstance(end, RemoteSocket) and end.closed
        if done and end.outbox.pending == 0:
            self._forget(end)

    def _forget(self, end: LinkEnd) -> None:
        """Drop a link, remembering its id a while (a late frame for it is then acknowledged, not taken as new)."""
        if self._links.pop(end.link, None) is not None:
            self._closed_links[end.link] = None
            while len(self._closed_links) > _CLOSED_REMEMBERED:
                self._closed_links.popitem(last=False)

    def _new_link(self, received: Received) -> LinkEnd | None:
        if received.link in self._closed_links or received.kind == "a":
            if received.kind == "f":
                # Acknowledge it anyway, so that the other end stops sending it.
                self._publish(received.node, ack(received.link, self.node_id, received.seq))
            return None
        if not self.is_room_node:
            # A door that still thinks we run the rooms: it is told to let its client connect again.
            # (Its first frame from us; said again for each of its frames, the door delivers it once.)
            log.info("cluster: a link from node %s, but this node does not run the rooms", received.node)
            self._publish(received.node, frame(received.link, self.node_id, 1, {"close": list(LOST)}))
            return None
        end = RemoteSocket(
            received.link,
            self.node_id,
            received.node,
            self._publish,
            role="",
            peer="",
            resend_after=self.resend_after,
        )
        self._links[end.link] = end
        self._first_seen[end.link] = time.monotonic()
        return end

    def _opened(self, end: RemoteSocket, opening: object) -> None:
        """The link's first frame came: who the client is; the room node's handler takes it from here."""
        self._first_seen.pop(end.link, None)
        if not isinstance(opening, dict) or not isinstance(opening.get("role"), str):
            log.warning("cluster: link %s from node %s did not start with 'open'; closed", end.link, end.other)
            self.send(end, {"close": [4400, "malformed link"]})
            self._end_link(end, LOST)
            return
        end.role = opening["role"]
        end.peer = str(opening.get("peer", "?"))[:64]
        if self.on_remote is None:
            self._end_link(end, LOST)
            return
        self.on_remote(end)

    # --- room state shared with the next room node -----------------------------------------------------------

    async def remember_presence(self, appointment_id: str, present: bool, until: datetime) -> None:
        """Keep whether the citizen is in the cabin for this appointment, until its room would be over."""
        key = f"{PREFIX}present:{appointment_id}"
        try:
            async with asyncio.timeout(2.0):
                if present:
                    await self._redis.set(key, b"1", pxat=int(until.timestamp() * 1000))
                else:
                    await self._redis.delete(key)
        except (RedisError, OSError, TimeoutError) as exc:
            # The cabin says it again when it reconnects: a missed write costs a moment, not the appointment.
            log.warning("cluster: presence of apt %s not kept in Redis: %s", appointment_id[:12], exc)

    async def recall_presence(self, appointment_id: str) -> bool:
        """Whether a previous room node saw the citizen in the cabin for this appointment."""
        try:
            async with asyncio.timeout(2.0):
                return bool(await self._redis.exists(f"{PREFIX}present:{appointment_id}"))
        except (RedisError, OSError, TimeoutError):
            return False

    # --- limits shared by every node -------------------------------------------------------------------------

    async def count(self, key: str, window: float) -> int:
        """Add one to a counter shared by the nodes that resets every `window` seconds; its value (0 if Redis is
        unreachable: a limit is not worth refusing everyone)."""
        name = f"{PREFIX}limit:{key}"
        try:
            async with asyncio.timeout(2.0):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(name)
                    pipe.pexpire(name, int(window * 1000), nx=True)
                    value, _ = await pipe.execute()
            return int(value)
        except (RedisError, OSError, TimeoutError):
            return 0

    async def peek(self, key: str) -> int:
        try:
            async with asyncio.timeout(2.0):
                value = await self._redis.get(f"{PREFIX}limit:{key}")
            return int(value or 0)
        except (RedisError, OSError, TimeoutError, ValueError):
            return 0

    # --- the tasks -------------------------------------------------------------------------------------------

    async def _publisher(self) -> None:
        """Publish queued frames in order, a batch per round trip; a failed batch is lost, its frames are resent."""
        while True:
            batch = [await self._outgoing.get()]
            while not self._outgoing.empty() and len(batch) < 512:
                batch.append(self._outgoing.get_nowait())
            try:
                async with asyncio.timeout(2.0):
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for channel, text in batch:
                            pipe.publish(channel, text)
                        await pipe.execute()
            except (RedisError, OSError, TimeoutError) as exc:
                log.info("cluster: %d frames not published (%s); they are sent again", len(batch), exc)
                await asyncio.sleep(0.2)
            finally:
                for _ in batch:
                    self._outgoing.task_done()

    async def _reader(self) -> None:
        """Read this node's channel, for ever: after a Redis failure, subscribe again."""
        failures = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                failures = 0
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._received(message["data"])
            except (RedisError, OSError, TimeoutError) as exc:
                failures += 1
                if failures == 1:
                    log.warning("cluster: lost Redis (%s); subscribing again", exc)
                await asyncio.sleep(min(0.2 * failures, 2.0))
            except Exception:
                log.exception("cluster: reading the node channel failed")
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _ticker(self) -> None:
        while True:
            try:
                await self._beat()
            except Exception:
                log.exception("cluster: a tick failed")
            if self.reachable:
                self._resend()
            await asyncio.sleep(self.tick)

    async def _beat(self) -> None:
        """Say we are alive, keep or look for the room node, and see which doors are gone."""
        lease_ms = int(self.lease * 1000)
        doors = sorted({e.other for e in self._links.values() if isinstance(e, RemoteSocket)})
        try:
            async with asyncio.timeout(min(2.0, self.lease)):
                # Our own key still there means Redis did not restart since the last tick.
                kept = await self._redis.set(f"{PREFIX}alive:{self.node_id}", b"1", px=lease_ms, get=True) is not None
                if self.is_room_node:
                    renewed = await self._renew([ROOM_NODE_KEY], [self.node_id, lease_ms])
                    holder: str | None = self.node_id if renewed else None
                    if holder is None:
                        holder = _text(await self._redis.get(ROOM_NODE_KEY))
                else:
                    holder = _text(await self._redis.get(ROOM_NODE_KEY))
                    if holder is None:
                        self._absent += 1
                        # The room node died: take over at once. Redis restarted (it forgot us too): one tick of
                        # patience, so that the room node takes its lease back first and the rooms do not move.
                        if (kept or self._absent >= 2) and await self._redis.set(
                            ROOM_NODE_KEY, self.node_id, nx=True, px=lease_ms
                        ):
                            holder = self.node_id
                    else:
                        self._absent = 0
                keys = [f"{PREFIX}alive:{d}" for d in doors]
                alive = [bool(v) for v in await self._redis.mget(keys)] if doors else []
        except (RedisError, OSError, TimeoutError) as exc:
            if self.reachable:
                log.warning("cluster: Redis does not answer (%s)", exc or "timeout")
            self.reachable = False
            self._healthy = 0
            return
        if not self.reachable:
            log.info("cluster: Redis answers")
        self.reachable = True
        self._healthy += 1
        if holder is not None or self.is_room_node:
            await self._set_room_node(holder)
        if self._healthy >= 2:
            for door, up in zip(doors, alive, strict=True):
                self._missing[door] = 0 if up else self._missing.get(door, 0) + 1
                if self._missing[door] >= 2:
                    self._door_gone(door)
        for link, seen in list(self._first_seen.items()):
            if time.monotonic() - seen > _OPEN_WAIT:
                self._first_seen.pop(link, None)
                end = self._links.get(link)
                if end is not None:
                    self._end_link(end, LOST)

    async def _set_room_node(self, holder: str | None) -> None:
        before = self.room_node
        if holder == before:
            return
        self.room_node = holder
        # The first one found is news; a change is what an operator wants to see in the logs.
        level = logging.INFO if before is None else logging.WARNING
        log.log(level, "cluster: the room node is now %s (this node is %s)", holder, self.node_id)
        # Doors' clients were carried to the previous room node: they connect again, to reach the new one.
        for end in list(self._links.values()):
            if isinstance(end, DoorLink) or holder != self.node_id:
                self._end_link(end, LOST)
        if self.on_room_node is not None and (before == self.node_id or holder == self.node_id):
            await self.on_room_node(holder == self.node_id)

    def _door_gone(self, door: str) -> None:
        self._missing.pop(door, None)
        gone = [e for e in self._links.values() if isinstance(e, RemoteSocket) and e.other == door]
        if gone:
            log.warning("cluster: node %s is gone; its %d clients left", door, len(gone))
        for end in gone:
            self._end_link(end, LOST)

    def _resend(self) -> None:
        now = time.monotonic()
        for end in list(self._links.values()):
            if end.outbox.pending == 0:
                self._forget_if_done(end)
                continue
            try:
                end.resend(now)
            except LinkBroken as exc:
                log.warning("link %s with node %s: %s", end.link, end.other, exc)
                self._end_link(end, LOST)


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value
