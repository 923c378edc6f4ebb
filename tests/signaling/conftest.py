"""A signaling server on aiohttp's test server with a real SQLite file, enrolled cabins and appointments."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from gateway.config import CabinConfig
from gateway.ice import LOOPBACK
from gateway.identity import CabinIdentity
from gateway.media.spec import SourceSpec
from signaling.app import RedactingAccessLogger, create_app
from signaling.config import ServerConfig, hash_api_key
from signaling.hub import Hub
from signaling.keys import HUB
from signaling.links import professional_token
from signaling.models import Appointment, Cabin
from signaling.protocol import AppointmentKind
from signaling.sqlite_store import SQLiteStore
from signaling.tokens import TokenSigner

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
OPERATOR_KEY = "operator-test-key"
ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@dataclass
class World:
    client: TestClient[Any, Any]
    signer: TokenSigner
    store: SQLiteStore
    cabins: dict[str, CabinIdentity]
    medical: Appointment  # cabin-1, open now
    bank: Appointment  # cabin-1, in two hours
    other: Appointment  # cabin-2, open now

    @property
    def hub(self) -> Hub:
        app = self.client.server.app
        assert app is not None
        return app[HUB]

    def pro_token(self, appointment: Appointment, signer: TokenSigner | None = None) -> str:
        return professional_token(signer or self.signer, appointment)

    def cabin_config(self, cabin_id: str = "cabin-1", **extra: Any) -> CabinConfig:
        """A gateway configuration for this server's cabin: test camera and microphone, loopback ICE."""
        assert self.client.server is not None
        options: dict[str, Any] = {
            "video": SourceSpec("test"),
            "audio": SourceSpec("test"),
            "ice_addresses": LOOPBACK,
            **extra,
        }
        return CabinConfig(
            cabin_id=cabin_id,
            signaling_url=f"ws://127.0.0.1:{self.client.server.port}",
            identity=self.cabins[cabin_id],
            **options,
        )

    def proof(self, cabin_id: str = "cabin-1") -> str:
        return self.cabins[cabin_id].proof(datetime.now(UTC))

    async def ws(self, role: str, token: str | None) -> Any:
        ws = await self.client.ws_connect(f"/ws/{role}")
        if token is not None:
            await ws.send_str(json.dumps({"type": "hello", "token": token}))
        return ws

    async def professional(self, appointment: Appointment) -> Any:
        ws = await self.ws("professional", self.pro_token(appointment))
        assert (await receive(ws, "welcome"))["appointment"]["id"] == appointment.id
        return ws

    async def cabin(self, cabin_id: str = "cabin-1") -> Any:
        ws = await self.ws("cabin", self.proof(cabin_id))
        await receive(ws, "welcome")
        await receive(ws, "schedule")
        return ws


async def receive(ws: Any, expected_type: str | None = None, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The next message (of `expected_type`, passing over the types in `skip`)."""
    while True:
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.TEXT, f"expected a message, got {msg.type} {ws.close_code}"
        data: dict[str, Any] = json.loads(msg.data)
        if data["type"] in skip:
            continue
        if expected_type is not None:
            assert data["type"] == expected_type, data
        return data


async def follow_fleet(
    world: World, predicate: Callable[[dict[str, Any]], bool], *, what: str, timeout: float = 30
) -> dict[str, Any]:
    """Follow the dashboards' live feed (GET /api/v1/fleet/live, as the page does) until a snapshot satisfies
    `predicate`; returns that snapshot."""
    live = await world.client.ws_connect("/api/v1/fleet/live")
    await live.send_str(json.dumps({"type": "hello", "token": OPERATOR_KEY}))
    last: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                msg = await live.receive()
                assert msg.type is WSMsgType.TEXT, f"the live feed closed waiting for {what}"
                last = json.loads(msg.data)
                if predicate(last):
                    return last
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}: open alerts {last.get('alerts')}")
    finally:
        await live.close()


def open_alerts(snapshot: dict[str, Any], cabin: str = "cabin-1") -> set[str]:
    """The cabin's open alerts in a fleet snapshot, as "kind subject" ("kind" alone without a subject)."""
    return {f"{a['kind']} {a['subject']}".strip() for a in snapshot["alerts"] if a["cabin_id"] == cabin}


async def receive_until(ws: Any, expected_type: str) -> dict[str, Any]:
    while True:
        data = await receive(ws)
        if data["type"] == expected_type:
            return data


async def closed_with(ws: Any) -> tuple[int, str]:
    """Read until the server closes; returns (close code, last error message)."""
    message = ""
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type is WSMsgType.TEXT:
            message = json.loads(msg.data).get("message", message)
            continue
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), msg
        # The code in the server's close frame (the socket's own may say 1006 if the server hung up before our
        # close reached it).
        code = msg.data if msg.type is WSMsgType.CLOSE else ws.close_code
        return int(code), message


async def admitted_call(world: World, appointment: Appointment, cabin_id: str) -> tuple[Any, Any]:
    """A professional and a cabin in one room, the citizen checked in and admitted, ready to negotiate."""
    pro = await world.professional(appointment)
    cabin = await world.cabin(cabin_id)
    await cabin.send_str(json.dumps({"type": "presence", "appointment_id": appointment.id, "present": True}))
    await receive_until(pro, "room")
    state = await receive_until(pro, "room")
    while not state["citizen_present"]:
        state = await receive_until(pro, "room")
    await pro.send_str(json.dumps({"type": "admit", "appointment_id": appointment.id}))
    await receive_until(pro, "peer-joined")
    joined = await receive_until(cabin, "peer-joined")
    assert joined["kind"] == appointment.kind.value
    return pro, cabin


@dataclass
class Clock:
    """A server clock that tests move forward."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def server_options() -> dict[str, Any]:
    """Extra ServerConfig fields for the world's server; a test module overrides this fixture to change them."""
    return {}


@pytest.fixture
async def world(aiohttp_client: ClientFactory, tmp_path: Path, server_options: dict[str, Any]) -> AsyncIterator[World]:
    signer = TokenSigner.generate()
    store = SQLiteStore.open(tmp_path / "signaling.sqlite")
    now = datetime.now(UTC)
    cabins = {}
    for cabin_id in ("cabin-1", "cabin-2", "cabin-off"):
        identity = CabinIdentity.generate(cabin_id)
        cabins[cabin_id] = identity
        store.add_cabin(Cabin(id=cabin_id, name=cabin_id))
        cabin = store.get_cabin(cabin_id)
        assert cabin is not None
        store.update_cabin(
            replace(cabin, public_key=identity.public_bytes(), enrolled_at=now, disabled=cabin_id == "cabin-off")
        )
    medical = Appointment("apt_med", AppointmentKind.MEDICAL, "cabin-1", now, timedelta(minutes=30), "Dr A")
    bank = Appointment(
        "apt_bank", AppointmentKind.BANK, "cabin-1", now + timedelta(hours=2), timedelta(minutes=30), "M. B"
    )
    other = Appointment("apt_other", AppointmentKind.ENERGY, "cabin-2", now, timedelta(minutes=30), "Mme C")
    for appointment in (medical, bank, other):
        store.add_appointment(appointment)
    config = ServerConfig(
        signer=signer,
        store=store,
        operator_key_hashes=(hash_api_key(OPERATOR_KEY),),
        hello_timeout=1.0,
        rate_burst=30,
        rate_per_second=10.0,
        **server_options,
    )
    server = TestServer(create_app(config))
    await server.start_server(access_log_class=RedactingAccessLogger)
    client = await aiohttp_client(server)
    yield World(client, signer, store, cabins, medical, bank, other)
    # The server goes first: closing sockets writes audit rows.
    await client.close()
    store.close()
