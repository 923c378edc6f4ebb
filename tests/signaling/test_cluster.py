"""Several signaling nodes on one real Redis (redis-server) and one real PostgreSQL, in this process.

A professional on one node and a cabin on another meet and negotiate, every relayed message exactly once; Redis
restarted during negotiation loses nothing and doubles nothing; a node that is not the room node sends the REST API
away; a door node that dies takes its clients out of their rooms; refusals from one address are counted across
nodes; garbage on a node's channel changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import WSMsgType
from aiohttp.test_utils import TestServer

from gateway.identity import CabinIdentity
from signaling.app import RedactingAccessLogger, create_app
from signaling.cluster import Cluster
from signaling.config import ServerConfig, hash_api_key
from signaling.hub import Hub
from signaling.keys import HUB
from signaling.links import professional_token
from signaling.models import Appointment
from signaling.postgres_store import PostgresStore
from signaling.tokens import TokenSigner
from tests.cluster_rig import seed
from tests.conftest import free_port, wait_until
from tests.postgres import PrivatePostgres
from tests.redis_server import PrivateRedis
from tests.signaling.conftest import OPERATOR_KEY, SDP, closed_with, receive, receive_until

pytestmark = pytest.mark.timeout(60)

RELAYED = ("offer", "answer", "candidate")
# Not frames: not JSON, not an object, a negative number, a link that never says who its client is.
JUNK = (b"\xff\xfe", b"[]", b'{"k":"f","l":"x","n":"y","s":-1}', b'{"k":"f","l":"z","n":"w","s":1,"p":{}}')


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as server:
        yield server


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with PrivateRedis() as server:
        yield server


@dataclass
class Node:
    server: TestServer
    store: PostgresStore

    @property
    def hub(self) -> Hub:
        assert self.server.app is not None
        return self.server.app[HUB]

    @property
    def cluster(self) -> Cluster:
        assert self.hub.cluster is not None
        return self.hub.cluster

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"


@dataclass
class Cluster2:
    nodes: list[Node]
    http: aiohttp.ClientSession
    signer: TokenSigner
    cabin: CabinIdentity
    medical: Appointment

    def room_node(self) -> Node:
        return next(n for n in self.nodes if n.cluster.is_room_node)

    def door(self) -> Node:
        return next(n for n in self.nodes if not n.cluster.is_room_node)

    async def professional(self, node: Node) -> Any:
        ws = await self.http.ws_connect(node.url("/ws/professional"))
        await ws.send_str(json.dumps({"type": "hello", "token": professional_token(self.signer, self.medical)}))
        assert (await receive(ws, "welcome"))["appointment"]["id"] == self.medical.id
        return ws

    async def cabin_ws(self, node: Node) -> Any:
        ws = await self.http.ws_connect(node.url("/ws/cabin"))
        await ws.send_str(json.dumps({"type": "hello", "token": self.cabin.proof(datetime.now(UTC))}))
        await receive(ws, "welcome")
        await receive(ws, "schedule")
        return ws


async def start_node(url: str, redis_url: str, signer: TokenSigner, **options: Any) -> Node:
    store = PostgresStore.open(url)
    config = ServerConfig(
        signer=signer,
        store=store,
        operator_key_hashes=(hash_api_key(OPERATOR_KEY),),
        hello_timeout=2.0,
        redis_url=redis_url,
        **options,
    )
    server = TestServer(create_app(config))
    await server.start_server(access_log_class=RedactingAccessLogger)
    return Node(server, store)


async def stop_node(node: Node) -> None:
    await node.server.close()
    node.store.close()


@pytest.fixture
async def cluster(postgres: PrivatePostgres, redis_server: PrivateRedis) -> AsyncIterator[Cluster2]:
    url = postgres.database()
    signer = TokenSigner.generate()
    identity, medical = seed(url, "cabin-1", "apt_med", timedelta(minutes=30))
    nodes = [await start_node(url, redis_server.url, signer, refusals_per_minute=4) for _ in range(2)]
    await wait_until(
        lambda: all(n.cluster.room_node is not None for n in nodes) and len({n.cluster.room_node for n in nodes}) == 1,
        timeout=10,
        what="the nodes to agree on a room node",
    )
    async with aiohttp.ClientSession() as http:
        yield Cluster2(nodes, http, signer, identity, medical)
    for node in nodes:
        await stop_node(node)


async def meet(c: Cluster2, pro_node: Node, cabin_node: Node) -> tuple[Any, Any]:
    """A professional and a cabin on the given nodes, the citizen checked in and admitted."""
    pro = await c.professional(pro_node)
    cabin = await c.cabin_ws(cabin_node)
    await cabin.send_str(json.dumps({"type": "presence", "appointment_id": "apt_med", "present": True}))
    state = await receive_until(pro, "room")
    while not state["citizen_present"]:
        state = await receive_until(pro, "room")
    await pro.send_str(json.dumps({"type": "admit", "appointment_id": "apt_med"}))
    await receive_until(pro, "peer-joined")
    await receive_until(cabin, "peer-joined")
    return pro, cabin


async def relayed(ws: Any, count: int, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The next `count` relayed negotiation messages (room states and the like passed over)."""
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(found) < count:
            msg = await ws.receive()
            assert msg.type is WSMsgType.TEXT, f"the connection closed: {msg.type} {ws.close_code}"
            data = json.loads(msg.data)
            if data["type"] in RELAYED:
                found.append(data)
    return found


async def nothing_more(ws: Any, seconds: float) -> list[str]:
    """The relayed messages that arrive within `seconds` (a duplicate would)."""
    extra: list[str] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                msg = await ws.receive()
                if msg.type is not WSMsgType.TEXT:
                    break
                data = json.loads(msg.data)
                if data["type"] in RELAYED:
                    extra.append(data["type"])
    except TimeoutError:
        pass
    return extra


def candidate(n: int) -> str:
    return json.dumps(
        {"type": "candidate", "appointment_id": "apt_med", "candidate": f"candidate:{n} 1 udp 1 127.0.0.1 {n} typ host",
         "sdp_mid": "0", "sdp_mline_index": 0}
    )  # fmt: skip


@pytest.mark.parametrize("pro_at", ["room node", "door"])
async def test_a_professional_and_a_cabin_on_different_nodes_meet(cluster: Cluster2, pro_at: str) -> None:
    room, door = cluster.room_node(), cluster.door()
    pro_node, cabin_node = (room, door) if pro_at == "room node" else (door, room)
    pro, cabin = await meet(cluster, pro_node, cabin_node)
    await cabin.send_str(json.dumps({"type": "offer", "appointment_id": "apt_med", "sdp": SDP}))
    for n in range(1, 6):
        await cabin.send_str(candidate(n))
    got = await relayed(pro, 6)
    assert [m["type"] for m in got] == ["offer"] + ["candidate"] * 5
    assert [m["candidate"].split()[0] for m in got[1:]] == [f"candidate:{n}" for n in range(1, 6)]
    await pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_med", "sdp": SDP}))
    assert [m["type"] for m in await relayed(cabin, 1)] == ["answer"]
    assert await nothing_more(pro, 1.5) == []  # nothing relayed twice, even after the resend interval
    assert await nothing_more(cabin, 0.1) == []
    await pro.close()
    await cabin.close()


async def test_redis_restarted_during_negotiation_loses_and_doubles_nothing(
    cluster: Cluster2, redis_server: PrivateRedis
) -> None:
    room, door = cluster.room_node(), cluster.door()
    pro, cabin = await meet(cluster, room, door)  # the cabin's messages cross Redis
    before = room.cluster.node_id
    redis_server.stop()
    await wait_until(lambda: not door.cluster.reachable, timeout=10, what="the door to see Redis gone")
    # Said while Redis is down: kept by the door until acknowledged.
    await cabin.send_str(json.dumps({"type": "offer", "appointment_id": "apt_med", "sdp": SDP}))
    await cabin.send_str(candidate(1))
    await asyncio.sleep(0)
    redis_server.start()
    got = await relayed(pro, 2, timeout=20)
    assert [m["type"] for m in got] == ["offer", "candidate"]
    await pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_med", "sdp": SDP}))
    assert [m["type"] for m in await relayed(cabin, 1)] == ["answer"]
    assert await nothing_more(pro, 1.5) == []
    # The same room node, and both clients still connected: a Redis restart is not a failover.
    assert room.cluster.node_id == before and room.cluster.is_room_node
    assert not pro.closed and not cabin.closed


async def test_only_the_room_node_answers_the_api(cluster: Cluster2) -> None:
    room, door = cluster.room_node(), cluster.door()
    headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    async with cluster.http.get(room.url("/api/v1/cabins"), headers=headers) as response:
        assert response.status == 200
    async with cluster.http.get(door.url("/api/v1/cabins"), headers=headers) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert "does not run the rooms" in (await response.json())["error"]
    async with cluster.http.get(room.url("/room-node")) as response:
        assert response.status == 200
    async with cluster.http.get(door.url("/room-node")) as response:
        assert response.status == 503
    for node in cluster.nodes:
        async with cluster.http.get(node.url("/readyz")) as response:
            body = await response.json()
            assert response.status == 200 and body["room_node"] == room.cluster.node_id


async def test_a_door_that_dies_takes_its_client_out_of_the_room(cluster: Cluster2) -> None:
    room, door = cluster.room_node(), cluster.door()
    pro, cabin = await meet(cluster, door, room)
    # The door falls silent, as a killed process would: no close frame to the room node, its heartbeat stops.
    door.cluster._links.clear()
    for task in door.cluster._tasks:
        task.cancel()
    left = await receive_until(cabin, "peer-left")
    assert left["role"] == "professional"
    state = await receive_until(cabin, "room")
    assert not state["professional_present"] and state["admitted"]  # the admission waits for them to come back
    await pro.close()


async def test_refusals_from_one_address_count_on_every_node(cluster: Cluster2) -> None:
    forged = TokenSigner.generate()
    for node in cluster.nodes * 2:
        ws = await cluster.http.ws_connect(node.url("/ws/professional"))
        await ws.send_str(json.dumps({"type": "hello", "token": professional_token(forged, cluster.medical)}))
        assert (await closed_with(ws))[0] == 4401
    # Four guesses through two nodes: the fifth attempt, with a good link, is turned away until the minute is over.
    ws = await cluster.http.ws_connect(cluster.nodes[0].url("/ws/professional"))
    await ws.send_str(json.dumps({"type": "hello", "token": professional_token(cluster.signer, cluster.medical)}))
    code, message = await closed_with(ws)
    assert code == 4429 and "too many refused attempts" in message


async def test_garbage_on_a_node_channel_changes_nothing(cluster: Cluster2, redis_server: PrivateRedis) -> None:
    client = aioredis.from_url(redis_server.url)
    for node in cluster.nodes:
        channel = node.cluster.channel
        for junk in (
            b"\xff\xfe",
            b"[]",
            b'{"k":"f","l":"x","n":"y","s":-1}',
            b'{"k":"f","l":"z","n":"w","s":1,"p":{}}',
        ):
            await client.publish(channel, junk)
    await client.aclose()
    pro, cabin = await meet(cluster, cluster.door(), cluster.room_node())
    await cabin.send_str(json.dumps({"type": "offer", "appointment_id": "apt_med", "sdp": SDP}))
    assert [m["type"] for m in await relayed(pro, 1)] == ["offer"]


async def test_serve_refuses_a_redis_it_cannot_reach_and_never_shows_its_password(
    tmp_path: Path, postgres: PrivatePostgres
) -> None:
    port = free_port()
    url = f"redis://cabine:s3cret-pass@127.0.0.1:{port}/0"  # nothing listens there
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cabine", "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "data"),
        "--db", postgres.database(), "--redis", url, "--insecure-dev-http",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2 and out == b""
    said = err.decode().splitlines()[-1]
    assert said.startswith(f"cabine serve: error: cannot reach Redis at redis://cabine:***@127.0.0.1:{port}/0: ")
    assert "s3cret" not in err.decode() and "Traceback" not in err.decode()
    assert not (tmp_path / "data").exists()


async def test_a_client_closed_at_its_door_leaves_its_room(cluster: Cluster2) -> None:
    """A professional flooding their door is closed there (4429), and the room node hears of it: the cabin is told
    they left, and the same link can join again at once (no ghost left in the room)."""
    pro, cabin = await meet(cluster, cluster.door(), cluster.room_node())
    ping = json.dumps({"type": "ping", "id": 1})
    for _ in range(200):
        if pro.closed:
            break
        await pro.send_str(ping)
    code, _ = await closed_with(pro)
    assert code == 4429
    left = await receive_until(cabin, "peer-left")
    assert left["role"] == "professional"
    again = await cluster.professional(cluster.door())
    await receive_until(cabin, "peer-joined")
    await again.close()
