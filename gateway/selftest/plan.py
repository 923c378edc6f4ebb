"""What a self-test needs: the cabin's parts to check, how long to wait for each, and the running cabin's views."""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime

from gateway.errors import ConfigError
from gateway.media.spec import SourceSpec, VideoFormat
from gateway.selftest.camera import LiveVideo
from gateway.selftest.devices import LOW_BATTERY, DeviceStates, OpenDevices
from gateway.selftest.microphone import SILENCE_DBFS, LiveAudio
from gateway.selftest.signaling_link import ConnectSignaling, LiveSignaling, utc_now
from gateway.selftest.sound import SoundPath
from gateway.sound.settings import SoundSettings


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds each probe may take; probes run concurrently, so the slowest sets the self-test's length."""

    camera_first_frame: float = 5.0
    camera_measure: float = 1.0
    microphone_first_frame: float = 5.0
    microphone_measure: float = 0.5
    adapter: float = 3.0
    device: float = 10.0
    # Once a device is connected, how long to wait for its battery level (some devices have none).
    battery: float = 3.0
    signaling: float = 5.0
    ice: float = 3.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"self-test timeout {item.name} must be > 0 seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class SelftestPlan:
    """Exactly what the probes need.

    Standalone (`cabine gateway selftest`): `connect_signaling` opens a connection with the cabin's key, and the
    devices are checked through `open_devices` (default: a DeviceManager on `adapter` for `devices`). Inside the
    running gateway: `live_signaling`, `live_devices`, and `live_camera`/`live_microphone` while a call uses them,
    so that nothing is opened twice.
    """

    camera: SourceSpec
    microphone: SourceSpec
    camera_format: VideoFormat = VideoFormat()
    # Allowlist entries as configured: addresses ("A4:C1:38:12:34:56") or service names ("blood-pressure").
    devices: tuple[str, ...] = ()
    adapter: str | None = None  # None: the system's default adapter, as bleak picks it
    # The allowlisted devices are the cabin's own medical devices: a medical call needs them.
    devices_required: bool = True
    connect_signaling: ConnectSignaling | None = None
    live_signaling: LiveSignaling | None = None
    live_devices: DeviceStates | None = None
    open_devices: OpenDevices | None = None
    live_camera: LiveVideo | None = None
    live_microphone: LiveAudio | None = None
    microphone_threshold_dbfs: float = SILENCE_DBFS
    # The loudspeaker-to-microphone path for the sound check (None: the simulated room with a `room` microphone,
    # ALSA's with an ALSA microphone and a `loudspeaker`, else the check is skipped), and what the gateway does to
    # the microphone.
    sound_path: SoundPath | None = None
    loudspeaker: str | None = None
    sound_settings: SoundSettings = SoundSettings()
    low_battery_percent: int = LOW_BATTERY
    # TLS trust for turns:/stuns: servers; None: the system's trust store.
    ice_tls: ssl.SSLContext | None = field(default=None, compare=False)
    timeouts: Timeouts = Timeouts()
    # The cabin's wall clock (the clock check compares it with the server's).
    wall_clock: Callable[[], datetime] = utc_now

    def __post_init__(self) -> None:
        if self.connect_signaling is None and self.live_signaling is None:
            raise ConfigError("a self-test needs connect_signaling (standalone) or live_signaling (running cabin)")
        if self.connect_signaling is not None and self.live_signaling is not None:
            raise ConfigError("give connect_signaling or live_signaling, not both: a second connection with the "
                              "cabin's key would replace the running one")  # fmt: skip
        if self.live_devices is not None and self.open_devices is not None:
            raise ConfigError("give live_devices or open_devices, not both")
