"""The cabin's side of fleet supervision against a real signaling server: its heartbeat (what it says, and what it
never says), a configuration from afar applied at once, after the call, or refused with its reason, and the
self-test that runs by itself before an appointment."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Cabin
from gateway.heartbeat import SystemProbe, build_heartbeat, steady_part
from gateway.media.spec import VideoFormat
from gateway.selftest.cabin import cabin_selftest
from tests.conftest import wait_until
from tests.gateway.test_cabin_loop import admit, answer_offer, loopback_only
from tests.signaling.conftest import OPERATOR_KEY, World, receive_until, server_options, world

__all__ = ["loopback_only", "server_options", "world"]  # fixtures, imported to be used here (the first autouse)

pytestmark = pytest.mark.timeout(60)
AUTH = {"Authorization": f"Bearer {OPERATOR_KEY}"}


@pytest.fixture
async def cabin(world: World) -> AsyncIterator[Cabin]:
    # The bank appointment starts in two hours: with a three-hour lead its self-test is due at once.
    async with Cabin(
        world.cabin_config(), selftest=cabin_selftest, selftest_at_start=False, selftest_lead=timedelta(hours=3)
    ) as running:
        await asyncio.wait_for(running.gateway.connected.wait(), timeout=10)
        yield running


def test_a_heartbeat_says_which_parts_work_and_nothing_else() -> None:
    last = datetime(2026, 12, 2, 8, 30, 12, 345678, tzinfo=UTC)
    devices = [
        {"address": "CA:B1:0E:00:00:04", "name": "Scale", "connected": True, "battery": 87, "seen": True},
        {"address": "CA:B1:0E:00:00:01", "name": "Thermo", "connected": False, "battery": None},
    ]
    steady: dict[str, Any] = {
        "software": "0.1.0",
        "config_version": "v3",
        "camera_present": True,
        "microphone_present": False,
        "last_readings": {"CA:B1:0E:00:00:04": last},
        "system": SystemProbe(Path("/")).figures(),
        "in_session": True,
    }
    heartbeat = build_heartbeat(
        **steady,
        uptime_s=3600.04,
        now=datetime(2026, 12, 2, 8, 31, tzinfo=UTC),
        camera_fps=29.97,
        microphone_level_db=float("-inf"),
        devices=[*devices, {"name": "no address"}],
        rtt_ms=12.345,
        loss=0.05,
    )
    assert heartbeat.sent_at == "2026-12-02T08:31:00.000Z"
    assert heartbeat.microphone_level_db == -120.0, "silence is a number on the wire, not -inf"
    assert [d.address for d in heartbeat.devices] == ["CA:B1:0E:00:00:01", "CA:B1:0E:00:00:04"]
    thermo, scale = heartbeat.devices
    assert (thermo.seen, thermo.connected, thermo.battery, thermo.last_reading_at) == (False, False, None, None)
    assert scale.last_reading_at == "2026-12-02T08:30:12.345Z"
    # Moving figures aside, two heartbeats of an unchanged cabin are equal: only a change is sent early.
    later = build_heartbeat(
        **steady,
        uptime_s=9.0,
        now=datetime.now(UTC),
        camera_fps=None,
        microphone_level_db=None,
        devices=devices,
        rtt_ms=None,
        loss=None,
    )
    assert steady_part(heartbeat) == steady_part(later)
    assert steady_part(heartbeat) != steady_part(
        build_heartbeat(
            **{**steady, "in_session": False},
            uptime_s=1.0,
            now=datetime.now(UTC),
            camera_fps=None,
            microphone_level_db=None,
            devices=devices,
            rtt_ms=None,
            loss=None,
        )
    )


def test_the_pcs_figures_come_from_proc_and_sys(tmp_path: Path) -> None:
    proc, thermal = tmp_path / "proc", tmp_path / "thermal"
    (thermal / "thermal_zone0").mkdir(parents=True)
    (thermal / "thermal_zone1").mkdir()
    proc.mkdir()
    (proc / "meminfo").write_text("MemTotal: 4000000 kB\nMemFree: 100 kB\nMemAvailable: 3000000 kB\n")
    (thermal / "thermal_zone0" / "temp").write_text("47500\n")
    (thermal / "thermal_zone1" / "temp").write_text("61000\n")
    probe = SystemProbe(tmp_path / "not" / "yet", proc=proc, thermal=thermal)
    (proc / "stat").write_text("cpu  100 0 100 800 0 0 0 0 0 0\n")
    assert probe.figures().cpu is None, "the load needs two readings"
    (proc / "stat").write_text("cpu  150 0 150 900 0 0 0 0 0 0\n")
    figures = probe.figures()
    assert figures.cpu == 0.5 and figures.memory == 0.25 and figures.temperature_c == 61.0
    assert figures.disk is not None and 0 < figures.disk < 1, "the nearest existing folder's disk"
    # A PC that exposes nothing: no figure, no error.
    bare = SystemProbe(tmp_path, proc=tmp_path / "none", thermal=tmp_path / "none")
    assert (bare.figures().cpu, bare.figures().memory, bare.figures().temperature_c) == (None, None, None)
    # This machine's own /proc gives real figures.
    real = SystemProbe(Path("/"))
    real.figures()
    assert real.figures().memory is not None


async def test_the_heartbeat_reaches_signaling_and_follows_a_call(world: World, cabin: Cabin) -> None:
    hub = world.hub
    await wait_until(lambda: hub.fleet.latest("cabin-1") is not None, timeout=10, what="the first heartbeat")
    latest = hub.fleet.latest("cabin-1")
    assert latest is not None
    beat = latest.heartbeat
    assert beat.camera_present and beat.microphone_present and not beat.in_session
    assert beat.config_version.startswith("sha256:") and beat.software
    assert beat.memory is not None and beat.rtt_ms is not None and beat.loss == 0.0
    assert latest.clock_offset_s is not None and abs(latest.clock_offset_s) < 1

    pro = await admit(world, cabin)
    offer = await receive_until(pro, "offer")
    peer = await answer_offer(pro, offer["sdp"])

    def in_call() -> bool:
        current = hub.fleet.latest("cabin-1")
        return current is not None and current.heartbeat.in_session and bool(current.heartbeat.camera_fps)

    # A call starting is a change: told within a second or two, not at the next ten-second beat.
    await wait_until(in_call, timeout=10, what="a heartbeat saying a call runs, with the camera's frame rate")
    current = hub.fleet.latest("cabin-1")
    assert current is not None and current.heartbeat.microphone_level_db is not None
    text = json.dumps([h.to_json() for h in hub.fleet.history("cabin-1")])
    assert "apt_med" not in text and "Dr A" not in text, "a heartbeat never says who is in the cabin"
    await peer.close()
    await pro.close()


async def put_config(world: World, settings: dict[str, Any]) -> dict[str, Any]:
    async with world.client.put("/api/v1/cabins/cabin-1/config", headers=AUTH, json={"settings": settings}) as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
        return body


async def config_state(world: World) -> dict[str, Any]:
    async with world.client.get("/api/v1/cabins/cabin-1/config", headers=AUTH) as response:
        body: dict[str, Any] = await response.json()
        return body


async def test_a_configuration_from_afar_applies_without_a_restart(world: World, cabin: Cabin) -> None:
    gateway = cabin.gateway
    await put_config(world, {"camera": {"width": 1280, "height": 720, "fps": 15}})
    await wait_until(lambda: gateway.config_version == "v1", timeout=10, what="v1 applied")
    assert gateway.config.video_format == VideoFormat(1280, 720, 15)
    assert (await config_state(world))["status"] == "applied"
    await wait_until(
        lambda: (latest := world.hub.fleet.latest("cabin-1")) is not None and latest.heartbeat.config_version == "v1",
        timeout=10,
        what="the heartbeat to name v1",
    )

    # The cabin refuses what its own rules refuse, and says why: the test pattern needs a width multiple of 16.
    await put_config(world, {"camera": {"width": 1000, "height": 720}})
    await wait_until(
        lambda: (said := world.hub.config_status.get("cabin-1")) is not None and said.version == 2,
        timeout=10,
        what="the cabin's answer to v2 at signaling",
    )
    state = await config_state(world)
    assert state["status"] == "refused"
    assert state["refusal"] == "configuration v2: camera.width: the test pattern needs a multiple of 16, got 1000"
    assert gateway.config.video_format == VideoFormat(1280, 720, 15) and gateway.config_version == "v1"

    # During a call: valid, kept for when it ends; the call goes on untouched.
    pro = await admit(world, cabin)
    offer = await receive_until(pro, "offer")
    peer = await answer_offer(pro, offer["sdp"])
    session = gateway.sessions["apt_med"]
    await asyncio.wait_for(session.connected.wait(), timeout=10)
    await put_config(world, {"camera": {"width": 320, "height": 240, "fps": 10}})
    await wait_until(lambda: gateway.pending_config is not None, timeout=10, what="v3 pending")
    assert (await config_state(world))["status"] == "pending"
    assert gateway.sessions.get("apt_med") is session and session.connection_state == "connected"
    assert gateway.config.video_format == VideoFormat(1280, 720, 15)
    await pro.send_str(json.dumps({"type": "bye", "appointment_id": "apt_med"}))
    await wait_until(lambda: gateway.config_version == "v3", timeout=10, what="v3 applied once the call ended")
    assert gateway.config.video_format == VideoFormat(320, 240, 10)
    await peer.close()
    await pro.close()


async def test_the_self_test_runs_by_itself_before_an_appointment(world: World, cabin: Cabin) -> None:
    hub = world.hub
    await wait_until(
        lambda: (
            (latest := hub.selftests.latest("cabin-1")) is not None and latest.report.request_id == "before-apt_bank"
        ),
        timeout=30,
        what="the self-test before the bank appointment",
    )
    assert "apt_bank" in cabin.tested_before
    # Once per appointment: the next look at the schedule does not run it again.
    assert cabin.appointments_due_for_a_test(datetime.now(UTC)) == []


async def test_thresholds_from_afar_reach_the_self_test(world: World, cabin: Cabin) -> None:
    await put_config(world, {"thresholds": {"battery_low": 50, "microphone_silence": -10}})
    await wait_until(lambda: cabin.gateway.config_version == "v1", timeout=10, what="v1 applied")
    assert (cabin.config.battery_low_percent, cabin.config.microphone_silence_dbfs) == (50, -10.0)
    # The test tone (-17 dBFS) is now too quiet for this cabin.
    report = await cabin.run_selftest("after-thresholds")
    (microphone,) = [check for check in report.checks if check.name == "microphone"]
    assert microphone.status == "failed" and "-10" in microphone.detail, microphone
