"""TURN credentials per participant (coturn's use-auth-secret), relay-only policy, and admissions kept by the store."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from signaling.app import create_app
from signaling.protocol import IcePolicy, IceServer
from signaling.turn import TurnConfigError, TurnSettings, credentials, ice_servers
from tests.signaling.conftest import World, admitted_call, receive, receive_until

SECRET = "a-shared-secret-with-coturn"
TURN = TurnSettings(urls=("turn:203.0.113.20:3478", "turns:203.0.113.20:443"), secret=SECRET)


def test_credentials_follow_the_turn_rest_convention() -> None:
    expires = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    username, password = credentials(SECRET, "cabin-x", expires)
    assert username == f"{int(expires.timestamp())}:cabin-x"
    # What coturn computes from its --static-auth-secret for this username.
    expected = base64.b64encode(hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()).decode()
    assert password == expected


def test_credentials_last_until_the_appointment_is_over() -> None:
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    short = ice_servers((), TURN, name="p", now=now)
    assert short[0].username is not None and short[0].username.startswith(
        f"{int((now + timedelta(hours=1)).timestamp())}:"
    )
    late = now + timedelta(hours=5)
    long = ice_servers((), TURN, name="p", now=now, until=late)
    assert long[0].username is not None and long[0].username.startswith(f"{int(late.timestamp())}:")
    stun = (IceServer(urls=("stun:203.0.113.20:3478",)),)
    assert ice_servers(stun, None, name="p", now=now) == stun
    assert ice_servers(stun, TURN, name="p", now=now)[1:] == stun


@pytest.mark.parametrize(
    ("urls", "secret", "message"),
    [
        ((), SECRET, "at least one"),
        (("stun:203.0.113.20",), SECRET, "not a TURN URL"),
        (("http://x",), SECRET, "must start with"),
        (("turn:203.0.113.20",), "short", "at least 16"),
    ],
)
def test_unusable_turn_settings_are_refused(urls: tuple[str, ...], secret: str, message: str) -> None:
    with pytest.raises(TurnConfigError, match=message):
        TurnSettings(urls=urls, secret=secret)


@pytest.fixture
def server_options() -> dict[str, Any]:
    return {"turn": TURN, "ice_policy": IcePolicy.RELAY}


async def test_each_participant_gets_its_own_short_lived_credentials(world: World) -> None:
    cabin_ws = await world.ws("cabin", world.proof("cabin-1"))
    cabin_welcome = await receive(cabin_ws, "welcome")
    await cabin_ws.close()
    pro_ws = await world.ws("professional", world.pro_token(world.medical))
    pro_welcome = await receive(pro_ws, "welcome")
    await pro_ws.close()
    for welcome in (cabin_welcome, pro_welcome):
        assert welcome["ice_policy"] == "relay"
        (server,) = welcome["ice_servers"]
        assert server["urls"] == list(TURN.urls)
        expiry, _, name = server["username"].partition(":")
        assert int(expiry) > time.time() + 3000
        # Names are fingerprints: no appointment or cabin id ends up in the relay's logs.
        assert "apt_med" not in name and "cabin-1" not in name
        digest = hmac.new(SECRET.encode(), server["username"].encode(), hashlib.sha1).digest()
        assert server["credential"] == base64.b64encode(digest).decode()
    assert cabin_welcome["ice_servers"][0]["username"] != pro_welcome["ice_servers"][0]["username"]
    # The professional's credential covers the whole appointment (and its overtime).
    ends = world.medical.ends_at + timedelta(minutes=15)
    assert int(pro_welcome["ice_servers"][0]["username"].split(":")[0]) >= int(ends.timestamp())


async def test_the_cabin_is_told_relay_only_with_fresh_credentials_at_each_call(world: World) -> None:
    pro, cabin = await admitted_call(world, world.medical, "cabin-1")
    # admitted_call consumed the first peer-joined; a reconnection of the professional brings another.
    await pro.close()
    await receive_until(cabin, "peer-left")
    pro = await world.professional(world.medical)
    joined = await receive_until(cabin, "peer-joined")
    assert joined["ice_policy"] == "relay"
    assert joined["ice_servers"][0]["urls"] == list(TURN.urls)
    await pro.close()
    await cabin.close()


async def test_call_problems_are_relayed_to_the_other_end(world: World) -> None:
    pro, cabin = await admitted_call(world, world.medical, "cabin-1")
    problem = {"type": "call-problem", "appointment_id": "apt_med", "problem": "turn-refused", "detail": "401"}
    await cabin.send_str(json.dumps(problem))
    got = await receive_until(pro, "call-problem")
    assert got["problem"] == "turn-refused" and got["detail"] == "401"
    await cabin.send_str(json.dumps({**problem, "problem": "no-such-problem"}))
    assert (await receive_until(cabin, "error"))["message"].startswith("malformed") or cabin.closed
    await pro.close()
    await cabin.close()


async def test_admission_survives_a_restart_of_signaling(world: World) -> None:
    """The citizen is not sent back to the waiting room when the server restarts mid-call."""
    pro, cabin = await admitted_call(world, world.medical, "cabin-1")
    await pro.close()
    await cabin.close()
    assert world.store.get_appointment("apt_med").admitted_at is not None  # type: ignore[union-attr]
    # A new server process: a fresh hub with empty memory, on the same database.
    server = TestServer(create_app(world.hub.config))
    async with TestClient(server) as client:
        world.client = client
        cabin = await world.cabin("cabin-1")
        await cabin.send_str(json.dumps({"type": "presence", "appointment_id": "apt_med", "present": True}))
        pro = await world.professional(world.medical)
        state = await receive_until(pro, "room")
        while not (state["cabin_online"] and state["citizen_present"]):
            state = await receive_until(pro, "room")
        assert state["admitted"] is True
        assert (await receive_until(cabin, "peer-joined"))["role"] == "professional"
        # The citizen leaves: the admission is over, in memory and in the store.
        await cabin.send_str(json.dumps({"type": "presence", "appointment_id": "apt_med", "present": False}))
        state = await receive_until(pro, "room")
        assert state["admitted"] is False
        assert world.store.get_appointment("apt_med").admitted_at is None  # type: ignore[union-attr]
        await pro.close()
        await cabin.close()
