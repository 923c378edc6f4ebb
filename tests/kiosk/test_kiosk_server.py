"""The cabin screen's local server: loopback only, its own Origin only, clear refusals, the citizen's actions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.cabin import CabinGateway
from gateway.config import CabinConfig
from gateway.errors import ConfigError
from gateway.identity import CabinIdentity
from gateway.kiosk import KioskServer
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def kiosk() -> AsyncIterator[KioskServer]:
    # A gateway whose signaling is unreachable (nothing listens there): the screen still works, idle.
    config = CabinConfig(
        cabin_id="cabin-k",
        signaling_url=f"ws://127.0.0.1:{free_port()}",
        identity=CabinIdentity.generate("cabin-k"),
        ice_addresses=("127.0.0.1",),
    )
    async with CabinGateway(config) as gateway, KioskServer(gateway, port=0) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def origin(kiosk: KioskServer) -> dict[str, str]:
    return {"Origin": f"http://127.0.0.1:{kiosk.port}"}


async def next_message(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, ws.close_code)
        data: dict[str, Any] = json.loads(msg.data)
        if data["type"] == kind:
            return data


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            return ws.close_code, str(msg.extra)
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code, ""


async def test_the_page_is_served_with_strict_headers(kiosk: KioskServer, http: aiohttp.ClientSession) -> None:
    async with http.get(kiosk.url) as response:
        assert response.status == 200
        assert '<html lang="fr">' in await response.text()
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Permissions-Policy"].startswith("camera=()")
    async with http.get(f"{kiosk.url}static/cabin/strings.js") as response:
        assert response.status == 200
    async with http.get(f"{kiosk.url}static/shared/vitals.js") as response:
        assert response.status == 200
    # Only the cabin screen's own files: not the professional's page, not the operator's.
    others = ("static/pro/pro.js", "static/operator/operator.js", "join/x", "captures/req_1/1", "documents/d/1.png")
    for other in others:
        async with http.get(f"{kiosk.url}{other}") as response:
            assert response.status == 404


async def test_another_host_name_is_refused(kiosk: KioskServer, http: aiohttp.ClientSession) -> None:
    # A web page whose name resolves to 127.0.0.1 (DNS rebinding) must not reach the screen or its WebSocket.
    async with http.get(kiosk.url, headers={"Host": f"attacker.example:{kiosk.port}"}) as response:
        assert response.status == 403
        assert "Unexpected Host header" in await response.text()
    async with http.get(kiosk.url, headers={"Host": f"localhost:{kiosk.port}"}) as response:
        assert response.status == 200


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://attacker.example"}, {"Origin": "null"}])
async def test_the_websocket_needs_the_pages_own_origin(
    kiosk: KioskServer, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{kiosk.url}kiosk/ws", headers=headers)
    assert refused.value.status == 403


async def test_a_page_gets_the_screen_and_can_switch_language(kiosk: KioskServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(f"{kiosk.url}kiosk/ws", headers=origin(kiosk)) as ws:
        screen = await next_message(ws, "screen")
        assert (screen["state"], screen["detail"], screen["lang"]) == ("idle", "none", "fr")
        assert (screen["appointment"], screen["can_start"], screen["help"]) == (None, False, "none")
        await ws.send_json({"type": "language", "lang": "en"})
        assert (await next_message(ws, "screen"))["lang"] == "en"
        # Nothing is open: "start" is answered, not obeyed.
        await ws.send_json({"type": "start"})
        assert (await next_message(ws, "error"))["message"] == "no appointment is open now"
        assert kiosk.gateway.checked_in == set()


async def test_help_is_kept_until_signaling_accepts_it(kiosk: KioskServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(f"{kiosk.url}kiosk/ws", headers=origin(kiosk)) as ws:
        await next_message(ws, "screen")
        await ws.send_json({"type": "help"})
        screen = await next_message(ws, "screen")
        assert screen["help"] == "sending"
        assert kiosk.gateway.help is not None and kiosk.gateway.help.alert_id is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json", "message is not JSON"),
        ("[1]", "message must be a JSON object"),
        ('{"type": "reboot"}', "unknown message type 'reboot'"),
        ('{"type": "language", "lang": "fr-FR<"}', "'lang' must be one of this cabin's languages: fr, en"),
        ('{"type": "language", "lang": "de"}', "'lang' must be one of this cabin's languages: fr, en"),
        ('{"type": "answer", "sdp": "v=0"}', "'answer' needs an 'sdp' string and the 'offer' number it answers"),
        ('{"type": "capture", "source": "scanner"}', "'capture' needs an appointment in progress"),
        ('{"type": "send-capture"}', "'send-capture' needs an appointment in progress"),
    ],
)
async def test_bad_messages_close_with_4400_and_a_reason(
    kiosk: KioskServer, http: aiohttp.ClientSession, message: str, reason: str
) -> None:
    async with http.ws_connect(f"{kiosk.url}kiosk/ws", headers=origin(kiosk)) as ws:
        await next_message(ws, "screen")
        await ws.send_str(message)
        assert await closed_with(ws) == (4400, reason)


async def test_a_newer_page_replaces_the_older_one(kiosk: KioskServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(f"{kiosk.url}kiosk/ws", headers=origin(kiosk)) as first:
        await next_message(first, "screen")
        async with http.ws_connect(f"{kiosk.url}kiosk/ws", headers=origin(kiosk)) as second:
            assert await closed_with(first) == (4409, "replaced by a newer cabin screen")
            assert (await next_message(second, "screen"))["state"] == "idle"


async def test_the_screen_is_served_on_loopback_only() -> None:
    config = CabinConfig(
        cabin_id="cabin-k", signaling_url="ws://127.0.0.1:9", identity=CabinIdentity.generate("cabin-k")
    )
    gateway = CabinGateway(config)
    for host in ("0.0.0.0", "192.0.2.1", "cabin.local"):
        with pytest.raises(ConfigError, match="loopback only"):
            KioskServer(gateway, host=host)


async def test_close_is_idempotent(kiosk: KioskServer) -> None:
    await kiosk.close()
    await kiosk.close()


async def test_a_connected_call_does_not_keep_the_screen_awake(kiosk: KioskServer) -> None:
    # A call that is up: its `connected` event is set and stays so. Waiting on it returned at once, and the screen's
    # loop recomputed without pause for the whole call (a fifth of a core).
    class UpCall:
        connected = asyncio.Event()
        ended = asyncio.Event()

    UpCall.connected.set()
    kiosk._session = lambda: UpCall  # type: ignore[method-assign,assignment,return-value]
    changed = asyncio.Event()
    waiting = asyncio.ensure_future(kiosk._wait(changed))
    done, _ = await asyncio.wait({waiting}, timeout=0.5)
    assert not done, "the loop waits for a change, not for an event that already happened"
    UpCall.ended.set()  # one still to come wakes it
    await asyncio.wait_for(waiting, 5)
