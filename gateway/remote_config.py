"""The configuration an operator sends from afar, checked with the cabin's own rules before anything changes. Pure.

Only what can change without someone on site: the camera's size and frame rate, the device allowlist, the screen's
languages (the same subset signaling accepts, signaling/cabin_settings.py). Values are checked by the very rules
that check the configuration file (gateway/config.py), so a value the file would refuse is refused here too, with
the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.config import CabinConfig, DeviceAllowlist, settings_from_mapping
from gateway.errors import ConfigError
from gateway.media.spec import VideoFormat
from signaling.protocol import remote_settings_problem


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    """A checked configuration from afar; None for what it leaves as it is."""

    version: int
    video_format: VideoFormat | None = None
    allow: DeviceAllowlist | None = None
    languages: tuple[str, ...] | None = None
    battery_low: int | None = None
    microphone_silence: int | None = None

    def applied_to(self, config: CabinConfig) -> CabinConfig:
        """The cabin's configuration with these settings in place."""
        changes: dict[str, Any] = {}
        if self.video_format is not None:
            changes["video_format"] = self.video_format
        if self.allow is not None:
            changes["devices"] = self.allow
        if self.battery_low is not None:
            changes["battery_low_percent"] = self.battery_low
        if self.microphone_silence is not None:
            changes["microphone_silence_dbfs"] = float(self.microphone_silence)
        return replace(config, **changes) if changes else config


def parse_remote(version: int, settings: Mapping[str, Any], current: CabinConfig) -> RemoteSettings:
    """Check a configuration from afar.

    Raises:
        ConfigError: a section or key that cannot change from afar, or a value the cabin refuses; the message
            says which and why.
    """
    origin = f"configuration v{version}"
    problem = remote_settings_problem(settings)
    if problem is not None:
        raise ConfigError(f"{origin}: {problem}")
    checked = settings_from_mapping(settings, origin, require_server=False)
    camera = settings.get("camera", {})
    video_format = None
    if camera:
        old = current.video_format
        video_format = VideoFormat(
            width=checked.camera.width if "width" in camera else old.width,
            height=checked.camera.height if "height" in camera else old.height,
            fps=checked.camera.fps if "fps" in camera else old.fps,
        )
        if current.video.kind == "test" and video_format.width % 16:
            raise ConfigError(
                f"{origin}: camera.width: the test pattern needs a multiple of 16, got {video_format.width}"
            )
    allow = checked.devices.allow if "allow" in settings.get("devices", {}) else None
    languages = checked.screen.languages if "languages" in settings.get("screen", {}) else None
    thresholds = settings.get("thresholds", {})
    return RemoteSettings(
        version,
        video_format,
        allow,
        languages,
        battery_low=checked.thresholds.battery_low if "battery_low" in thresholds else None,
        microphone_silence=checked.thresholds.microphone_silence if "microphone_silence" in thresholds else None,
    )
