"""The signaling endpoints over real HTTP and WebSocket: waiting room, relay, pages, logs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from signaling.keys import HUB
from signaling.models import AuditAction
from signaling.tokens import TokenSigner
from tests.signaling.conftest import SDP, World, admitted_call, closed_with, receive, receive_until


async def test_waiting_room_then_admission_then_relay(world: World) -> None:
    pro = await world.professional(world.medical)
    state = await receive(pro, "room")
    assert state == {**state, "cabin_online": False, "citizen_present": False, "admitted": False}

    cabin = await world.cabin("cabin-1")
    # The cabin learns its schedule at connection (kind and time, for its screen).
    state = await receive_until(pro, "room")
    assert state["cabin_online"] is True

    # Admitting before the citizen is there is refused politely; the socket stays open.
    await pro.send_str(json.dumps({"type": "admit", "appointment_id": "apt_med"}))
    error = await receive_until(pro, "error")
    assert error["message"] == "the citizen is not in the cabin yet"
    # The cabin cannot make an offer before admission: no media before the professional lets the citizen in.
    await cabin.send_str(json.dumps({"type": "offer", "appointment_id": "apt_med", "sdp": SDP}))
    assert (await receive_until(cabin, "error"))["message"] == "the citizen has not been admitted"

    await cabin.send_str(json.dumps({"type": "presence", "appointment_id": "apt_med", "present": True}))
    state = await receive_until(pro, "room")
    assert state["citizen_present"] is True and state["admitted"] is False
    await pro.send_str(json.dumps({"type": "admit", "appointment_id": "apt_med"}))
    assert (await receive_until(pro, "peer-joined"))["role"] == "cabin"
    joined = await receive_until(cabin, "peer-joined")
    assert joined["kind"] == "medical" and joined["ice_servers"] == []

    await cabin.send_str(json.dumps({"type": "offer", "appointment_id": "apt_med", "sdp": SDP}))
    assert (await receive_until(pro, "offer"))["sdp"] == SDP
    await pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_med", "sdp": SDP}))
    assert (await receive_until(cabin, "answer"))["sdp"] == SDP
    candidate = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"
    await pro.send_str(
        json.dumps(
            {
                "type": "candidate",
                "appointment_id": "apt_med",
                "candidate": candidate,
                "sdp_mid": "0",
                "sdp_mline_index": 0,
            }
        )
    )
    assert (await receive_until(cabin, "candidate"))["candidate"] == candidate

    # The professional leaves and comes back within the window: no second admission needed.
    await pro.close()
    assert (await receive_until(cabin, "peer-left"))["role"] == "professional"
    pro = await world.professional(world.medical)
    assert (await receive_until(pro, "peer-joined"))["role"] == "cabin"
    assert (await receive_until(cabin, "peer-joined"))["role"] == "professional"
    await pro.close()
    await cabin.close()

    actions = [e.action for e in reversed(world.store.audit_log(appointment_id="apt_med"))]
    assert actions[:3] == [AuditAction.JOINED, AuditAction.JOINED, AuditAction.ADMITTED]
    assert AuditAction.LEFT in actions
    assert all(e.address == "127.0.0.1" for e in world.store.audit_log(appointment_id="apt_med"))


async def test_citizen_leaving_ends_admission(world: World) -> None:
    pro, cabin = await admitted_call(world, world.medical, "cabin-1")
    await cabin.send_str(json.dumps({"type": "presence", "appointment_id": "apt_med", "present": False}))
    state = await receive_until(pro, "room")
    assert state["admitted"] is False and state["citizen_present"] is False
    await pro.close()
    await cabin.close()


async def test_cancelling_ends_the_call_and_revokes_the_link(world: World) -> None:
    pro, cabin = await admitted_call(world, world.medical, "cabin-1")
    hub = world.client.server.app  # type: ignore[union-attr]
    world.store.cancel_appointment("apt_med", datetime.now(UTC))
    await hub[HUB].appointment_cancelled("apt_med")
    assert await closed_with(pro) == (4403, "This appointment was cancelled.")
    bye = await receive_until(cabin, "bye")
    assert bye["reason"] == "cancelled"
    again = await world.ws("professional", world.pro_token(world.medical))
    assert await closed_with(again) == (4403, "This appointment was cancelled.")
    await cabin.close()


async def test_a_cabin_only_sees_and_joins_its_own_appointments(world: World) -> None:
    cabin = await world.ws("cabin", world.proof("cabin-2"))
    await receive(cabin, "welcome")
    schedule = await receive(cabin, "schedule")
    assert [a["id"] for a in schedule["appointments"]] == ["apt_other"]
    await cabin.send_str(json.dumps({"type": "presence", "appointment_id": "apt_med", "present": True}))
    assert await closed_with(cabin) == (4403, "not your appointment")


async def test_a_link_works_only_in_its_window(world: World) -> None:
    # The bank appointment starts in two hours: its link opens 15 minutes before.
    early = await world.ws("professional", world.pro_token(world.bank))
    code, message = await closed_with(early)
    assert code == 4403 and message == "This link is not valid yet."
    page = await world.client.get(f"/join/{world.pro_token(world.bank)}")
    assert page.status == 403


async def test_join_page_for_a_valid_link(world: World) -> None:
    response = await world.client.get(f"/join/{world.pro_token(world.medical)}")
    assert response.status == 200
    body = await response.text()
    assert 'id="join"' in body
    assert "Rejoindre" in body
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("make", "status", "text"),
    [
        (lambda w: "garbage", 401, "son jeton d'accès est illisible"),
        (lambda w: w.pro_token(w.medical, TokenSigner.generate()), 401, "not issued by this service"),
        (lambda w: w.proof("cabin-1"), 403, "not for this use"),
    ],
    ids=["garbage", "forged", "cabin-proof"],
)
async def test_join_page_refusals(world: World, make: object, status: int, text: str) -> None:
    response = await world.client.get(f"/join/{make(world)}")  # type: ignore[operator]
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
    ws = await world.ws("professional", forged)
    await closed_with(ws)
    proof = world.proof("cabin-1")
    cabin = await world.ws("cabin", proof)
    await receive(cabin, "welcome")
    await cabin.close()
    for secret in (token, forged, proof):
        assert secret not in caplog.text
        assert secret.split(".")[2][:20] not in caplog.text
    assert "/join/<token>" in caplog.text
