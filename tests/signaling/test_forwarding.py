"""X-Forwarded-For from trusted proxies only: the pure rule, then on a real server (audit, logs) with the test
client on 127.0.0.1 as the trusted proxy."""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

import pytest

from signaling.forwarding import Forwarded, Network, forwarded_client
from signaling.models import AuditAction
from tests.signaling.conftest import OPERATOR_KEY, World, receive

LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
WITH_LAN = (*LOOPBACK, ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(
    ("peer", "headers", "proxies", "address"),
    [
        ("203.0.113.5", ["198.51.100.7"], LOOPBACK, "203.0.113.5"),  # not a proxy: its header is ignored
        ("127.0.0.1", [], LOOPBACK, "127.0.0.1"),  # a proxy that says nothing
        ("127.0.0.1", ["198.51.100.7"], LOOPBACK, "198.51.100.7"),
        ("127.0.0.1", ["203.0.113.9, 198.51.100.7"], LOOPBACK, "198.51.100.7"),  # the client forged the left part
        ("127.0.0.1", ["198.51.100.7, 10.0.0.2, 10.0.0.3"], WITH_LAN, "198.51.100.7"),  # a chain of proxies
        ("127.0.0.1", ["203.0.113.9", "198.51.100.7, 10.0.0.2"], WITH_LAN, "198.51.100.7"),  # two header lines
        ("127.0.0.1", ["198.51.100.7, 10.0.0.2"], LOOPBACK, "10.0.0.2"),  # 10.0.0.2 is not trusted here
        ("127.0.0.1", ["garbage, 10.0.0.2"], WITH_LAN, "10.0.0.2"),  # the walk stops at what is not an address
        ("127.0.0.1", ["unknown"], LOOPBACK, "127.0.0.1"),
        ("127.0.0.1", ["10.0.0.2, 127.0.0.1"], WITH_LAN, "10.0.0.2"),  # every hop trusted: the farthest
        ("::ffff:127.0.0.1", ["198.51.100.7"], LOOPBACK, "198.51.100.7"),  # IPv4 seen on a dual-stack socket
        ("::1", ["2001:db8::5"], LOOPBACK, "2001:db8::5"),
        ("127.0.0.1", ["[2001:db8::5]"], LOOPBACK, "2001:db8::5"),
        ("127.0.0.1", ["198.51.100.7"], (), "127.0.0.1"),  # no proxy configured
        (None, ["198.51.100.7"], LOOPBACK, None),
    ],
)
def test_the_client_is_the_rightmost_untrusted_address(
    peer: str | None, headers: list[str], proxies: tuple[Network, ...], address: str | None
) -> None:
    assert forwarded_client(peer, headers, None, proxies).address == address


@pytest.mark.parametrize(
    ("peer", "proto", "scheme"),
    [
        ("127.0.0.1", "https", "https"),
        ("127.0.0.1", "HTTP", "http"),
        ("127.0.0.1", "ftp", None),
        ("10.1.1.1", "https", None),
    ],
)
def test_the_scheme_comes_from_a_trusted_proxy_only(peer: str, proto: str, scheme: str | None) -> None:
    assert forwarded_client(peer, [], proto, LOOPBACK) == Forwarded(address=peer, scheme=scheme)


@pytest.fixture
def server_options() -> dict[str, Any]:
    return {"trusted_proxies": LOOPBACK}


async def test_behind_a_trusted_proxy_the_audit_and_logs_name_the_client(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # The test client is on 127.0.0.1, a trusted proxy here: its X-Forwarded-For is believed.
    forwarded = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7", "X-Forwarded-Proto": "https"}
    ws = await world.client.ws_connect("/ws/professional", headers=forwarded)
    await ws.send_str(json.dumps({"type": "hello", "token": world.pro_token(world.medical)}))
    await receive(ws, "welcome")
    await ws.close()
    response = await world.client.post(
        "/api/v1/cabins", json={"id": "gare-rouen"}, headers={"Authorization": f"Bearer {OPERATOR_KEY}", **forwarded}
    )
    assert response.status == 201
    response = await world.client.get("/api/v1/cabins", headers={"Authorization": "Bearer wrong", **forwarded})
    assert response.status == 401

    events = world.store.audit_log()
    joined = [e for e in events if e.action is AuditAction.JOINED]
    created = [e for e in events if e.action is AuditAction.CABIN_CREATED]
    assert [e.address for e in joined + created] == ["198.51.100.7", "198.51.100.7"]
    assert "professional joined from 198.51.100.7" in caplog.text
    assert "refused an operator request from 198.51.100.7: invalid API key" in caplog.text
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any(line.startswith('198.51.100.7 "POST /api/v1/cabins" 201') for line in access), access
    assert "203.0.113.9" not in caplog.text
