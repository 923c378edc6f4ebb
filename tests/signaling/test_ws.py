"""The signaling endpoints over real HTTP and WebSocket (aiohttp's test server)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from signaling.app import RedactingAccessLogger, create_app
from signaling.appointments import Appointment, MemoryAppointmentStore
from signaling.config import ServerConfig
from signaling.protocol import AppointmentKind, Role
from signaling.tokens import TokenSigner

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@dataclass
class World:
    client: TestClient[Any, Any]
    signer: TokenSigner
    store: MemoryAppointmentStore
    medical: Appointment
    bank: Appointment

    def pro_token(self, appointment: Appointment, signer: TokenSigner | None = None) -> str:
        return (signer or self.signer).issue(
            appointment.id, Role.PROFESSIONAL, not_before=appointment.opens_at, expires_at=appointment.ends_at
        )

    def cabin_token(self, cabin_id: str = "cabin-1") -> str:
        now = datetime.now(UTC)
        return self.signer.issue(cabin_id, Role.CABIN, not_before=now, expires_at=now + timedelta(hours=1))


@pytest.fixture
async def world(aiohttp_client: ClientFactory) -> World:
    signer = TokenSigner.generate()
    store = MemoryAppointmentStore()
    now = datetime.now(UTC)
    medical = Appointment("apt_med", AppointmentKind.MEDICAL, "cabin-1", now, timedelta(minutes=30), "Dr A")
    bank = Appointment("apt_bank", AppointmentKind.BANK, "cabin-2", now, timedelta(minutes=30), "M. B")
    store.add(medical)
    store.add(bank)
    config = ServerConfig(signer=signer, store=store, hello_timeout=2.0)
    server = TestServer(create_app(config))
    await server.start_server(access_log_class=RedactingAccessLogger)
    client = await aiohttp_client(server)
    return World(client, signer, store, medical, bank)


async def connect(world: World, role: str, token: str) -> Any:
    ws = await world.client.ws_connect(f"/ws/{role}")
    await ws.send_str(json.dumps({"type": "hello", "token": token}))
    return ws


async def receive(ws: Any) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.TEXT, msg
    data: dict[str, Any] = json.loads(msg.data)
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
        return int(ws.close_code), message


async def test_professional_and_cabin_negotiate_through_the_relay(world: World) -> None:
    pro = await connect(world, "professional", world.pro_token(world.medical))
    welcome = await receive(pro)
    assert welcome["type"] == "welcome"
    assert welcome["appointment"]["kind"] == "medical"
    assert welcome["ice_servers"] == []
    cabin = await connect(world, "cabin", world.cabin_token())
    assert (await receive(cabin))["type"] == "welcome"
    joined = await receive(cabin)
    assert joined == {**joined, "type": "peer-joined", "appointment_id": "apt_med", "role": "professional"}
    assert (await receive(pro))["type"] == "peer-joined"

    await cabin.send_str(json.dumps({"type": "offer", "appointment_id": "apt_med", "sdp": SDP}))
    offer = await receive(pro)
    assert offer["type"] == "offer" and offer["sdp"] == SDP
    await pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_med", "sdp": SDP}))
    assert (await receive(cabin))["type"] == "answer"
    candidate = {
        "type": "candidate",
        "appointment_id": "apt_med",
        "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
        "sdp_mid": "0",
        "sdp_mline_index": 0,
    }
    await pro.send_str(json.dumps(candidate))
    relayed = await receive(cabin)
    assert relayed["candidate"] == candidate["candidate"]

    await pro.close()
    left = await receive(cabin)
    assert left == {**left, "type": "peer-left", "appointment_id": "apt_med", "role": "professional"}
    await cabin.close()


async def test_answer_before_offer_is_an_error_not_a_crash(world: World) -> None:
    pro = await connect(world, "professional", world.pro_token(world.medical))
    await receive(pro)
    cabin = await connect(world, "cabin", world.cabin_token())
    await receive(cabin)
    await receive(cabin)
    await receive(pro)
    await pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_med", "sdp": SDP}))
    error = await receive(pro)
    assert error == {**error, "type": "error", "code": 4400, "message": "answer before offer"}
    # The connection is still usable afterwards.
    await cabin.send_str(json.dumps({"type": "offer", "appointment_id": "apt_med", "sdp": SDP}))
    assert (await receive(pro))["type"] == "offer"
    await pro.close()
    await cabin.close()


def _expired(world: World) -> str:
    past = datetime.now(UTC) - timedelta(hours=2)
    return world.signer.issue("apt_med", Role.PROFESSIONAL, not_before=past, expires_at=past + timedelta(minutes=30))


def _future(world: World) -> str:
    later = datetime.now(UTC) + timedelta(hours=2)
    return world.signer.issue("apt_med", Role.PROFESSIONAL, not_before=later, expires_at=later + timedelta(minutes=30))


REFUSALS: list[tuple[str, str, Callable[[World], str], int, str]] = [
    ("missing", "professional", lambda w: "", 4400, "'token' must not be empty"),
    ("garbage", "professional", lambda w: "garbage", 4401, "damaged"),
    (
        "forged",
        "professional",
        lambda w: w.pro_token(w.medical, TokenSigner.generate()),
        4401,
        "not issued by",
    ),
    ("expired", "professional", _expired, 4403, "expired"),
    ("not-yet-valid", "professional", _future, 4403, "not valid yet"),
    ("cabin-token-in-browser", "professional", lambda w: w.cabin_token(), 4403, "not for this use"),
    ("pro-token-as-cabin", "cabin", lambda w: w.pro_token(w.medical), 4403, "not for this use"),
]


@pytest.mark.parametrize(("name", "role", "make", "code", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_refused_credentials_close_with_a_clear_code(
    world: World, name: str, role: str, make: Callable[[World], str], code: int, message: str
) -> None:
    ws = await connect(world, role, make(world))
    got_code, got_message = await closed_with(ws)
    assert got_code == code
    assert message in got_message


async def test_cancelled_appointment_is_refused(world: World) -> None:
    token = world.pro_token(world.medical)
    world.store.cancel("apt_med")
    ws = await connect(world, "professional", token)
    assert await closed_with(ws) == (4403, "This appointment was cancelled.")


async def test_second_professional_on_the_same_link_is_refused(world: World) -> None:
    token = world.pro_token(world.medical)
    first = await connect(world, "professional", token)
    await receive(first)
    second = await connect(world, "professional", token)
    assert await closed_with(second) == (4409, "someone is already connected with this link")
    assert not first.closed
    await first.close()


async def test_no_hello_times_out(world: World) -> None:
    ws = await world.client.ws_connect("/ws/professional")
    assert await closed_with(ws) == (4408, "no hello within the time allowed")


async def test_garbage_after_admission_closes_only_that_socket(world: World) -> None:
    bank = await connect(world, "professional", world.pro_token(world.bank))
    await receive(bank)
    pro = await connect(world, "professional", world.pro_token(world.medical))
    await receive(pro)
    await pro.send_str("\x00\x01 not json")
    assert await closed_with(pro) == (4400, "message is not valid JSON")
    await bank.send_str(json.dumps({"type": "bye", "appointment_id": "apt_bank"}))
    assert (await receive(bank))["message"] == "the other side is not connected"
    await bank.close()


async def test_professional_cannot_address_another_appointment(world: World) -> None:
    pro = await connect(world, "professional", world.pro_token(world.medical))
    await receive(pro)
    await pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_bank", "sdp": SDP}))
    assert await closed_with(pro) == (4403, "not your appointment")


async def test_join_page_for_a_valid_link(world: World) -> None:
    response = await world.client.get(f"/join/{world.pro_token(world.medical)}")
    assert response.status == 200
    body = await response.text()
    assert 'id="join"' in body and "Rejoindre" in body
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("make", "status", "text"),
    [
        (lambda w: "garbage", 401, "son jeton d'accès est illisible"),
        (lambda w: w.pro_token(w.medical, TokenSigner.generate()), 401, "not issued by this service"),
        (_expired, 403, "This link has expired."),
        (lambda w: w.cabin_token(), 403, "not for this use"),
    ],
    ids=["garbage", "forged", "expired", "cabin-token"],
)
async def test_join_page_refusals(world: World, make: Callable[[World], str], status: int, text: str) -> None:
    response = await world.client.get(f"/join/{make(world)}")
    assert response.status == status
    body = await response.text()
    assert text in body
    assert "Traceback" not in body


async def test_join_without_token(world: World) -> None:
    response = await world.client.get("/join/")
    assert response.status == 401
    assert "Ce lien ne contient pas de jeton" in await response.text()


async def test_tokens_never_reach_the_logs(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = world.pro_token(world.medical)
    await world.client.get(f"/join/{token}")
    forged = world.pro_token(world.medical, TokenSigner.generate())
    ws = await connect(world, "professional", forged)
    await closed_with(ws)
    assert token not in caplog.text
    assert forged not in caplog.text
    assert forged.split(".")[1] not in caplog.text
