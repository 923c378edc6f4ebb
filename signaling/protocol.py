"""Wire messages between signaling and its clients (the professional's page and the cabin's gateway).

Pure: no I/O. Every message is a JSON object with a "type". `parse` turns text into a typed message or raises
ProtocolError with a message fit to send back; `dump` turns a message into text. Shared with the gateway.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from signaling.errors import SignalingError

VERSION: Final = 1
MAX_MESSAGE_BYTES: Final = 64 * 1024
MAX_SDP_BYTES: Final = 32 * 1024
# The languages the cabin screen speaks (the cabin's configuration picks among them; an operator too, from afar).
SCREEN_LANGUAGES: Final = ("fr", "en")
# The audience of the proof a cabin signs for each connection (gateway signs it, signaling checks it).
PROOF_AUDIENCE: Final = "cabine-signaling"


class CloseCode(enum.IntEnum):
    """WebSocket close codes (4000-4999 are the application's own)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    # The signaling node changed (a cluster's room node): connect again, the call goes on.
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    PROTOCOL_ERROR = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    CONFLICT = 4409
    TOO_LARGE = 4413
    RATE_LIMITED = 4429
    AUTH_TIMEOUT = 4408


class ProtocolError(SignalingError, ValueError):
    """A message that cannot be accepted; `code` is the close code that goes with it."""

    def __init__(self, message: str, code: CloseCode = CloseCode.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Role(enum.StrEnum):
    PROFESSIONAL = "professional"
    CABIN = "cabin"


class AppointmentKind(enum.StrEnum):
    MEDICAL = "medical"
    BANK = "bank"
    ENERGY = "energy"
    PUBLIC_SERVICE = "public-service"


# --- messages ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """First message of every connection: the credential."""

    token: str
    type: str = field(default="hello", init=False)


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


class IcePolicy(enum.StrEnum):
    """RTCConfiguration.iceTransportPolicy: every candidate, or relayed ones only (through TURN)."""

    ALL = "all"
    RELAY = "relay"


@dataclass(frozen=True, slots=True)
class IceUrl:
    """A STUN or TURN server URL (RFC 7064, RFC 7065): `stun:host[:port]`, `turn[s]:host[:port][?transport=udp|tcp]`."""

    scheme: str  # stun, stuns, turn, turns
    host: str
    port: int
    transport: str  # udp or tcp (stuns and turns run over TLS on TCP)

    @property
    def secure(self) -> bool:
        return self.scheme in ("stuns", "turns")

    @classmethod
    def parse(cls, url: str) -> IceUrl:
        """Raises: ProtocolError: not a STUN/TURN URL, with the reason."""
        scheme, sep, rest = url.partition(":")
        if not sep or scheme not in ("stun", "stuns", "turn", "turns"):
            raise ProtocolError(f"ICE server URL {url!r} must start with stun:, stuns:, turn: or turns:")
        rest, _, query = rest.partition("?")
        transport = "tcp" if scheme in ("stuns", "turns") else "udp"
        if query:
            key, _, value = query.partition("=")
            if scheme.startswith("stun") or key != "transport" or value not in ("udp", "tcp"):
                raise ProtocolError(f"ICE server URL {url!r}: only turn URLs take ?transport=udp or ?transport=tcp")
            transport = value
        if rest.startswith("["):
            host, bracket, after = rest[1:].partition("]")
            if not bracket or (after and not after.startswith(":")):
                raise ProtocolError(f"ICE server URL {url!r}: unclosed IPv6 address")
            port_text = after[1:]
        else:
            host, _, port_text = rest.partition(":")
        if not host or "/" in host or "@" in host or any(c.isspace() for c in host):
            raise ProtocolError(f"ICE server URL {url!r} has no valid host")
        default = 5349 if scheme in ("stuns", "turns") else 3478
        if port_text:
            if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
                raise ProtocolError(f"ICE server URL {url!r}: port must be a number from 1 to 65535")
            port = int(port_text)
        else:
            port = default
        return cls(scheme=scheme, host=host, port=port, transport=transport)


@dataclass(frozen=True, slots=True)
class AppointmentInfo:
    id: str
    kind: AppointmentKind
    cabin_id: str
    professional_name: str
    starts_at: str
    ends_at: str


@dataclass(frozen=True, slots=True)
class Welcome:
    """Sent by signaling once the credential is accepted."""

    role: Role
    ice_servers: tuple[IceServer, ...]
    appointment: AppointmentInfo | None = None
    cabin_id: str | None = None
    # The server's clock (ISO 8601, UTC, milliseconds) when it sent this: a cabin measures its clock offset with it.
    server_time: str | None = None
    # RELAY: this end must use TURN only (the operator's choice for networks that must not be exposed).
    ice_policy: IcePolicy = IcePolicy.ALL
    type: str = field(default="welcome", init=False)


@dataclass(frozen=True, slots=True)
class PeerJoined:
    """The other end of `appointment_id` is connected."""

    appointment_id: str
    role: Role
    kind: AppointmentKind
    ice_servers: tuple[IceServer, ...] = ()
    ice_policy: IcePolicy = IcePolicy.ALL
    type: str = field(default="peer-joined", init=False)


@dataclass(frozen=True, slots=True)
class PeerLeft:
    appointment_id: str
    role: Role
    type: str = field(default="peer-left", init=False)


@dataclass(frozen=True, slots=True)
class Admit:
    """The professional lets the citizen in: the call may start."""

    appointment_id: str
    type: str = field(default="admit", init=False)


@dataclass(frozen=True, slots=True)
class Presence:
    """The cabin says whether the citizen has checked in for this appointment."""

    appointment_id: str
    present: bool
    type: str = field(default="presence", init=False)


@dataclass(frozen=True, slots=True)
class RoomState:
    """The waiting room as each end should show it."""

    appointment_id: str
    cabin_online: bool
    citizen_present: bool
    professional_present: bool
    admitted: bool
    type: str = field(default="room", init=False)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The cabin's open and upcoming appointments (for its screen: kind and time, no health data)."""

    appointments: tuple[AppointmentInfo, ...]
    type: str = field(default="schedule", init=False)


@dataclass(frozen=True, slots=True)
class Offer:
    appointment_id: str
    sdp: str
    type: str = field(default="offer", init=False)


@dataclass(frozen=True, slots=True)
class Answer:
    appointment_id: str
    sdp: str
    type: str = field(default="answer", init=False)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A trickled ICE candidate; an empty `candidate` means end of candidates."""

    appointment_id: str
    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None
    type: str = field(default="candidate", init=False)


@dataclass(frozen=True, slots=True)
class Bye:
    appointment_id: str
    reason: str = ""
    type: str = field(default="bye", init=False)


@dataclass(frozen=True, slots=True)
class Restart:
    """The professional's page has no working connection for this call: the cabin should offer again."""

    appointment_id: str
    type: str = field(default="restart", init=False)


@dataclass(frozen=True, slots=True)
class Ping:
    """Is this connection alive? Signaling answers with a Pong carrying the same id, at once."""

    id: int
    type: str = field(default="ping", init=False)


@dataclass(frozen=True, slots=True)
class Pong:
    id: int
    type: str = field(default="pong", init=False)


class Problem(enum.StrEnum):
    """Why one end cannot get the call's media through (told to the other end, shown in plain words)."""

    TURN_REFUSED = "turn-refused"  # the relay server refused our credentials (wrong secret, or expired)
    TURN_UNREACHABLE = "turn-unreachable"  # no answer from any relay server
    NO_PATH = "no-path"  # no candidate pair works: a firewall, or the network is down


@dataclass(frozen=True, slots=True)
class CallProblem:
    """One end of a call tells the other why the media do not get through (relayed within the room)."""

    appointment_id: str
    problem: Problem
    detail: str = ""
    type: str = field(default="call-problem", init=False)


@dataclass(frozen=True, slots=True)
class Error:
    """Sent by signaling before closing, or for a recoverable refusal."""

    code: int
    message: str
    type: str = field(default="error", init=False)


@dataclass(frozen=True, slots=True)
class HelpRequest:
    """The citizen pressed "call for help" on the cabin screen (during an appointment, or not)."""

    appointment_id: str | None = None
    type: str = field(default="help", init=False)


@dataclass(frozen=True, slots=True)
class HelpStatus:
    """Signaling's answer to a help request: the operator's alert is open (help is coming), or resolved."""

    alert_id: str
    open: bool
    type: str = field(default="help-status", init=False)


class CheckStatus(enum.StrEnum):
    """The outcome of one self-test check."""

    OK = "ok"
    WARNING = "warning"  # works, but something is off (a low battery, a clock a little off)
    FAILED = "failed"
    SKIPPED = "skipped"  # not configured here, or not measurable now (the camera is in a call)


@dataclass(frozen=True, slots=True)
class SelftestCheck:
    """One line of a cabin's self-test: never health data, only whether a part works."""

    name: str  # e.g. "camera", "microphone", "bluetooth-adapter", "device:A4:C1:38:00:00:01", "signaling"
    status: CheckStatus
    detail: str = ""
    # A call needs this part: a failure makes the whole self-test fail.
    required: bool = True


@dataclass(frozen=True, slots=True)
class SelftestRequest:
    """Signaling asks the cabin to run its self-test now (the operator pressed "test", or an appointment is near)."""

    request_id: str
    type: str = field(default="selftest-request", init=False)


@dataclass(frozen=True, slots=True)
class SelftestReport:
    """A cabin's self-test result, at start-up (request_id None) or in answer to a SelftestRequest."""

    request_id: str | None
    ok: bool
    checks: tuple[SelftestCheck, ...]
    finished_at: str
    type: str = field(default="selftest-report", init=False)


class IncidentKind(enum.StrEnum):
    """Something on the cabin PC that the operator must know about, raised and cleared by the cabin."""

    CAMERA_UNAVAILABLE = "camera-unavailable"
    MICROPHONE_UNAVAILABLE = "microphone-unavailable"
    DEVICE_MISSING = "device-missing"
    BLUETOOTH_UNAVAILABLE = "bluetooth-unavailable"
    TURN_REFUSED = "turn-refused"


@dataclass(frozen=True, slots=True)
class Incident:
    """The cabin reports an incident open (True) or over (False); `subject` tells one device from another."""

    kind: IncidentKind
    open: bool
    subject: str = ""
    detail: str = ""
    type: str = field(default="incident", init=False)


@dataclass(frozen=True, slots=True)
class CabinCheck:
    """Signaling tells the professional which of the cabin's parts its latest self-test found failing (empty: all
    work again), by check name ("camera", "microphone", "bluetooth-adapter", "device:thermometer"...): the page says
    it in one plain sentence."""

    appointment_id: str
    failed: tuple[str, ...]
    type: str = field(default="cabin-check", init=False)


# What an operator may change in a cabin's configuration from afar: sections and keys of the cabin's file. A wrong
# signaling address, key or camera device could cut a cabin off for good: those stay in the file, on site.
REMOTE_SETTINGS: Final = {
    "camera": ("width", "height", "fps"),
    "devices": ("allow",),
    "screen": ("languages",),
    "thresholds": ("battery_low", "microphone_silence"),
}


def remote_settings_problem(settings: Mapping[str, object]) -> str | None:
    """Why these settings cannot come from afar (a section or key outside REMOTE_SETTINGS), or None."""
    for section, values in settings.items():
        allowed = REMOTE_SETTINGS.get(section)
        if allowed is None:
            return f"[{section}]: cannot be changed from afar (only {', '.join(REMOTE_SETTINGS)})"
        if not isinstance(values, Mapping):
            return f"[{section}]: must be a table of keys"
        for key in values:
            if key not in allowed:
                return f"{section}.{key}: cannot be changed from afar (only {', '.join(allowed)})"
    return None


class ConfigState(enum.StrEnum):
    """What a cabin did with a configuration sent from afar."""

    APPLIED = "applied"
    PENDING = "pending"  # valid, applied when the call in progress ends
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Configure:
    """Signaling sends a cabin the configuration its operator set (at each connection and at each change):
    sections and keys as in the cabin's configuration file, a subset the operator may change from afar."""

    version: int
    settings: dict[str, dict[str, Any]]
    type: str = field(default="configure", init=False)


@dataclass(frozen=True, slots=True)
class ConfigStatus:
    """The cabin's answer to a Configure: applied, pending until the call ends, or refused with the reason."""

    version: int
    state: ConfigState
    reason: str = ""
    type: str = field(default="config-status", init=False)


MAX_CHECKS: Final = 64
MAX_HEARTBEAT_DEVICES: Final = 32


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One allowlisted medical device as a heartbeat tells it: never a reading, only when the last one came."""

    address: str
    name: str = ""
    seen: bool = False
    connected: bool = False
    battery: int | None = None  # percent
    last_reading_at: str | None = None  # ISO 8601, the cabin's clock


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a cabin tells signaling every few seconds and at every change: whether its parts work, never who is in
    it nor any health data. Figures a cabin cannot measure are None."""

    software: str
    uptime_s: float
    config_version: str
    sent_at: str  # the cabin's clock (ISO 8601, UTC, milliseconds): signaling compares it with its own
    camera_present: bool
    microphone_present: bool
    camera_fps: float | None = None  # while a call captures
    microphone_level_db: float | None = None  # dBFS, while a call captures
    devices: tuple[DeviceStatus, ...] = ()
    rtt_ms: float | None = None  # to signaling
    loss: float | None = None  # share of recent pings to signaling left unanswered, 0..1
    cpu: float | None = None  # the PC's load, share of all its cores, 0..1
    memory: float | None = None  # share of the PC's memory in use, 0..1
    disk: float | None = None  # share of the system disk in use, 0..1
    temperature_c: float | None = None
    in_session: bool = False
    type: str = field(default="heartbeat", init=False)


Message = (
    Hello
    | Welcome
    | PeerJoined
    | PeerLeft
    | Offer
    | Answer
    | Candidate
    | Bye
    | CallProblem
    | Restart
    | Ping
    | Pong
    | Error
    | Admit
    | Presence
    | RoomState
    | Schedule
    | HelpRequest
    | HelpStatus
    | SelftestRequest
    | SelftestReport
    | Incident
    | Heartbeat
    | Configure
    | ConfigStatus
    | CabinCheck
)

# Messages relayed from one end of a room to the other.
RELAYED: Final = frozenset({"offer", "answer", "candidate", "bye", "call-problem", "restart"})


def dump(message: Message) -> str:
    """Serialise a message to JSON text."""
    data = asdict(message)
    data["v"] = VERSION
    return json.dumps(data, separators=(",", ":"))


def _str(data: dict[str, Any], key: str, *, max_len: int = 256, allow_empty: bool = False) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"'{key}' must be a string")
    if not value and not allow_empty:
        raise ProtocolError(f"'{key}' must not be empty")
    if len(value) > max_len:
        raise ProtocolError(f"'{key}' is too long ({len(value)} > {max_len})")
    return value


def _sdp(data: dict[str, Any], kind: str) -> str:
    sdp = _str(data, "sdp", max_len=MAX_SDP_BYTES)
    # A session description starts with its version line and names at least one media section.
    if not sdp.startswith("v=0") or "\nm=" not in sdp:
        raise ProtocolError(f"'{kind}' carries no valid SDP (must start with 'v=0' and have a media section)")
    return sdp


def _ice_servers(raw: Any) -> tuple[IceServer, ...]:
    if not isinstance(raw, list):
        raise ProtocolError("'ice_servers' must be a list")
    servers = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("urls"), list):
            raise ProtocolError("each ICE server needs a 'urls' list")
        servers.append(
            IceServer(
                urls=tuple(str(u) for u in item["urls"]),
                username=item.get("username"),
                credential=item.get("credential"),
            )
        )
    return tuple(servers)


def parse(text: str | bytes) -> Message:
    """Parse one wire message.

    Raises:
        ProtocolError: the text is too large, not JSON, not an object, of unknown type or missing fields.
    """
    if len(text) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message too large ({len(text)} bytes > {MAX_MESSAGE_BYTES})", CloseCode.TOO_LARGE)
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("message is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolError("message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("message has no 'type'")
    try:
        return _parse_typed(kind, data)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ProtocolError):
            raise
        raise ProtocolError(f"malformed '{kind}' message: {exc}") from exc


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise ProtocolError(f"'{key}' must be true or false")
    return value


def _appointment_info(raw: Any) -> AppointmentInfo:
    if not isinstance(raw, dict):
        raise ProtocolError("an appointment must be an object")
    return AppointmentInfo(
        id=_str(raw, "id"),
        kind=AppointmentKind(raw["kind"]),
        cabin_id=_str(raw, "cabin_id"),
        professional_name=_str(raw, "professional_name", allow_empty=True),
        starts_at=_str(raw, "starts_at"),
        ends_at=_str(raw, "ends_at"),
    )


def _parse_typed(kind: str, data: dict[str, Any]) -> Message:
    if kind == "admit":
        return Admit(appointment_id=_str(data, "appointment_id"))
    if kind == "presence":
        return Presence(appointment_id=_str(data, "appointment_id"), present=_bool(data, "present"))
    if kind == "room":
        return RoomState(
            appointment_id=_str(data, "appointment_id"),
            cabin_online=_bool(data, "cabin_online"),
            citizen_present=_bool(data, "citizen_present"),
            professional_present=_bool(data, "professional_present"),
            admitted=_bool(data, "admitted"),
        )
    if kind == "schedule":
        raw = data.get("appointments")
        if not isinstance(raw, list):
            raise ProtocolError("'appointments' must be a list")
        return Schedule(appointments=tuple(_appointment_info(item) for item in raw))
    if kind == "help":
        raw_id = data.get("appointment_id")
        return HelpRequest(appointment_id=None if raw_id is None else _str(data, "appointment_id"))
    if kind == "help-status":
        return HelpStatus(alert_id=_str(data, "alert_id", max_len=64), open=_bool(data, "open"))
    if kind == "hello":
        return Hello(token=_str(data, "token", max_len=4096))
    if kind == "offer":
        return Offer(appointment_id=_str(data, "appointment_id"), sdp=_sdp(data, kind))
    if kind == "answer":
        return Answer(appointment_id=_str(data, "appointment_id"), sdp=_sdp(data, kind))
    if kind == "candidate":
        mid = data.get("sdp_mid")
        index = data.get("sdp_mline_index")
        if mid is not None and not isinstance(mid, str):
            raise ProtocolError("'sdp_mid' must be a string or null")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
            raise ProtocolError("'sdp_mline_index' must be a non-negative integer or null")
        candidate = _str(data, "candidate", max_len=1024, allow_empty=True)
        if candidate and not candidate.startswith("candidate:"):
            raise ProtocolError("'candidate' must start with 'candidate:'")
        return Candidate(
            appointment_id=_str(data, "appointment_id"),
            candidate=candidate,
            sdp_mid=mid,
            sdp_mline_index=index,
        )
    if kind == "bye":
        return Bye(
            appointment_id=_str(data, "appointment_id"),
            reason=_str(data, "reason", allow_empty=True) if "reason" in data else "",
        )
    if kind == "welcome":
        raw_appt = data.get("appointment")
        appt = None if raw_appt is None else _appointment_info(raw_appt)
        return Welcome(
            role=Role(data["role"]),
            ice_servers=_ice_servers(data.get("ice_servers", [])),
            appointment=appt,
            cabin_id=data.get("cabin_id"),
            server_time=_str(data, "server_time", max_len=64) if data.get("server_time") is not None else None,
            ice_policy=IcePolicy(data.get("ice_policy", "all")),
        )
    if kind == "peer-joined":
        return PeerJoined(
            appointment_id=_str(data, "appointment_id"),
            role=Role(data["role"]),
            kind=AppointmentKind(data["kind"]),
            ice_servers=_ice_servers(data.get("ice_servers", [])),
            ice_policy=IcePolicy(data.get("ice_policy", "all")),
        )
    if kind == "restart":
        return Restart(appointment_id=_str(data, "appointment_id"))
    if kind in ("ping", "pong"):
        ident = data.get("id")
        if not isinstance(ident, int) or isinstance(ident, bool) or not 0 <= ident < 2**53:
            raise ProtocolError("'id' must be a non-negative integer")
        return Ping(id=ident) if kind == "ping" else Pong(id=ident)
    if kind == "call-problem":
        return CallProblem(
            appointment_id=_str(data, "appointment_id"),
            problem=Problem(data["problem"]),
            detail=_str(data, "detail", max_len=512, allow_empty=True) if "detail" in data else "",
        )
    if kind == "peer-left":
        return PeerLeft(appointment_id=_str(data, "appointment_id"), role=Role(data["role"]))
    if kind == "error":
        code = data.get("code")
        if not isinstance(code, int):
            raise ProtocolError("'code' must be an integer")
        return Error(code=code, message=_str(data, "message", max_len=1024, allow_empty=True))
    if kind == "selftest-request":
        return SelftestRequest(request_id=_str(data, "request_id", max_len=64))
    if kind == "selftest-report":
        return _selftest_report(data)
    if kind == "incident":
        return Incident(
            kind=IncidentKind(data["kind"]),
            open=_bool(data, "open"),
            subject=_str(data, "subject", max_len=128, allow_empty=True) if "subject" in data else "",
            detail=_str(data, "detail", max_len=512, allow_empty=True) if "detail" in data else "",
        )
    if kind == "heartbeat":
        return _heartbeat(data)
    if kind == "configure":
        settings = data.get("settings")
        if not isinstance(settings, dict) or not all(isinstance(v, dict) for v in settings.values()):
            raise ProtocolError("'settings' must be an object of sections, each an object of keys")
        return Configure(version=_version(data), settings=settings)
    if kind == "cabin-check":
        raw = data.get("failed")
        if not isinstance(raw, list) or len(raw) > MAX_CHECKS or not all(isinstance(n, str) for n in raw):
            raise ProtocolError("'failed' must be a list of check names")
        return CabinCheck(appointment_id=_str(data, "appointment_id"), failed=tuple(n[:128] for n in raw))
    if kind == "config-status":
        return ConfigStatus(
            version=_version(data),
            state=ConfigState(data["state"]),
            reason=_str(data, "reason", max_len=512, allow_empty=True) if "reason" in data else "",
        )
    raise ProtocolError(f"unknown message type '{kind[:32]}'")


def _number(data: dict[str, Any], key: str, low: float, high: float, *, optional: bool = True) -> float | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise ProtocolError(f"'{key}' must be a number from {low:g} to {high:g}" + (" or null" if optional else ""))
    return float(value)


def _version(data: dict[str, Any]) -> int:
    value = data.get("version")
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2**31:
        raise ProtocolError("'version' must be a positive integer")
    return value


def _optional_str(data: dict[str, Any], key: str, max_len: int = 64) -> str | None:
    return None if data.get(key) is None else _str(data, key, max_len=max_len)


def _heartbeat(data: dict[str, Any]) -> Heartbeat:
    raw = data.get("devices", [])
    if not isinstance(raw, list):
        raise ProtocolError("'devices' must be a list")
    if len(raw) > MAX_HEARTBEAT_DEVICES:
        raise ProtocolError(f"too many devices ({len(raw)} > {MAX_HEARTBEAT_DEVICES})")
    devices = []
    for item in raw:
        if not isinstance(item, dict):
            raise ProtocolError("each device must be an object")
        battery = _number(item, "battery", 0, 100)
        devices.append(
            DeviceStatus(
                address=_str(item, "address", max_len=64),
                name=_str(item, "name", max_len=64, allow_empty=True) if "name" in item else "",
                seen=_bool(item, "seen"),
                connected=_bool(item, "connected"),
                battery=None if battery is None else round(battery),
                last_reading_at=_optional_str(item, "last_reading_at"),
            )
        )
    uptime = _number(data, "uptime_s", 0, 1e10, optional=False)
    assert uptime is not None
    return Heartbeat(
        software=_str(data, "software", max_len=64),
        uptime_s=uptime,
        config_version=_str(data, "config_version", max_len=64, allow_empty=True),
        sent_at=_str(data, "sent_at", max_len=64),
        camera_present=_bool(data, "camera_present"),
        microphone_present=_bool(data, "microphone_present"),
        camera_fps=_number(data, "camera_fps", 0, 1000),
        microphone_level_db=_number(data, "microphone_level_db", -1000, 10),
        devices=tuple(devices),
        rtt_ms=_number(data, "rtt_ms", 0, 1e6),
        loss=_number(data, "loss", 0, 1),
        cpu=_number(data, "cpu", 0, 1),
        memory=_number(data, "memory", 0, 1),
        disk=_number(data, "disk", 0, 1),
        temperature_c=_number(data, "temperature_c", -100, 200),
        in_session=_bool(data, "in_session"),
    )


def _selftest_report(data: dict[str, Any]) -> SelftestReport:
    raw = data.get("checks")
    if not isinstance(raw, list):
        raise ProtocolError("'checks' must be a list")
    if len(raw) > MAX_CHECKS:
        raise ProtocolError(f"too many checks ({len(raw)} > {MAX_CHECKS})")
    checks = []
    for item in raw:
        if not isinstance(item, dict):
            raise ProtocolError("each check must be an object")
        checks.append(
            SelftestCheck(
                name=_str(item, "name", max_len=128),
                status=CheckStatus(item["status"]),
                detail=_str(item, "detail", max_len=512, allow_empty=True) if "detail" in item else "",
                required=_bool(item, "required") if "required" in item else True,
            )
        )
    raw_id = data.get("request_id")
    return SelftestReport(
        request_id=None if raw_id is None else _str(data, "request_id", max_len=64),
        ok=_bool(data, "ok"),
        checks=tuple(checks),
        finished_at=_str(data, "finished_at", max_len=64),
    )
