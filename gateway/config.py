"""The cabin's configuration: the TOML file a technician writes (`CabinSettings`), and what the running parts take.

`load_settings` reads `/etc/cabine/cabin.toml` (or another file), applies command-line overrides
(`section.key = value`), and refuses unknown keys and bad values with the file, the key and the reason. Everything is
checked before the cabin starts, so a wrong value never leaves a cabin half started. The file's keys are documented
one by one in `deploy/cabin.toml` and the README.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from gateway.devices.gatt.uuids import HEALTH_SERVICE_KEYS
from gateway.errors import ConfigError
from gateway.identity import CabinIdentity, default_key_file
from gateway.media.spec import SourceSpec, VideoCodec, VideoFormat
from gateway.sound.settings import SoundSettings
from signaling.protocol import SCREEN_LANGUAGES

DEFAULT_CONFIG_FILE: Final = Path("/etc/cabine/cabin.toml")
CONFIG_ENV: Final = "CABINE_CONFIG"
KNOWN_LANGUAGES: Final = SCREEN_LANGUAGES
SYSTEM_RUNTIME_DIR: Final = Path("/run/cabine")


def default_runtime_dir() -> Path:
    """Where the gateway keeps run-time files: systemd's RuntimeDirectory (/run/cabine), else a user's own.

    /run, $XDG_RUNTIME_DIR and /dev/shm are tmpfs on Debian: what is written there never outlives a reboot.
    """
    systemd = os.environ.get("RUNTIME_DIRECTORY")
    if systemd:
        return Path(systemd.split(":")[0])
    if os.access(SYSTEM_RUNTIME_DIR if SYSTEM_RUNTIME_DIR.is_dir() else SYSTEM_RUNTIME_DIR.parent, os.W_OK | os.X_OK):
        return SYSTEM_RUNTIME_DIR
    user = os.environ.get("XDG_RUNTIME_DIR")
    if user:
        return Path(user) / "cabine"
    shm = Path("/dev/shm")
    return (shm if shm.is_dir() else Path(tempfile.gettempdir())) / f"cabine-{os.getuid()}"


# Standard Bluetooth health services a cabin may allow by name (GATT assigned numbers).
SERVICES: Final = HEALTH_SERVICE_KEYS
_MAC: Final = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")
_ADAPTER: Final = re.compile(r"^hci[0-9]{1,3}$")


# --- values --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceAllowlist:
    """The cabin's medical devices: by Bluetooth address, or any device offering one of the named services."""

    addresses: tuple[str, ...] = ()
    services: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Sequence[str]) -> DeviceAllowlist:
        """Raises: ConfigError: an entry is neither an address (AA:BB:CC:DD:EE:FF) nor a known service name."""
        addresses: list[str] = []
        services: list[str] = []
        for entry in entries:
            text = entry.strip()
            if _MAC.match(text.upper()):
                addresses.append(text.upper())
            elif text.lower() in SERVICES:
                services.append(text.lower())
            else:
                raise ConfigError(
                    f"{entry!r} is neither a Bluetooth address (AA:BB:CC:DD:EE:FF) nor a service "
                    f"({', '.join(SERVICES)})"
                )
        return cls(tuple(dict.fromkeys(addresses)), tuple(dict.fromkeys(services)))

    @property
    def service_uuids(self) -> tuple[int, ...]:
        return tuple(SERVICES[name] for name in self.services)

    @property
    def entries(self) -> tuple[str, ...]:
        return (*self.addresses, *self.services)

    def __bool__(self) -> bool:
        return bool(self.addresses or self.services)


@dataclass(frozen=True, slots=True)
class SignalingSettings:
    # https://host[:port] (http:// for development); the cabin connects to its /ws/cabin.
    server: str = ""
    ca_file: Path | None = None
    key_file: Path = field(default_factory=default_key_file)

    @property
    def ws_url(self) -> str:
        """The WebSocket base URL: wss:// for https://, ws:// for http://."""
        scheme, rest = self.server.split("://", 1)
        return ("wss://" if scheme == "https" else "ws://") + rest.rstrip("/")


@dataclass(frozen=True, slots=True)
class CameraSettings:
    source: SourceSpec = SourceSpec("test")
    width: int = 640
    height: int = 480
    fps: int = 30
    codec: VideoCodec = VideoCodec.VP8
    # Follow the link: lower the frame rate, then the size, when the bandwidth estimate falls; climb back after.
    adapt: bool = True
    # The test pattern carries the capture time, for glass-to-glass benchmarks (bench/network.py).
    stamp: bool = False

    @property
    def format(self) -> VideoFormat:
        return VideoFormat(self.width, self.height, self.fps)


@dataclass(frozen=True, slots=True)
class MicrophoneSettings:
    source: SourceSpec = SourceSpec("test")
    # What the gateway does to the sound before it leaves (docs/sound.md): off where a speakerphone does it.
    echo_cancellation: bool = True
    noise_suppression: bool = True
    gain_control: bool = False
    # The ALSA device the cabin screen plays on, for the self-test's sound check ("" : the check is skipped).
    loudspeaker: str = ""


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    allow: DeviceAllowlist = DeviceAllowlist()
    # A BlueZ adapter name such as hci0; None: the system's default adapter.
    adapter: str | None = None


@dataclass(frozen=True, slots=True)
class ScreenSettings:
    # The cabin screen on http://127.0.0.1:<port>/; 0: no screen.
    port: int = 8088
    # Offered on the screen; the first is the default.
    languages: tuple[str, ...] = KNOWN_LANGUAGES


@dataclass(frozen=True, slots=True)
class IceSettings:
    # Gather host candidates only on these addresses; empty: on every address of the machine.
    addresses: tuple[str, ...] = ()
    # Calls go through the TURN relay only (signaling may also ask for it): the cabin's addresses stay private.
    relay_only: bool = False


@dataclass(frozen=True, slots=True)
class CallSettings:
    # Take the citizen as present without the screen's "Commencer" (cabins without a screen).
    auto_checkin: bool = False
    # Where readings wait for the doctor's acknowledgement: a tmpfs, so that they outlive a restart of the gateway
    # and never a reboot.
    runtime_dir: Path = field(default_factory=default_runtime_dir)


@dataclass(frozen=True, slots=True)
class PaperSettings:
    # The CUPS queue documents are printed on ("" : the cabin has no printer); CUPS_SERVER picks the scheduler.
    printer: str = ""
    # The SANE device pages are scanned from, e.g. "epson2:libusb:001:004" ("" : no scanner).
    scanner: str = ""


@dataclass(frozen=True, slots=True)
class ThresholdSettings:
    # A medical device's battery under this is low (the self-test warns; the operator is alerted).
    battery_low: int = 20
    # A microphone quieter than this (dBFS) hears nothing: the self-test fails it.
    microphone_silence: int = -70


@dataclass(frozen=True, slots=True)
class CabinSettings:
    """The whole cabin configuration file, validated."""

    signaling: SignalingSettings = SignalingSettings()
    camera: CameraSettings = CameraSettings()
    microphone: MicrophoneSettings = MicrophoneSettings()
    devices: DeviceSettings = DeviceSettings()
    screen: ScreenSettings = ScreenSettings()
    ice: IceSettings = IceSettings()
    calls: CallSettings = CallSettings()
    thresholds: ThresholdSettings = ThresholdSettings()
    paper: PaperSettings = PaperSettings()

    def to_toml(self) -> str:
        """The effective configuration as a TOML file (what `cabine gateway config` prints)."""
        lines: list[str] = []
        for section in fields(self):
            lines.append(f"[{section.name}]")
            for key, (_, render) in SCHEMA[section.name].items():
                lines.append(f"{key} = {render(getattr(self, section.name), key)}")
            lines.append("")
        return "\n".join(lines)


# --- parsing one value ---------------------------------------------------------------------------------------


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, got {_shown(value)}")
    return value


def _integer(low: int, high: int, *, zero: bool = False) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"must be a whole number, got {_shown(value)}")
        if not (low <= value <= high or (zero and value == 0)):
            extra = " (or 0 for none)" if zero else ""
            raise ConfigError(f"must be from {low} to {high}{extra}, got {value}")
        return value

    return parse


def _queue_name(value: object) -> str:
    """A CUPS queue name: letters, digits, - _ . (CUPS refuses spaces, / and #)."""
    text = _string(value)
    if text and not re.fullmatch(r"[A-Za-z0-9_.-]{1,127}", text):
        raise ConfigError(f"a CUPS queue name has letters, digits, '-', '_' or '.', got {text!r} (see `lpstat -p`)")
    return text


def _scanner_name(value: object) -> str:
    """A SANE device name as `scanimage -L` prints it (backend:address)."""
    text = _string(value)
    if text and (len(text) > 200 or any(c.isspace() for c in text) or ":" not in text):
        raise ConfigError(f"a SANE device name is backend:address, got {text!r} (see `scanimage -L`)")
    return text


def _alsa_device(value: object) -> str:
    """An ALSA device name as `aplay -L` prints it (`default`, `plughw:CARD=Speakerphone,DEV=0`)."""
    text = _string(value)
    if text and (len(text) > 200 or any(c.isspace() or not c.isprintable() for c in text)):
        raise ConfigError(f"an ALSA device name has no spaces, got {text!r} (see `aplay -L`)")
    return text


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {_shown(value)}")
    return value


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"must be a list of strings, got {_shown(value)}")
    return tuple(value)


def _server(value: object) -> str:
    text = _string(value).strip()
    if not text:
        return ""  # not set: required only to run the cabin (checked with the whole file)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not a URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"must be the server's https:// URL, e.g. https://visio.example.org, got {text!r}")
    if parts.query or parts.fragment or parts.username:
        raise ConfigError(f"must have no user, query or fragment, got {text!r}")
    return text.rstrip("/")


def _path(value: object) -> Path:
    text = _string(value)
    if not text:
        raise ConfigError("must not be empty")
    return Path(text).expanduser()


def _optional_path(value: object) -> Path | None:
    return None if value == "" else _path(value)


def _source(*, audio: bool) -> Callable[[object], SourceSpec]:
    def parse(value: object) -> SourceSpec:
        return SourceSpec.parse(_string(value), audio=audio)

    return parse


def _codec(value: object) -> VideoCodec:
    text = _string(value).lower()
    try:
        return VideoCodec(text)
    except ValueError:
        raise ConfigError(f"must be one of {', '.join(c.value for c in VideoCodec)}, got {_shown(value)}") from None


def _allowlist(value: object) -> DeviceAllowlist:
    return DeviceAllowlist.parse(_strings(value))


def _adapter(value: object) -> str | None:
    text = _string(value)
    if text and not _ADAPTER.match(text):
        raise ConfigError(f"must be a BlueZ adapter name such as hci0 (or empty for the default), got {text!r}")
    return text or None


def _languages(value: object) -> tuple[str, ...]:
    codes = tuple(dict.fromkeys(code.lower() for code in _strings(value)))
    if not codes:
        raise ConfigError("must name at least one language")
    for code in codes:
        if code not in KNOWN_LANGUAGES:
            raise ConfigError(f"unknown language {code!r}: known are {', '.join(KNOWN_LANGUAGES)}")
    return codes


def _addresses(value: object) -> tuple[str, ...]:
    found = []
    for text in _strings(value):
        try:
            found.append(str(ipaddress.ip_address(text)))
        except ValueError:
            raise ConfigError(f"{text!r} is not an IP address") from None
    return tuple(found)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if value is None:
        return '""'
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _as(attribute: str | None = None, convert: Callable[[Any], object] | None = None) -> Callable[[Any, str], str]:
    def render(section: Any, key: str) -> str:
        value = getattr(section, attribute or key)
        return _toml(convert(value) if convert else value)

    return render


Parser = Callable[[object], object]
SCHEMA: Final[dict[str, dict[str, tuple[Parser, Callable[[Any, str], str]]]]] = {
    "signaling": {
        "server": (_server, _as()),
        "ca_file": (_optional_path, _as()),
        "key_file": (_path, _as()),
    },
    "camera": {
        "source": (_source(audio=False), _as()),
        "width": (_integer(16, 4096), _as()),
        "height": (_integer(16, 4096), _as()),
        "fps": (_integer(1, 60), _as()),
        "codec": (_codec, _as(convert=lambda codec: codec.value)),
        "adapt": (_boolean, _as()),
        "stamp": (_boolean, _as()),
    },
    "microphone": {
        "source": (_source(audio=True), _as()),
        "echo_cancellation": (_boolean, _as()),
        "noise_suppression": (_boolean, _as()),
        "gain_control": (_boolean, _as()),
        "loudspeaker": (_alsa_device, _as()),
    },
    "devices": {
        "allow": (_allowlist, _as(convert=lambda allow: allow.entries)),
        "adapter": (_adapter, _as()),
    },
    "screen": {
        "port": (_integer(1, 65535, zero=True), _as()),
        "languages": (_languages, _as()),
    },
    "ice": {"addresses": (_addresses, _as()), "relay_only": (_boolean, _as())},
    "calls": {"auto_checkin": (_boolean, _as()), "runtime_dir": (_path, _as())},
    "thresholds": {
        "battery_low": (_integer(1, 99), _as()),
        "microphone_silence": (_integer(-120, -10), _as()),
    },
    "paper": {"printer": (_queue_name, _as()), "scanner": (_scanner_name, _as())},
}
SECTIONS: Final = {
    "signaling": SignalingSettings,
    "camera": CameraSettings,
    "microphone": MicrophoneSettings,
    "devices": DeviceSettings,
    "screen": ScreenSettings,
    "ice": IceSettings,
    "calls": CallSettings,
    "thresholds": ThresholdSettings,
    "paper": PaperSettings,
}


# --- the file and its overrides ------------------------------------------------------------------------------


def settings_from_mapping(data: Mapping[str, Any], origin: str, *, require_server: bool = True) -> CabinSettings:
    """Validate a parsed configuration; `origin` names where each value came from in error messages.

    Raises:
        ConfigError: "<origin>: <section.key>: <reason>" for an unknown section or key, or a bad value.
    """
    sections: dict[str, Any] = {}
    for name, values in data.items():
        if name not in SCHEMA:
            raise ConfigError(f"{origin}: unknown section [{name}] (known: {', '.join(SCHEMA)})")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{origin}: [{name}] must be a table of keys")
        parsed: dict[str, object] = {}
        for key, value in values.items():
            rule = SCHEMA[name].get(key)
            if rule is None:
                raise ConfigError(f"{origin}: {name}.{key}: unknown key (known in [{name}]: {', '.join(SCHEMA[name])})")
            try:
                parsed[key] = rule[0](value)
            except ConfigError as exc:
                raise ConfigError(f"{origin}: {name}.{key}: {exc}") from None
        try:
            sections[name] = SECTIONS[name](**parsed)
        except TypeError as exc:  # a dataclass refusing a field: a bug in SCHEMA, not the user's
            raise ConfigError(f"{origin}: [{name}]: {exc}") from None
    settings = CabinSettings(**sections)
    camera = settings.camera
    if camera.width % 2 or camera.height % 2:
        size = f"{camera.width}x{camera.height}"
        raise ConfigError(f"{origin}: camera.width/height: the codecs need even sizes, got {size}")
    if camera.stamp and camera.source.kind != "test":
        raise ConfigError(f'{origin}: camera.stamp: only the test pattern is stamped (camera.source = "test")')
    if require_server and not settings.signaling.server:
        raise ConfigError(f"{origin}: signaling.server: required (the signaling server's URL, e.g. --server URL)")
    return settings


def parse_override(text: str) -> tuple[str, str, object]:
    """`section.key=value` from the command line; the value is read as TOML, or taken as a bare string.

    Raises:
        ConfigError: not of the form section.key=value.
    """
    name, sep, raw = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. --set camera.fps=15")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def read_config_file(path: Path) -> dict[str, Any]:
    """Raises: ConfigError: the file cannot be read or is not valid TOML (with the line)."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def default_config_file() -> Path | None:
    """$CABINE_CONFIG, else /etc/cabine/cabin.toml when it exists, else no file (command-line options only)."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None


def load_settings(
    path: Path | None,
    overrides: Sequence[tuple[str, str, object]] = (),
    *,
    require_server: bool = True,
) -> CabinSettings:
    """The file (if any) with the command line's overrides applied, validated as one.

    Raises:
        ConfigError: the file is unreadable, or a key or value (from the file or the command line) is wrong.
    """
    data: dict[str, Any] = {} if path is None else read_config_file(path)
    origin = str(path) if path is not None else "command line"
    from_file = {(section, key) for section, values in data.items() if isinstance(values, dict) for key in values}
    # The file alone first, so that a mistake is reported against the file, not hidden by an override.
    settings_from_mapping(data, origin, require_server=False)
    merged: dict[str, Any] = {name: dict(values) for name, values in data.items()}
    for section, key, value in overrides:
        merged.setdefault(section, {})[key] = value
        from_file.discard((section, key))
    try:
        return settings_from_mapping(merged, origin, require_server=require_server)
    except ConfigError as exc:
        # A bad value that came from the command line is named as such.
        text = str(exc)
        for section, key, _ in overrides:
            prefix = f"{origin}: {section}.{key}:"
            if text.startswith(prefix):
                raise ConfigError(f"--set {section}.{key}:{text[len(prefix) :]}") from None
        raise


def check_resources(settings: CabinSettings) -> None:
    """What can be checked on this PC before starting: the camera and microphone are there, the files readable.

    Raises:
        ConfigError: naming the key and the reason.
    """
    checks: list[tuple[str, Callable[[], None]]] = [
        ("camera.source", settings.camera.source.check_available),
        ("microphone.source", settings.microphone.source.check_available),
    ]
    for key, check in checks:
        try:
            check()
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    ca_file = settings.signaling.ca_file
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"signaling.ca_file: no such file: {ca_file}")


# --- what the running parts take -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CabinConfig:
    """The resolved configuration the cabin's parts run with (the settings plus the loaded key)."""

    cabin_id: str
    # Base URL of signaling, e.g. wss://signaling.example.org:8443 (ws:// only for development).
    signaling_url: str
    # The cabin's own key (made by `cabine cabin enroll`); it signs a fresh proof for each connection.
    identity: CabinIdentity = field(repr=False)
    ca_file: Path | None = None
    video: SourceSpec = SourceSpec("test")
    audio: SourceSpec = SourceSpec("test")
    video_format: VideoFormat = VideoFormat()
    # None: every address of the machine (plus loopback); a tuple: exactly these.
    ice_addresses: tuple[str, ...] | None = None
    # The cabin's own medical devices; others are ignored.
    devices: DeviceAllowlist = DeviceAllowlist()
    bluetooth_adapter: str | None = None
    stamp_video: bool = False
    # The video codec offered first; the others follow as fallbacks (None: aiortc's order, VP8 first).
    video_codec: VideoCodec | None = None
    # Without a cabin screen (demos, benchmarks), the citizen is taken as present for open appointments.
    auto_checkin: bool = False
    reconnect_max_delay: float = 10.0
    relay_only: bool = False
    # The video follows the link's estimated bandwidth (frame rate, then size), and Opus carries in-band FEC.
    adapt_video: bool = True
    # None: readings are kept in memory only (tests, benchmarks); the cabin's service journals them.
    runtime_dir: Path | None = None
    battery_low_percent: int = 20
    microphone_silence_dbfs: float = -70.0
    # The cabin's printer (a CUPS queue) and scanner (a SANE device); None: it has none.
    printer_queue: str | None = None
    scanner_device: str | None = None
    # Echo cancellation, noise suppression and gain control on the microphone.
    sound: SoundSettings = SoundSettings()
    # The ALSA device the cabin screen plays on (the self-test's sound check); None: not checked.
    loudspeaker: str | None = None

    def __post_init__(self) -> None:
        if not self.cabin_id:
            raise ConfigError("cabin_id must not be empty")
        if self.identity.cabin_id != self.cabin_id:
            raise ConfigError(f"the key is for cabin {self.identity.cabin_id!r}, not {self.cabin_id!r}")
        parts = urlsplit(self.signaling_url)
        if parts.scheme not in ("wss", "ws") or not parts.hostname:
            raise ConfigError(f"signaling_url must be wss://host[:port], got {self.signaling_url!r}")
        if self.ice_addresses is not None:
            _addresses(list(self.ice_addresses))

    @classmethod
    def from_settings(cls, settings: CabinSettings, identity: CabinIdentity, **extra: Any) -> CabinConfig:
        camera = settings.camera
        return cls(
            cabin_id=identity.cabin_id,
            signaling_url=settings.signaling.ws_url,
            identity=identity,
            ca_file=settings.signaling.ca_file,
            video=camera.source,
            audio=settings.microphone.source,
            video_format=camera.format,
            ice_addresses=settings.ice.addresses or None,
            devices=settings.devices.allow,
            bluetooth_adapter=settings.devices.adapter,
            video_codec=camera.codec,
            auto_checkin=settings.calls.auto_checkin,
            relay_only=settings.ice.relay_only,
            adapt_video=camera.adapt,
            stamp_video=camera.stamp,
            runtime_dir=settings.calls.runtime_dir,
            battery_low_percent=settings.thresholds.battery_low,
            microphone_silence_dbfs=float(settings.thresholds.microphone_silence),
            printer_queue=settings.paper.printer or None,
            scanner_device=settings.paper.scanner or None,
            sound=SoundSettings(
                echo_cancellation=settings.microphone.echo_cancellation,
                noise_suppression=settings.microphone.noise_suppression,
                gain_control=settings.microphone.gain_control,
            ),
            loudspeaker=settings.microphone.loudspeaker or None,
            **extra,
        )

    def ws_url(self) -> str:
        return self.signaling_url.rstrip("/") + "/ws/cabin"


def config_digest(config: CabinConfig) -> str:
    """A short digest of what the cabin runs with (never its key), for heartbeats: two cabins with the same
    digest run the same settings."""
    return "sha256:" + hashlib.sha256(repr(config).encode()).hexdigest()[:12]
