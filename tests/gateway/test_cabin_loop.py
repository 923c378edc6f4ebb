"""The cabin's loop against a real signaling server: one bad message never ends it, the operator's self-test request
is answered over signaling, and what the cabin keeps stays bounded."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from gateway.app import Cabin
from gateway.backoff import Backoff
from gateway.cabin import HISTORY, SIGNALING_RETRY
from gateway.config import CabinConfig
from gateway.ice import LOOPBACK, host_addresses
from gateway.selftest.cabin import cabin_selftest
from gateway.session import CallStats, rtc_configuration
from tests.conftest import wait_until
from tests.signaling.conftest import OPERATOR_KEY, World, receive, receive_until, server_options, world

__all__ = ["server_options", "world"]  # fixtures, imported to be used here

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    with host_addresses(LOOPBACK):
        yield


@pytest.fixture
async def cabin(world: World) -> AsyncIterator[Cabin]:
    async with Cabin(world.cabin_config(), selftest=cabin_selftest, selftest_at_start=False) as running:
        await asyncio.wait_for(running.gateway.connected.wait(), timeout=10)
        yield running


async def answer_offer(pro: Any, sdp: str) -> RTCPeerConnection:
    """Answer the cabin's offer with a real aiortc peer."""
    pc = RTCPeerConnection(rtc_configuration(()))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_med", "sdp": pc.localDescription.sdp}))
    return pc


def unusable_answer(offer: str) -> str:
    """A well-formed answer naming only codecs the cabin does not have (as from a broken or foreign client)."""
    answer = offer.replace("a=setup:actpass", "a=setup:active")
    return answer.replace("VP8/90000", "XYZ/90000").replace("H264/90000", "XYZ/90000")


async def admit(world: World, cabin: Cabin) -> Any:
    await cabin.gateway.check_in("apt_med")
    pro = await world.professional(world.medical)
    state = await receive_until(pro, "room")
    while not state["citizen_present"]:
        state = await receive_until(pro, "room")
    await pro.send_str(json.dumps({"type": "admit", "appointment_id": "apt_med"}))
    return pro


async def test_a_refused_answer_ends_that_attempt_and_the_cabin_offers_again(world: World, cabin: Cabin) -> None:
    gateway = cabin.gateway
    pro = await admit(world, cabin)
    offer = await receive_until(pro, "offer")
    refused = gateway.sessions["apt_med"]
    answer = unusable_answer(offer["sdp"])
    await pro.send_str(json.dumps({"type": "answer", "appointment_id": "apt_med", "sdp": answer}))
    # The appointment is not ended (no bye): the attempt is, and a fresh offer follows.
    while (message := await receive(pro))["type"] != "offer":
        assert message["type"] != "bye", message
    offer = message
    assert refused.ended.is_set()
    assert gateway.connected.is_set(), "the cabin stays connected to signaling"
    good = await answer_offer(pro, offer["sdp"])
    session = gateway.sessions["apt_med"]
    assert session is not refused
    await asyncio.wait_for(session.connected.wait(), timeout=10)
    await good.close()
    await pro.close()


async def test_the_operator_runs_the_self_test_over_signaling(world: World, cabin: Cabin) -> None:
    headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    async with world.client.post("/api/v1/cabins/cabin-1/selftest", headers=headers) as response:
        assert response.status == 200, await response.text()
        report = await response.json()
    checks = {check["name"]: check for check in report["checks"]}
    assert report["ok"] is True
    assert checks["camera"]["status"] == "ok" and "not black" in checks["camera"]["detail"]
    assert checks["signaling"]["status"] == "ok"
    assert checks["clock"]["status"] == "ok"
    assert cabin.gateway.last_selftest is not None and cabin.gateway.last_selftest.request_id == report["request_id"]
    # The latest report stays on the server for the operator.
    async with world.client.get("/api/v1/cabins/cabin-1/selftest", headers=headers) as response:
        assert response.status == 200
        assert (await response.json())["request_id"] == report["request_id"]


async def test_a_self_test_during_a_call_reads_the_call_instead_of_opening_the_camera(
    world: World, cabin: Cabin
) -> None:
    pro = await admit(world, cabin)
    offer = await receive_until(pro, "offer")
    peer = await answer_offer(pro, offer["sdp"])
    await asyncio.wait_for(cabin.gateway.sessions["apt_med"].connected.wait(), timeout=10)
    await wait_until(
        lambda: cabin.gateway.sessions["apt_med"].sources.video_meter.stats() is not None,
        timeout=5,
        what="the call's camera to deliver frames",
    )
    report = await cabin.run_selftest("during-call")
    checks = {check.name: check for check in report.checks}
    assert checks["camera"].status == "ok" and "640x480" in checks["camera"].detail
    assert checks["microphone"].status == "ok"
    await peer.close()
    await pro.close()


def test_what_the_cabin_remembers_is_bounded(world: World) -> None:
    from gateway.cabin import CabinGateway

    gateway = CabinGateway(
        CabinConfig(cabin_id="cabin-1", signaling_url="ws://127.0.0.1:9", identity=world.cabins["cabin-1"])
    )
    for _ in range(HISTORY * 3):
        gateway.finished_calls.append(CallStats())
        gateway.measurement_requests.append("body-temperature")
    assert len(gateway.finished_calls) == HISTORY
    assert len(gateway.measurement_requests) == HISTORY


def test_signaling_is_retried_with_backoff_and_jitter_forever() -> None:
    rng = random.Random(7)
    delays = [SIGNALING_RETRY.jittered(failures, rng) for failures in range(1000)]
    assert delays[0] <= SIGNALING_RETRY.initial * (1 + SIGNALING_RETRY.jitter)
    # Capped, never zero, and spread (a fleet reconnecting after a restart does not come back in one second).
    assert max(delays) <= SIGNALING_RETRY.maximum * (1 + SIGNALING_RETRY.jitter)
    assert min(delays) > 0
    assert len({round(d, 3) for d in delays[100:]}) > 100
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)
