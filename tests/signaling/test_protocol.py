from __future__ import annotations

import json

import pytest

from signaling.protocol import (
    MAX_MESSAGE_BYTES,
    AppointmentInfo,
    AppointmentKind,
    Candidate,
    CheckStatus,
    CloseCode,
    Hello,
    IceServer,
    Incident,
    IncidentKind,
    Offer,
    ProtocolError,
    Role,
    SelftestCheck,
    SelftestReport,
    SelftestRequest,
    Welcome,
    dump,
    parse,
)

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@pytest.mark.parametrize(
    "message",
    [
        Hello(token="abc"),
        Offer(appointment_id="apt_1", sdp=SDP),
        Candidate(
            appointment_id="apt_1",
            candidate="candidate:1 1 udp 1 127.0.0.1 5000 typ host",
            sdp_mid="0",
            sdp_mline_index=0,
        ),
        Candidate(appointment_id="apt_1", candidate="", sdp_mid=None, sdp_mline_index=None),
        Welcome(
            role=Role.PROFESSIONAL,
            ice_servers=(IceServer(urls=("turn:127.0.0.1:3478",), username="u", credential="p"),),
            appointment=AppointmentInfo(
                "apt_1",
                AppointmentKind.BANK,
                "c1",
                "Mme X",
                "2026-01-01T09:00:00+00:00",
                "2026-01-01T09:30:00+00:00",
            ),
        ),
    ],
)
def test_round_trip(message: object) -> None:
    assert parse(dump(message)) == message  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "message",
    [
        Welcome(role=Role.CABIN, ice_servers=(), cabin_id="c1", server_time="2026-12-01T09:00:00.123+00:00"),
        SelftestRequest(request_id="st_1"),
        SelftestReport(
            request_id=None,
            ok=False,
            checks=(
                SelftestCheck("camera", CheckStatus.OK, "640x480, 30 fps, not black"),
                SelftestCheck("device:00:00:5E:00:53:10", CheckStatus.FAILED, "not seen", required=False),
            ),
            finished_at="2026-12-01T09:00:01+00:00",
        ),
        Incident(kind=IncidentKind.CAMERA_UNAVAILABLE, open=True, detail="cannot open /dev/video0"),
        Incident(kind=IncidentKind.DEVICE_MISSING, open=False, subject="00:00:5E:00:53:10"),
    ],
)
def test_cabin_health_messages_round_trip(message: object) -> None:
    assert parse(dump(message)) == message  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "error", "code"),
    [
        ("{", "not valid JSON", CloseCode.PROTOCOL_ERROR),
        ("[1, 2]", "must be a JSON object", CloseCode.PROTOCOL_ERROR),
        ('{"token": "x"}', "no 'type'", CloseCode.PROTOCOL_ERROR),
        ('{"type": "launch-missiles"}', "unknown message type 'launch-missiles'", CloseCode.PROTOCOL_ERROR),
        (
            '{"type": "offer", "appointment_id": "a", "sdp": "hello"}',
            "no valid SDP",
            CloseCode.PROTOCOL_ERROR,
        ),
        (
            '{"type": "offer", "appointment_id": 3, "sdp": "v=0"}',
            "'appointment_id' must be a string",
            CloseCode.PROTOCOL_ERROR,
        ),
        (
            '{"type": "candidate", "appointment_id": "a", "candidate": "rm -rf", "sdp_mid": "0", "sdp_mline_index": 0}',
            "must start with 'candidate:'",
            CloseCode.PROTOCOL_ERROR,
        ),
        (
            '{"type": "candidate", "appointment_id": "a", "candidate": "", "sdp_mid": 1, "sdp_mline_index": 0}',
            "'sdp_mid' must be a string or null",
            CloseCode.PROTOCOL_ERROR,
        ),
        (
            json.dumps({"type": "hello", "token": "x" * MAX_MESSAGE_BYTES}),
            "message too large",
            CloseCode.TOO_LARGE,
        ),
    ],
)
def test_bad_messages_are_refused_clearly(text: str, error: str, code: CloseCode) -> None:
    with pytest.raises(ProtocolError, match=error) as info:
        parse(text)
    assert info.value.code is code
