"""The plan of `cabine gateway selftest`: the configured parts, opened for the check and closed after it."""

from __future__ import annotations

from typing import Any

from gateway.config import CabinConfig
from gateway.selftest.plan import SelftestPlan
from gateway.signaling_client import SignalingClient


def standalone_plan(config: CabinConfig, **options: Any) -> SelftestPlan:
    """A plan that opens the camera, microphone, devices and a signaling connection itself (`options` override).

    Not for a running cabin: its second connection with the same key would replace the cabin's own (give
    `live_signaling`, `live_devices`, `live_camera` and `live_microphone` instead).

    Raises:
        ConfigError: a bad option.
    """
    base: dict[str, Any] = {
        "camera": config.video,
        "microphone": config.audio,
        "camera_format": config.video_format,
        "devices": config.devices.entries,
        "adapter": config.bluetooth_adapter,
        "connect_signaling": lambda: SignalingClient(config),
        "sound_settings": config.sound,
        "loudspeaker": config.loudspeaker,
    }
    base.update(options)
    return SelftestPlan(**base)
