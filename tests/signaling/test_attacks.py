"""The attack table: each hostile input gets its exact close code and message, and disturbs nobody else.

Every case runs while another room (cabin-2 and its professional, admitted, mid-negotiation) is live; after the
attack that room must still relay, and the server must still admit a fresh professional.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.identity import CabinIdentity
from signaling.cabin_auth import MAX_LIVE_PROOFS_PER_CABIN
from signaling.models import Appointment, Cabin
from signaling.protocol import (
    MAX_CHECKS,
    AppointmentKind,
    CheckStatus,
    Incident,
    IncidentKind,
    Role,
    SelftestCheck,
    SelftestReport,
    dump,
)
from signaling.tokens import TokenSigner
from tests.signaling.conftest import SDP, World, admitted_call, closed_with, receive, receive_until


@dataclass(frozen=True)
class Attack:
    name: str
    run: Callable[[World], Awaitable[tuple[int, str]]]
    code: int
    message: str


async def _hello(world: World, role: str, token: str) -> tuple[int, str]:
    return await closed_with(await world.ws(role, token))


async def _after_admission(world: World, send: Callable[[Any], Awaitable[None]]) -> tuple[int, str]:
    """Run `send` on an admitted professional of apt_med; returns the close, or the error if it stays open."""
    pro, cabin = await admitted_call(world, world.medical, "cabin-1")
    await send(pro)
    msg = await pro.receive(timeout=5)
    if msg.type.name == "TEXT":
        data = json.loads(msg.data)
        while data["type"] != "error":
            data = json.loads((await pro.receive(timeout=5)).data)
        if pro.closed or (await _is_closing(pro)):
            return int(pro.close_code), data["message"]
        await pro.close()
        await cabin.close()
        return data["code"], data["message"]
    return int(pro.close_code), ""


async def _is_closing(ws: Any) -> bool:
    try:
        msg = await ws.receive(timeout=0.5)
    except TimeoutError:
        return False
    return bool(msg.type.name in ("CLOSE", "CLOSED", "CLOSING"))


def _forged_signature(w: World) -> str:
    head, payload, signature = w.pro_token(w.medical).split(".")
    flipped = ("B" if signature[10] == "A" else "A").join((signature[:10], signature[11:]))
    return f"{head}.{payload}.{flipped}"


def _unsigned_alg_none(w: World) -> str:
    payload = {"sub": "apt_med", "role": "professional", "aud": "cabine", "nbf": 0, "exp": 2**31, "jti": "x"}
    return jwt.encode(payload, None, algorithm="none")  # type: ignore[arg-type]


def _hmac_with_public_key(w: World) -> str:
    payload = {"sub": "apt_med", "role": "professional", "aud": "cabine", "nbf": 0, "exp": 2**31, "jti": "x"}
    return jwt.encode(payload, "some-shared-secret-of-enough-length-123", algorithm="HS256")


def _expired(w: World) -> str:
    past = datetime.now(UTC) - timedelta(hours=3)
    return w.signer.issue("apt_med", Role.PROFESSIONAL, not_before=past, expires_at=past + timedelta(minutes=30))


def _replay_after_window(w: World) -> str:
    # A token whose own expiry is generous, for an appointment whose window is over.
    now = datetime.now(UTC)
    ended = Appointment(
        "apt_ended", AppointmentKind.MEDICAL, "cabin-1", now - timedelta(hours=2), timedelta(minutes=30), "Dr Z"
    )
    w.store.add_appointment(ended)
    return w.signer.issue(
        "apt_ended", Role.PROFESSIONAL, not_before=now - timedelta(hours=3), expires_at=now + timedelta(hours=1)
    )


def _revoked(w: World) -> str:
    token = w.pro_token(w.medical)
    w.store.cancel_appointment("apt_med", datetime.now(UTC))
    return token


def _stolen_cabin_key(w: World) -> str:
    return CabinIdentity("cabin-1", Ed25519PrivateKey.generate()).proof(datetime.now(UTC))


async def _replayed_proof(w: World) -> tuple[int, str]:
    proof = w.proof("cabin-1")
    first = await w.ws("cabin", proof)
    await receive(first, "welcome")
    return await _hello(w, "cabin", proof)


async def _second_professional(w: World) -> tuple[int, str]:
    first = await w.professional(w.medical)
    result = await _hello(w, "professional", w.pro_token(w.medical))
    assert not first.closed
    return result


async def _flood(w: World) -> tuple[int, str]:
    pro = await w.professional(w.medical)
    bye = json.dumps({"type": "bye", "appointment_id": "apt_med"})
    for _ in range(200):
        if pro.closed:
            break
        await pro.send_str(bye)
    return await closed_with(pro)


async def _send_after_hello(w: World, text: str | bytes) -> tuple[int, str]:
    pro = await w.professional(w.medical)
    if isinstance(text, bytes):
        await pro.send_bytes(text)
    else:
        await pro.send_str(text)
    return await closed_with(pro)


async def _first_message_not_hello(w: World) -> tuple[int, str]:
    ws = await w.ws("professional", None)
    await ws.send_str(json.dumps({"type": "offer", "appointment_id": "apt_med", "sdp": SDP}))
    return await closed_with(ws)


async def _another_appointments_token(w: World) -> tuple[int, str]:
    # A valid professional of another appointment tries to talk into apt_med.
    now = datetime.now(UTC)
    w.store.add_cabin(Cabin("cabin-3"))
    third = Appointment("apt_third", AppointmentKind.BANK, "cabin-3", now, timedelta(minutes=30), "M. D")
    w.store.add_appointment(third)
    pro = await w.professional(third)
    await pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_med", "sdp": SDP}))
    return await closed_with(pro)


async def _presence_for_another_cabin(w: World) -> tuple[int, str]:
    cabin = await w.cabin("cabin-1")
    await cabin.send_str(json.dumps({"type": "presence", "appointment_id": "apt_other", "present": True}))
    return await closed_with(cabin)


async def _cabin_admits_itself(w: World) -> tuple[int, str]:
    cabin = await w.cabin("cabin-1")
    await cabin.send_str(json.dumps({"type": "admit", "appointment_id": "apt_med"}))
    return await closed_with(cabin)


async def _no_hello(w: World) -> tuple[int, str]:
    return await closed_with(await w.ws("professional", None))


async def _cabin_sends(w: World, text: str) -> tuple[int, str]:
    cabin = await w.cabin("cabin-1")
    await cabin.send_str(text)
    return await closed_with(cabin)


async def _proof_flood(w: World) -> tuple[int, str]:
    # Each connection replaces the previous one; their proofs stay remembered until they expire.
    for _ in range(MAX_LIVE_PROOFS_PER_CABIN):
        cabin = await w.cabin("cabin-1")
        await cabin.close()
    return await _hello(w, "cabin", w.proof("cabin-1"))


def _report(checks: int) -> str:
    check = SelftestCheck("camera", CheckStatus.OK)
    return dump(SelftestReport(request_id=None, ok=True, checks=(check,) * checks, finished_at="2026-11-26T08:30Z"))


async def _answer_before_offer(w: World) -> tuple[int, str]:
    async def send(pro: Any) -> None:
        await pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_med", "sdp": SDP}))

    return await _after_admission(w, send)


ATTACKS = [
    Attack(
        "forged-signature",
        lambda w: _hello(w, "professional", _forged_signature(w)),
        4401,
        "This link was not issued by this service.",
    ),
    Attack(
        "wrong-key",
        lambda w: _hello(w, "professional", w.pro_token(w.medical, TokenSigner.generate())),
        4401,
        "This link was not issued by this service.",
    ),
    Attack(
        "alg-none",
        lambda w: _hello(w, "professional", _unsigned_alg_none(w)),
        4401,
        "This link is damaged: its access token cannot be read.",
    ),
    Attack(
        "alg-confusion-hs256",
        lambda w: _hello(w, "professional", _hmac_with_public_key(w)),
        4401,
        "This link is damaged: its access token cannot be read.",
    ),
    Attack("expired", lambda w: _hello(w, "professional", _expired(w)), 4403, "This link has expired."),
    Attack(
        "not-yet-valid", lambda w: _hello(w, "professional", w.pro_token(w.bank)), 4403, "This link is not valid yet."
    ),
    Attack("revoked", lambda w: _hello(w, "professional", _revoked(w)), 4403, "This appointment was cancelled."),
    Attack(
        "replay-after-window",
        lambda w: _hello(w, "professional", _replay_after_window(w)),
        4403,
        "This link only works during the appointment's time window.",
    ),
    Attack("another-appointments-token", _another_appointments_token, 4403, "not your appointment"),
    Attack(
        "wrong-role-pro-token-as-cabin",
        lambda w: _hello(w, "cabin", w.pro_token(w.medical)),
        4403,
        "This link is not for this use.",
    ),
    Attack(
        "cabin-token-used-by-a-browser",
        lambda w: _hello(w, "professional", w.proof("cabin-1")),
        4403,
        "This link is not for this use.",
    ),
    Attack("cabin-proof-replayed", _replayed_proof, 4403, "This credential was already used."),
    Attack(
        "cabin-key-not-enrolled",
        lambda w: _hello(w, "cabin", _stolen_cabin_key(w)),
        4401,
        "This link was not issued by this service.",
    ),
    Attack(
        "unknown-cabin",
        lambda w: _hello(w, "cabin", CabinIdentity.generate("nobody").proof(datetime.now(UTC))),
        4401,
        "This cabin is not enrolled.",
    ),
    Attack(
        "disabled-cabin",
        lambda w: _hello(w, "cabin", w.proof("cabin-off")),
        4403,
        "This cabin has been disabled by the operator.",
    ),
    Attack("missing-token", lambda w: _hello(w, "professional", ""), 4400, "'token' must not be empty"),
    Attack("no-hello", _no_hello, 4408, "no hello within the time allowed"),
    Attack("first-message-not-hello", _first_message_not_hello, 4401, "the first message must be 'hello' with a token"),
    Attack(
        "oversized-message",
        lambda w: _send_after_hello(w, json.dumps({"type": "bye", "appointment_id": "x" * 70_000})),
        4413,
        "message too large (70037 bytes > 65536)",
    ),
    Attack("invalid-json", lambda w: _send_after_hello(w, "{not json"), 4400, "message is not valid JSON"),
    Attack("binary-frame", lambda w: _send_after_hello(w, b"\x00\xff"), 4400, "expected a text message"),
    Attack(
        "unknown-message-type",
        lambda w: _send_after_hello(w, '{"type": "drop-tables"}'),
        4400,
        "unknown message type 'drop-tables'",
    ),
    Attack(
        "sdp-that-is-not-sdp",
        lambda w: _send_after_hello(
            w, json.dumps({"type": "answer", "appointment_id": "apt_med", "sdp": "<script>alert(1)</script>"})
        ),
        4400,
        "'answer' carries no valid SDP (must start with 'v=0' and have a media section)",
    ),
    Attack("answer-before-offer", _answer_before_offer, 4400, "answer before offer"),
    Attack("flood", _flood, 4429, "too many messages"),
    Attack("second-professional-same-link", _second_professional, 4409, "someone is already connected with this link"),
    Attack("presence-for-another-cabins-appointment", _presence_for_another_cabin, 4403, "not your appointment"),
    Attack("cabin-sends-admit", _cabin_admits_itself, 4400, "'admit' is not expected from a cabin"),
    Attack(
        "selftest-report-from-a-professional",
        lambda w: _send_after_hello(w, _report(1)),
        4400,
        "'selftest-report' is not expected from a professional",
    ),
    Attack(
        "incident-from-a-professional",
        lambda w: _send_after_hello(w, dump(Incident(IncidentKind.CAMERA_UNAVAILABLE, open=True))),
        4400,
        "'incident' is not expected from a professional",
    ),
    Attack(
        "selftest-report-with-too-many-checks",
        lambda w: _cabin_sends(w, _report(MAX_CHECKS + 1)),
        4400,
        f"too many checks ({MAX_CHECKS + 1} > {MAX_CHECKS})",
    ),
    Attack(
        "incident-of-unknown-kind",
        lambda w: _cabin_sends(w, json.dumps({"type": "incident", "kind": "fire", "open": True})),
        4400,
        "malformed 'incident' message: 'fire' is not a valid IncidentKind",
    ),
    Attack(
        "cabin-sends-selftest-request",
        lambda w: _cabin_sends(w, json.dumps({"type": "selftest-request", "request_id": "st_1"})),
        4400,
        "'selftest-request' is not expected from a cabin",
    ),
    Attack(
        "cabin-proof-flood",
        _proof_flood,
        4429,
        "too many connections from cabin 'cabin-1': try again in a few minutes",
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
async def test_attack(world: World, attack: Attack) -> None:
    # A bystander room: admitted and negotiating, on another cabin.
    bystander_pro, bystander_cabin = await admitted_call(world, world.other, "cabin-2")
    await bystander_cabin.send_str(json.dumps({"type": "offer", "appointment_id": "apt_other", "sdp": SDP}))
    assert (await receive_until(bystander_pro, "offer"))["sdp"] == SDP

    assert await attack.run(world) == (attack.code, attack.message)

    # The bystander room is undisturbed and the server still works.
    await bystander_pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_other", "sdp": SDP}))
    assert (await receive_until(bystander_cabin, "answer"))["sdp"] == SDP
    assert not bystander_pro.closed and not bystander_cabin.closed
    health = await world.client.get("/healthz")
    assert health.status == 200


def test_the_table_covers_at_least_twenty_attacks() -> None:
    assert len(ATTACKS) >= 20
