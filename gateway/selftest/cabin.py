"""The self-test of a cabin: standalone (`cabine gateway selftest`), or inside the running cabin (at start-up and
when signaling asks), where it reads the cabin's own connection, devices and calls instead of opening them again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.config import CabinConfig
from gateway.media.meters import AudioLevel, VideoStats
from gateway.selftest.plan import SelftestPlan
from gateway.selftest.run import run_selftest
from gateway.selftest.signaling_link import SignalingContact
from gateway.selftest.standalone import standalone_plan
from signaling.protocol import SelftestReport

if TYPE_CHECKING:
    from gateway.app import Cabin
    from gateway.cabin import CabinGateway

IN_CALL = "in a call: not measured now"


async def standalone_selftest(config: CabinConfig, *, request_id: str | None = None) -> SelftestReport:
    """Open every configured part, check it, close it: what `cabine gateway selftest` runs."""
    return await run_selftest(standalone_plan(config), request_id=request_id)


def _contact(gateway: CabinGateway) -> SignalingContact | None:
    """The running cabin's signaling connection as the self-test reads it (None while it is not connected)."""
    # The client's own timing of its hello and welcome gives the clock offset.
    client = gateway.signaling
    if client is None or client.welcome is None or client.round_trip is None or client.welcomed_at is None:
        return None
    return SignalingContact(
        welcome=client.welcome,
        round_trip=client.round_trip,
        received_at=datetime.fromtimestamp(client.welcomed_at, UTC),
    )


def cabin_plan(cabin: Cabin) -> SelftestPlan:
    """The plan inside a running cabin: nothing it holds is opened a second time."""
    config, gateway = cabin.config, cabin.gateway

    def live_camera() -> VideoStats | str | None:
        # A call holds the camera: its own meter says what the camera delivers (None: no call, open the camera).
        for session in gateway.sessions.values():
            stats = session.sources.video_meter.stats()
            return stats if stats is not None else IN_CALL
        return None

    def live_microphone() -> AudioLevel | str | None:
        for session in gateway.sessions.values():
            level = session.sources.audio_meter.level()
            return level if level is not None else IN_CALL
        return None

    return SelftestPlan(
        camera=config.video,
        microphone=config.audio,
        camera_format=config.video_format,
        devices=config.devices.entries if cabin.devices is not None else (),
        adapter=config.bluetooth_adapter,
        live_devices=cabin.devices,
        live_signaling=lambda: _contact(gateway),
        live_camera=live_camera,
        live_microphone=live_microphone,
        microphone_threshold_dbfs=config.microphone_silence_dbfs,
        low_battery_percent=config.battery_low_percent,
        sound_settings=config.sound,
        loudspeaker=config.loudspeaker,
    )


async def cabin_selftest(cabin: Cabin, request_id: str | None = None) -> SelftestReport:
    """The running cabin's self-test (the `selftest` runner of gateway.app.Cabin)."""
    return await run_selftest(cabin_plan(cabin), request_id=request_id)
