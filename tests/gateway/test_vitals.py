from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.devices.readings import DeviceIdentity, Quantity, Reading, ReadingKind, TimeSource
from gateway.vitals import (
    Ack,
    MeasurementRequest,
    PageHello,
    VitalsOutbox,
    VitalsProtocolError,
    parse_page_message,
)


def reading(value: float) -> Reading:
    return Reading(
        kind=ReadingKind.BODY_TEMPERATURE,
        quantities=(Quantity("value", value, "Cel"),),
        measured_at=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
        time_source=TimeSource.DEVICE,
        device=DeviceIdentity(address="AA:BB"),
    )


def test_readings_are_numbered_and_kept_until_acknowledged() -> None:
    outbox = VitalsOutbox()
    seqs = [outbox.add(reading(36.0 + i / 10))[0] for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert outbox.ack(3) == 3
    replay = [json.loads(t) for t in outbox.replay()]
    assert [m["seq"] for m in replay] == [4, 5]
    assert replay[0]["v"] == 1 and replay[0]["type"] == "reading"
    assert replay[0]["reading"]["value"] == 36.3
    assert replay[0]["reading"]["unit"] == "Cel"
    assert [json.loads(t)["seq"] for t in outbox.replay(after=4)] == [5]
    outbox.clear()
    assert outbox.pending == 0
    assert outbox.add(reading(37.0))[0] == 6  # numbering never restarts within an appointment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"v":1,"type":"ack","seq":4}', Ack(4)),
        ('{"v":1,"type":"hello","last_seq":0}', PageHello(0)),
        ('{"v":1,"type":"request","kind":"blood-pressure"}', MeasurementRequest("blood-pressure")),
    ],
)
def test_page_messages(text: str, expected: object) -> None:
    assert parse_page_message(text) == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("nope", "not JSON"),
        ('{"v":2,"type":"ack","seq":1}', "unsupported vitals protocol version 2"),
        ('{"v":1,"type":"ack","seq":-1}', "'seq' must be a non-negative integer"),
        ('{"v":1,"type":"ack","seq":true}', "'seq' must be a non-negative integer"),
        ('{"v":1,"type":"shout"}', "unknown vitals message type 'shout'"),
        ("[]", "must be a JSON object"),
    ],
)
def test_bad_page_messages(text: str, error: str) -> None:
    with pytest.raises(VitalsProtocolError, match=error):
        parse_page_message(text)
