"""The operator REST API against a real app and a real SQLite file: every endpoint, status and message."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signaling.app import create_app
from signaling.config import ServerConfig, hash_api_key
from signaling.keys import ON_APPOINTMENT_CREATED, ON_CABIN_DISABLED, ON_CANCEL
from signaling.models import AuditAction, AuditEvent
from signaling.protocol import Role
from signaling.sqlite_store import SQLiteStore
from signaling.tokens import TokenSigner

API_KEY = "k"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# A second operator key, long enough to be searched for in logs.
LONG_KEY = "op-key-2f9c1d7e5b3a4c6d8e0f1a2b3c4d5e6f"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
APPOINTMENT = {
    "kind": "bank",
    "cabin_id": "mairie-pq",
    "starts_at": "2026-11-26T09:30+01:00",
    "duration_minutes": 30,
    "professional_name": "Mme Martin",
}

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Client = TestClient[web.Request, web.Application]


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Hooks:
    cancelled: list[str]
    disabled: list[str]
    created: list[str]


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore.open(tmp_path / "db.sqlite") as s:
        yield s


@pytest.fixture
def config(store: SQLiteStore, clock: Clock) -> ServerConfig:
    return ServerConfig(
        signer=TokenSigner.generate(),
        store=store,
        public_url="https://visio.example.org/",
        operator_key_hashes=(hash_api_key(API_KEY), hash_api_key(LONG_KEY)),
        clock=clock,
    )


@pytest.fixture
def hooks() -> Hooks:
    return Hooks([], [], [])


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, config: ServerConfig, hooks: Hooks) -> Client:
    app = create_app(config)

    async def on_cancel(appointment_id: str) -> None:
        hooks.cancelled.append(appointment_id)

    async def on_disabled(cabin_id: str) -> None:
        hooks.disabled.append(cabin_id)

    async def on_created(appointment_id: str) -> None:
        hooks.created.append(appointment_id)

    app[ON_CANCEL] = on_cancel
    app[ON_CABIN_DISABLED] = on_disabled
    app[ON_APPOINTMENT_CREATED] = on_created
    return await aiohttp_client(app)


async def call(
    client: Client, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    response = await client.request(method, "/api/v1" + path, json=body, headers=AUTH if headers is None else headers)
    assert response.content_type == "application/json"
    return response.status, await response.json()


async def add_cabin(client: Client, cabin_id: str = "mairie-pq", name: str = "Mairie de Petit-Quevilly") -> str:
    status, body = await call(client, "POST", "/cabins", {"id": cabin_id, "name": name})
    assert status == 201, body
    return str(body["enrollment_code"])


async def book(client: Client, **changes: Any) -> dict[str, Any]:
    status, body = await call(client, "POST", "/appointments", {**APPOINTMENT, **changes})
    assert status == 201, body
    return dict(body)


def raw_public_key() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key, base64.b64encode(raw).decode()


def files_containing(directory: Path, text: str) -> list[Path]:
    return [path for path in directory.iterdir() if text.encode() in path.read_bytes()]


def audit_actions(store: SQLiteStore) -> list[AuditAction]:
    return [e.action for e in store.audit_log()]


# --- authentication ---------------------------------------------------------------------------------------

OPERATOR_ROUTES = [
    ("POST", "/appointments"),
    ("GET", "/appointments"),
    ("GET", "/appointments/apt_x"),
    ("POST", "/appointments/apt_x/cancel"),
    ("POST", "/cabins"),
    ("GET", "/cabins"),
    ("GET", "/cabins/mairie-pq"),
    ("POST", "/cabins/mairie-pq/disable"),
    ("POST", "/cabins/mairie-pq/enable"),
    ("POST", "/cabins/mairie-pq/enrollment"),
]


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing operator API key: send the header 'Authorization: Bearer <key>'"),
        ({"Authorization": "Basic aw=="}, "missing operator API key: send the header 'Authorization: Bearer <key>'"),
        ({"Authorization": "Bearer "}, "missing operator API key: send the header 'Authorization: Bearer <key>'"),
        ({"Authorization": "Bearer wrong"}, "invalid operator API key"),
    ],
)
async def test_operator_routes_need_the_key(
    client: Client, method: str, path: str, headers: dict[str, str], message: str
) -> None:
    response = await client.request(method, "/api/v1" + path, json={}, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await response.json() == {"error": message}


async def test_bearer_scheme_is_case_insensitive(client: Client) -> None:
    status, body = await call(client, "GET", "/cabins", headers={"Authorization": f"bearer {API_KEY}"})
    assert (status, body) == (200, {"cabins": []})


async def test_unknown_endpoint_and_method(client: Client) -> None:
    assert await call(client, "GET", "/nope") == (404, {"error": "no such endpoint: GET /api/v1/nope"})
    response = await client.delete("/api/v1/cabins", headers=AUTH)
    assert response.status == 405
    assert response.headers["Allow"] == "GET, HEAD, POST"
    assert await response.json() == {"error": "DELETE is not allowed on /api/v1/cabins (allowed: GET, HEAD, POST)"}


# --- appointments -----------------------------------------------------------------------------------------


async def test_create_appointment(client: Client, config: ServerConfig, store: SQLiteStore, hooks: Hooks) -> None:
    await add_cabin(client)
    body = await book(client)
    apt_id = body["id"]
    assert apt_id.startswith("apt_")
    link = body.pop("link")
    assert body == {
        "id": apt_id,
        "kind": "bank",
        "cabin_id": "mairie-pq",
        "professional_name": "Mme Martin",
        "starts_at": "2026-11-26T08:30:00+00:00",
        "ends_at": "2026-11-26T09:00:00+00:00",
        "opens_at": "2026-11-26T08:15:00+00:00",
        "duration_minutes": 30,
        "created_at": "2026-11-25T12:00:00+00:00",
        "cancelled": False,
        "cancelled_at": None,
    }
    assert link.startswith("https://visio.example.org/join/")
    token = link.rsplit("/", 1)[1]
    claims = config.signer.verify(token, role=Role.PROFESSIONAL, now=datetime(2026, 11, 26, 8, 20, tzinfo=UTC))
    assert claims.subject == apt_id
    assert claims.expires_at == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    stored = store.get_appointment(apt_id)
    assert stored is not None
    assert stored.starts_at == datetime(2026, 11, 26, 9, 30, tzinfo=UTC) - timedelta(hours=1)
    event = store.audit_log()[0]
    key_label = "operator key sha256:" + hashlib.sha256(API_KEY.encode()).hexdigest()[:8]
    assert event == AuditEvent(
        at=NOW,
        action=AuditAction.APPOINTMENT_CREATED,
        actor="operator",
        appointment_id=apt_id,
        cabin_id="mairie-pq",
        address="127.0.0.1",
        detail=f"kind=bank; {key_label}",
    )
    assert hooks.created == [apt_id]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "dentist"}, "kind must be one of: medical, bank, energy, public-service"),
        ({"kind": None}, "kind must be one of: medical, bank, energy, public-service"),
        ({"cabin_id": None}, "cabin_id is required"),
        ({"cabin_id": 7}, "cabin_id must be a string"),
        ({"starts_at": "2026-11-26T09:30"}, "starts_at must be an ISO 8601 date and time with a timezone"),
        ({"starts_at": "tomorrow"}, "starts_at must be an ISO 8601 date and time with a timezone"),
        ({"starts_at": 1764145800}, "starts_at must be an ISO 8601 date and time with a timezone"),
        ({"duration_minutes": 0}, "duration_minutes must be a whole number between 1 and 480"),
        ({"duration_minutes": 481}, "duration_minutes must be a whole number between 1 and 480"),
        ({"duration_minutes": "30"}, "duration_minutes must be a whole number between 1 and 480"),
        ({"duration_minutes": 30.5}, "duration_minutes must be a whole number between 1 and 480"),
        ({"duration_minutes": True}, "duration_minutes must be a whole number between 1 and 480"),
        ({"professional_name": ""}, "professional_name is required"),
        ({"professional_name": "x" * 121}, "professional_name is too long (120 characters at most)"),
        ({"starts_at": "2026-11-25T12:29+01:00"}, "starts_at: this appointment would already be over"),
        (
            {"duration": 30},
            "unknown field 'duration' (expected: kind, cabin_id, starts_at, duration_minutes, professional_name)",
        ),
    ],
)
async def test_create_appointment_bad_input(
    client: Client, store: SQLiteStore, changes: dict[str, Any], message: str
) -> None:
    await add_cabin(client)
    status, body = await call(client, "POST", "/appointments", {**APPOINTMENT, **changes})
    assert status == 400
    assert body["error"].startswith(message)
    if "ISO 8601" in message:
        assert body["error"] == message + ", e.g. 2026-11-26T09:30+01:00"
    else:
        assert body["error"] == message
    assert store.list_appointments() == []


@pytest.mark.parametrize("data", [b"", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
async def test_body_must_be_a_json_object(client: Client, data: bytes) -> None:
    response = await client.post("/api/v1/appointments", data=data, headers=AUTH)
    assert response.status == 400
    assert await response.json() == {"error": "the request body must be a JSON object"}


async def test_body_too_large(client: Client) -> None:
    big = {**APPOINTMENT, "professional_name": "x" * (70 * 1024)}
    status, body = await call(client, "POST", "/appointments", big)
    assert (status, body) == (413, {"error": "the request body is larger than 64 KiB"})


async def test_body_too_large_without_content_length(client: Client) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b" " * 1024

    response = await client.post("/api/v1/cabins", data=chunks(), headers=AUTH)
    assert response.status == 413
    assert await response.json() == {"error": "the request body is larger than 64 KiB"}


async def test_unknown_cabin_is_422(client: Client, store: SQLiteStore) -> None:
    status, body = await call(client, "POST", "/appointments", {**APPOINTMENT, "cabin_id": "ghost"})
    assert (status, body) == (422, {"error": "cabin_id: no cabin 'ghost'"})
    assert store.list_appointments() == []


async def test_disabled_cabin_cannot_be_booked(client: Client) -> None:
    await add_cabin(client)
    assert (await call(client, "POST", "/cabins/mairie-pq/disable"))[0] == 200
    status, body = await call(client, "POST", "/appointments", APPOINTMENT)
    assert (status, body) == (409, {"error": "cabin 'mairie-pq' is disabled: enable it before booking it"})


async def test_overlapping_appointments_for_one_cabin_are_refused(client: Client, store: SQLiteStore) -> None:
    await add_cabin(client)
    await add_cabin(client, "gare-rouen", "Gare")
    first = await book(client)  # 08:30 to 09:00 UTC
    clash = (
        f"cabin 'mairie-pq' is already booked from 2026-11-26T08:30:00+00:00 to 2026-11-26T09:00:00+00:00 "
        f"by appointment {first['id']}: choose another time"
    )
    for starts_at, minutes in [
        ("2026-11-26T09:45+01:00", 30),  # starts during it
        ("2026-11-26T09:00+01:00", 60),  # covers it
        ("2026-11-26T09:35+01:00", 10),  # inside it
        ("2026-11-26T08:59:59Z", 30),  # a second too early
    ]:
        status, body = await call(
            client, "POST", "/appointments", {**APPOINTMENT, "starts_at": starts_at, "duration_minutes": minutes}
        )
        assert (status, body) == (409, {"error": clash})
    assert [a.id for a in store.list_appointments()] == [first["id"]]
    # Back to back, or in another cabin, is fine; once cancelled, the slot is free again.
    await book(client, starts_at="2026-11-26T09:00Z")
    await book(client, starts_at="2026-11-26T08:00Z")
    await book(client, cabin_id="gare-rouen")
    assert (await call(client, "POST", f"/appointments/{first['id']}/cancel"))[0] == 200
    await book(client, starts_at="2026-11-26T08:40Z", duration_minutes=20)
    assert len(store.list_appointments(include_cancelled=False)) == 4


async def test_concurrent_bookings_of_one_slot_let_exactly_one_through(client: Client, store: SQLiteStore) -> None:
    await add_cabin(client)
    answers = await asyncio.gather(*(call(client, "POST", "/appointments", APPOINTMENT) for _ in range(8)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] + [409] * 7
    [winner] = [body for status, body in answers if status == 201]
    assert all(winner["id"] in body["error"] for status, body in answers if status == 409)
    assert [a.id for a in store.list_appointments()] == [winner["id"]]


async def test_list_appointments(client: Client) -> None:
    await add_cabin(client)
    await add_cabin(client, "gare-rouen", "Gare")
    late = await book(client, starts_at="2026-11-27T10:00+00:00")
    early = await book(client, starts_at="2026-11-26T10:00+00:00")
    other = await book(client, starts_at="2026-11-26T11:00+00:00", cabin_id="gare-rouen")
    await call(client, "POST", f"/appointments/{late['id']}/cancel")

    async def ids(query: str) -> list[str]:
        status, body = await call(client, "GET", "/appointments" + query)
        assert status == 200, body
        assert all("link" not in a for a in body["appointments"])
        return [a["id"] for a in body["appointments"]]

    assert await ids("") == [early["id"], other["id"], late["id"]]
    assert await ids("?cabin_id=gare-rouen") == [other["id"]]
    assert await ids("?include_cancelled=false") == [early["id"], other["id"]]
    assert await ids("?from=2026-11-26T10%3A45%2B00%3A00") == [other["id"], late["id"]]
    assert await ids("?from=2026-11-26T00:00Z&to=2026-11-27T00:00Z") == [early["id"], other["id"]]
    assert await ids("?cabin_id=nope") == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?from=yesterday", "from must be an ISO 8601 date and time with a timezone, e.g. 2026-11-26T09:30+01:00"),
        ("?to=2026-11-26T10:00", "to must be an ISO 8601 date and time with a timezone, e.g. 2026-11-26T09:30+01:00"),
        ("?include_cancelled=maybe", "include_cancelled must be true or false"),
        ("?cabin=x", "unknown query parameter 'cabin' (expected: cabin_id, from, to, include_cancelled)"),
    ],
)
async def test_list_appointments_bad_query(client: Client, query: str, message: str) -> None:
    assert await call(client, "GET", "/appointments" + query) == (400, {"error": message})


async def test_show_appointment_reissues_its_link(client: Client, config: ServerConfig) -> None:
    await add_cabin(client)
    created = await book(client)
    status, shown = await call(client, "GET", f"/appointments/{created['id']}")
    assert status == 200
    assert {k: v for k, v in shown.items() if k != "link"} == {k: v for k, v in created.items() if k != "link"}
    assert shown["link"] != created["link"]  # signed again, with its own token id
    when = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
    for link in (shown["link"], created["link"]):
        assert config.signer.verify(link.rsplit("/", 1)[1], role=Role.PROFESSIONAL, now=when).subject == shown["id"]


async def test_show_unknown_appointment(client: Client) -> None:
    assert await call(client, "GET", "/appointments/apt_nope") == (404, {"error": "no appointment 'apt_nope'"})


async def test_cancel_appointment(client: Client, store: SQLiteStore, hooks: Hooks, clock: Clock) -> None:
    await add_cabin(client)
    apt_id = (await book(client))["id"]
    status, body = await call(client, "POST", f"/appointments/{apt_id}/cancel")
    assert status == 200
    assert body["cancelled"] is True
    assert body["cancelled_at"] == "2026-11-25T12:00:00+00:00"
    assert body["link"] is None
    assert hooks.cancelled == [apt_id]
    clock.now += timedelta(minutes=5)
    again = await call(client, "POST", f"/appointments/{apt_id}/cancel")
    assert again == (200, body)  # idempotent: the first cancellation time stays
    assert hooks.cancelled == [apt_id]
    cancellations = [e for e in store.audit_log(appointment_id=apt_id) if e.action is AuditAction.APPOINTMENT_CANCELLED]
    assert len(cancellations) == 1
    assert cancellations[0].actor == "operator"
    assert cancellations[0].address == "127.0.0.1"
    assert cancellations[0].at == NOW


async def test_cancel_unknown_appointment(client: Client) -> None:
    assert await call(client, "POST", "/appointments/apt_nope/cancel") == (404, {"error": "no appointment 'apt_nope'"})


async def test_cancel_is_refused_once_over(client: Client, clock: Clock, hooks: Hooks) -> None:
    await add_cabin(client)
    apt_id = (await book(client))["id"]
    clock.now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    status, body = await call(client, "POST", f"/appointments/{apt_id}/cancel")
    assert (status, body) == (
        409,
        {"error": f"appointment '{apt_id}' is already over (it ended at 2026-11-26T09:00:00+00:00)"},
    )
    assert hooks.cancelled == []


async def test_a_failing_hook_does_not_undo_the_cancellation(
    aiohttp_client: AiohttpClient, config: ServerConfig, store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(config)

    async def broken(appointment_id: str) -> None:
        raise RuntimeError("room already gone")

    app[ON_CANCEL] = broken
    client = await aiohttp_client(app)
    await add_cabin(client)
    apt_id = (await book(client))["id"]
    status, body = await call(client, "POST", f"/appointments/{apt_id}/cancel")
    assert (status, body["cancelled"]) == (200, True)
    assert f"{apt_id}: the cancel hook failed" in caplog.text
    stored = store.get_appointment(apt_id)
    assert stored is not None
    assert stored.cancelled


async def test_without_hooks(aiohttp_client: AiohttpClient, config: ServerConfig) -> None:
    client = await aiohttp_client(create_app(config))
    await add_cabin(client)
    apt_id = (await book(client))["id"]
    assert (await call(client, "POST", f"/appointments/{apt_id}/cancel"))[0] == 200
    assert (await call(client, "POST", "/cabins/mairie-pq/disable"))[0] == 200


# --- cabins -----------------------------------------------------------------------------------------------


async def test_create_cabin(client: Client, store: SQLiteStore, tmp_path: Path) -> None:
    status, body = await call(client, "POST", "/cabins", {"id": "mairie-pq", "name": "Mairie de Petit-Quevilly"})
    assert status == 201
    code = body.pop("enrollment_code")
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){4}", code)
    assert body == {
        "id": "mairie-pq",
        "name": "Mairie de Petit-Quevilly",
        "enrolled": False,
        "disabled": False,
        "enrolled_at": None,
        "enrollment_pending": True,
        "enrollment_expires_at": "2026-11-26T12:00:00+00:00",
    }
    cabin = store.get_cabin("mairie-pq")
    assert cabin is not None
    assert cabin.enrollment_code_hash == hashlib.sha256(code.replace("-", "").encode()).digest()
    store.close()
    assert files_containing(tmp_path, code) == []  # the code itself is nowhere on disk (database, WAL)


async def test_create_cabin_without_name(client: Client) -> None:
    status, body = await call(client, "POST", "/cabins", {"id": "c1"})
    assert (status, body["name"]) == (201, "")


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"name": "x"}, 400, "id is required"),
        ({"id": "a b"}, 400, "id: a cabin id is 1-64 letters, digits, '-', '_' or '.'"),
        ({"id": "x" * 65}, 400, "id is too long (64 characters at most)"),
        ({"id": "c1", "name": 3}, 400, "name must be a string"),
        ({"id": "c1", "location": "x"}, 400, "unknown field 'location' (expected: id, name)"),
        ({"id": "mairie-pq"}, 409, "cabin 'mairie-pq' already exists"),
    ],
)
async def test_create_cabin_bad_input(client: Client, data: dict[str, Any], status: int, message: str) -> None:
    await add_cabin(client)
    assert await call(client, "POST", "/cabins", data) == (status, {"error": message})


async def test_list_and_show_cabins_never_show_keys(client: Client) -> None:
    code = await add_cabin(client)
    await add_cabin(client, "gare-rouen", "Gare")
    _, public_key = raw_public_key()
    enrolled = {"cabin_id": "mairie-pq", "code": code, "public_key": public_key}
    assert (await call(client, "POST", "/enroll", enrolled, headers={}))[0] == 200
    status, body = await call(client, "GET", "/cabins")
    assert status == 200
    assert body == {
        "cabins": [
            {
                "id": "gare-rouen",
                "name": "Gare",
                "enrolled": False,
                "disabled": False,
                "enrolled_at": None,
                "enrollment_pending": True,
            },
            {
                "id": "mairie-pq",
                "name": "Mairie de Petit-Quevilly",
                "enrolled": True,
                "disabled": False,
                "enrolled_at": "2026-11-25T12:00:00+00:00",
                "enrollment_pending": False,
            },
        ]
    }
    assert await call(client, "GET", "/cabins/mairie-pq") == (200, body["cabins"][1])
    assert await call(client, "GET", "/cabins/ghost") == (404, {"error": "no cabin 'ghost'"})


async def test_disable_and_enable(client: Client, store: SQLiteStore, hooks: Hooks) -> None:
    await add_cabin(client)
    status, body = await call(client, "POST", "/cabins/mairie-pq/disable")
    assert (status, body["disabled"]) == (200, True)
    assert hooks.disabled == ["mairie-pq"]
    assert (await call(client, "POST", "/cabins/mairie-pq/disable"))[1]["disabled"] is True  # idempotent
    assert hooks.disabled == ["mairie-pq"]
    cabin = store.get_cabin("mairie-pq")
    assert cabin is not None
    assert cabin.disabled
    status, body = await call(client, "POST", "/cabins/mairie-pq/enable")
    assert (status, body["disabled"]) == (200, False)
    assert audit_actions(store) == [AuditAction.CABIN_ENABLED, AuditAction.CABIN_DISABLED, AuditAction.CABIN_CREATED]
    assert all(e.actor == "operator" and e.address == "127.0.0.1" for e in store.audit_log())


@pytest.mark.parametrize("action", ["disable", "enable", "enrollment"])
async def test_cabin_actions_on_unknown_cabin(client: Client, action: str) -> None:
    assert await call(client, "POST", f"/cabins/ghost/{action}") == (404, {"error": "no cabin 'ghost'"})


# --- enrollment -------------------------------------------------------------------------------------------


async def test_enroll_needs_no_operator_key_and_is_single_use(client: Client, store: SQLiteStore) -> None:
    code = await add_cabin(client)
    _, public_key = raw_public_key()
    data = {"cabin_id": "mairie-pq", "code": code, "public_key": public_key}
    assert await call(client, "POST", "/enroll", data, headers={}) == (
        200,
        {"cabin_id": "mairie-pq", "enrolled_at": "2026-11-25T12:00:00+00:00", "disabled": False},
    )
    cabin = store.get_cabin("mairie-pq")
    assert cabin is not None
    assert cabin.public_key == base64.b64decode(public_key)
    assert cabin.enrollment_code_hash is None
    event = store.audit_log()[0]
    assert (event.action, event.actor, event.cabin_id, event.address) == (
        AuditAction.CABIN_ENROLLED,
        "cabin",
        "mairie-pq",
        "127.0.0.1",
    )
    assert event.detail == "key sha256:" + hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:8]
    # The code was used up.
    assert await call(client, "POST", "/enroll", data, headers={}) == (
        403,
        {
            "error": "no enrollment code is pending for cabin 'mairie-pq' (already used, or never issued): "
            "ask the operator for a new one"
        },
    )


async def test_enroll_wrong_code_does_not_use_it_up(client: Client, store: SQLiteStore) -> None:
    code = await add_cabin(client)
    _, public_key = raw_public_key()
    wrong = {"cabin_id": "mairie-pq", "code": code[:-1] + ("A" if code[-1] != "A" else "B"), "public_key": public_key}
    assert await call(client, "POST", "/enroll", wrong, headers={}) == (
        403,
        {"error": "wrong enrollment code for cabin 'mairie-pq'"},
    )
    cabin = store.get_cabin("mairie-pq")
    assert cabin is not None
    assert not cabin.enrolled
    right = {**wrong, "code": code}
    assert (await call(client, "POST", "/enroll", right, headers={}))[0] == 200


async def test_guessing_enrollment_codes_stops_after_a_hundred_a_minute(client: Client) -> None:
    code = await add_cabin(client)
    _, public_key = raw_public_key()
    for n in range(100):
        guess = {"cabin_id": "mairie-pq", "code": f"WRONG-{n:04d}", "public_key": public_key}
        assert (await call(client, "POST", "/enroll", guess, headers={}))[0] == 403
    right = {"cabin_id": "mairie-pq", "code": code, "public_key": public_key}
    assert await call(client, "POST", "/enroll", right, headers={}) == (
        429,
        {"error": "too many refused attempts from this address; wait a minute"},
    )


async def test_enroll_reads_the_code_as_an_installer_types_it(client: Client, store: SQLiteStore) -> None:
    code = await add_cabin(client)
    _, public_key = raw_public_key()
    # Lower case, spaces instead of dashes, and O, I, L for the digits they look like.
    typed = " ".join(code.split("-")).lower().replace("0", "o").replace("1", "l")
    data = {"cabin_id": "mairie-pq", "code": typed, "public_key": public_key}
    assert (await call(client, "POST", "/enroll", data, headers={}))[0] == 200
    cabin = store.get_cabin("mairie-pq")
    assert cabin is not None and cabin.enrolled


async def test_enroll_expired_code(client: Client, clock: Clock) -> None:
    code = await add_cabin(client)
    clock.now = NOW + timedelta(hours=24)
    _, public_key = raw_public_key()
    data = {"cabin_id": "mairie-pq", "code": code, "public_key": public_key}
    assert await call(client, "POST", "/enroll", data, headers={}) == (
        403,
        {
            "error": "the enrollment code for cabin 'mairie-pq' expired at 2026-11-26T12:00:00+00:00: "
            "ask the operator for a new one"
        },
    )
    assert (await call(client, "GET", "/cabins/mairie-pq"))[1]["enrollment_pending"] is False


async def test_enroll_unknown_cabin_says_nothing_more(client: Client) -> None:
    _, public_key = raw_public_key()
    data = {"cabin_id": "ghost", "code": "whatever", "public_key": public_key}
    assert await call(client, "POST", "/enroll", data, headers={}) == (
        403,
        {
            "error": "no enrollment code is pending for cabin 'ghost' (already used, or never issued): "
            "ask the operator for a new one"
        },
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"public_key": "not base64!"}, "public_key must be the base64 of a raw 32-byte Ed25519 public key"),
        (
            {"public_key": base64.b64encode(b"x" * 31).decode()},
            "public_key must be the base64 of a raw 32-byte Ed25519 public key",
        ),
        ({"public_key": None}, "public_key must be the base64 of a raw 32-byte Ed25519 public key"),
        ({"code": ""}, "code is required"),
        ({"cabin_id": None}, "cabin_id is required"),
        ({"extra": 1}, "unknown field 'extra' (expected: cabin_id, code, public_key)"),
    ],
)
async def test_enroll_bad_input(client: Client, changes: dict[str, Any], message: str) -> None:
    code = await add_cabin(client)
    _, public_key = raw_public_key()
    data = {"cabin_id": "mairie-pq", "code": code, "public_key": public_key, **changes}
    assert await call(client, "POST", "/enroll", data, headers={}) == (400, {"error": message})


async def test_disabled_cabin_can_enroll_and_stays_disabled(client: Client, store: SQLiteStore) -> None:
    code = await add_cabin(client)
    await call(client, "POST", "/cabins/mairie-pq/disable")
    _, public_key = raw_public_key()
    data = {"cabin_id": "mairie-pq", "code": code, "public_key": public_key}
    status, body = await call(client, "POST", "/enroll", data, headers={})
    assert (status, body["disabled"]) == (200, True)
    cabin = store.get_cabin("mairie-pq")
    assert cabin is not None
    assert cabin.enrolled
    assert cabin.disabled


async def test_new_code_replaces_the_key_only_when_used(
    client: Client, store: SQLiteStore, hooks: Hooks, clock: Clock
) -> None:
    first_code = await add_cabin(client)
    _, first_key = raw_public_key()
    await call(
        client, "POST", "/enroll", {"cabin_id": "mairie-pq", "code": first_code, "public_key": first_key}, headers={}
    )
    clock.now += timedelta(days=30)
    status, body = await call(client, "POST", "/cabins/mairie-pq/enrollment")
    assert status == 200
    new_code = body["enrollment_code"]
    assert new_code != first_code
    assert body["enrolled"] is True
    assert body["enrollment_pending"] is True
    assert body["enrollment_expires_at"] == "2026-12-26T12:00:00+00:00"
    cabin = store.get_cabin("mairie-pq")
    assert cabin is not None
    assert cabin.public_key == base64.b64decode(first_key)  # still the old key until the new code is used
    assert hooks.disabled == []
    _, second_key = raw_public_key()
    data = {"cabin_id": "mairie-pq", "code": new_code, "public_key": second_key}
    assert (await call(client, "POST", "/enroll", data, headers={}))[0] == 200
    cabin = store.get_cabin("mairie-pq")
    assert cabin is not None
    assert cabin.public_key == base64.b64decode(second_key)
    assert hooks.disabled == ["mairie-pq"]  # the old PC's connection is closed
    assert store.audit_log()[0].detail.endswith("; replaces the previous key")
    assert audit_actions(store)[1] is AuditAction.CABIN_ENROLLMENT_CODE


async def test_secrets_never_reach_the_logs_or_the_audit(
    client: Client, store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = await add_cabin(client)
    _, public_key = raw_public_key()
    await call(client, "POST", "/enroll", {"cabin_id": "mairie-pq", "code": code, "public_key": "x"}, headers={})
    await call(
        client, "POST", "/enroll", {"cabin_id": "mairie-pq", "code": "bad", "public_key": public_key}, headers={}
    )
    await call(client, "POST", "/enroll", {"cabin_id": "mairie-pq", "code": code, "public_key": public_key}, headers={})
    status, created = await call(
        client, "POST", "/appointments", APPOINTMENT, headers={"Authorization": f"Bearer {LONG_KEY}"}
    )
    assert status == 201
    await call(client, "POST", f"/appointments/{created['id']}/cancel", headers={"Authorization": f"Bearer {LONG_KEY}"})
    await call(client, "GET", "/cabins", headers={"Authorization": "Bearer not-the-key-xyz"})
    token = created["link"].rsplit("/", 1)[1]
    details = " ".join(e.detail for e in store.audit_log(limit=1000))
    assert "operator key sha256:" + hashlib.sha256(LONG_KEY.encode()).hexdigest()[:8] in details
    for secret in (code, token, LONG_KEY, "not-the-key-xyz"):
        assert secret not in caplog.text
        assert secret not in details
    assert "mairie-pq" in caplog.text
