"""What a cabin's gateway is configured with: frozen, validated values."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.ice import validate_addresses
from gateway.identity import CabinIdentity
from gateway.media.sources import SourceSpec, VideoFormat
from gateway.session import VideoCodec


@dataclass(frozen=True, slots=True)
class CabinConfig:
    cabin_id: str
    # Base URL of signaling, e.g. wss://signaling.example.org:8443 (ws:// only with the development flag).
    signaling_url: str
    # The cabin's own key (made by `cabine cabin enroll`); it signs a fresh proof for each connection.
    identity: CabinIdentity = field(repr=False)
    ca_file: Path | None = None
    video: SourceSpec = SourceSpec("test")
    audio: SourceSpec = SourceSpec("test")
    video_format: VideoFormat = VideoFormat()
    # None: every address of the machine (plus loopback); a tuple: exactly these.
    ice_addresses: tuple[str, ...] | None = None
    # Bluetooth addresses of the cabin's own medical devices; others are ignored.
    device_allowlist: tuple[str, ...] = ()
    stamp_video: bool = False
    # None: offer every video codec aiortc has (VP8 first); else only this one.
    video_codec: VideoCodec | None = None
    # Without a kiosk screen (demos, benchmarks), the citizen is taken as present for open appointments.
    auto_checkin: bool = False
    reconnect_max_delay: float = 10.0

    def __post_init__(self) -> None:
        if not self.cabin_id:
            raise ConfigError("cabin_id must not be empty")
        if self.identity.cabin_id != self.cabin_id:
            raise ConfigError(f"the key is for cabin {self.identity.cabin_id!r}, not {self.cabin_id!r}")
        parts = urlsplit(self.signaling_url)
        if parts.scheme not in ("wss", "ws") or not parts.hostname:
            raise ConfigError(f"signaling_url must be wss://host[:port], got {self.signaling_url!r}")
        if self.ice_addresses is not None:
            validate_addresses(self.ice_addresses)

    def ws_url(self) -> str:
        return self.signaling_url.rstrip("/") + "/ws/cabin"
