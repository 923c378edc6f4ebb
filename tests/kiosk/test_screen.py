"""What the cabin screen shows, state by state (pure), and the loopback-only SDP filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.kiosk.loopback import loopback_only
from gateway.kiosk.screen import (
    CallPhase,
    Ending,
    HelpPhase,
    ScreenState,
    choose_focus,
    compute_screen,
    help_phase,
    open_now,
    valid_language,
)
from signaling.protocol import AppointmentInfo, AppointmentKind, RoomState
from tests.kiosk.conftest import temperature

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def appointment(apt_id: str, starts_in: timedelta, minutes: int = 30) -> AppointmentInfo:
    start = NOW + starts_in
    return AppointmentInfo(
        id=apt_id,
        kind=AppointmentKind.MEDICAL,
        cabin_id="c1",
        professional_name="Dr A",
        starts_at=start.isoformat(),
        ends_at=(start + timedelta(minutes=minutes)).isoformat(),
    )


OPEN = appointment("apt_open", timedelta(minutes=5))  # opens 15 minutes early: open now
LATER = appointment("apt_later", timedelta(hours=2))
PAST = appointment("apt_past", -timedelta(hours=2))


def room(*, professional: bool = False, admitted: bool = False) -> RoomState:
    return RoomState("apt_open", True, True, professional, admitted)


def screen(**overrides: Any) -> Any:
    args: dict[str, Any] = {
        "now": NOW,
        "lang": "fr",
        "signaling_up": True,
        "schedule": (OPEN, LATER),
        "focus": "apt_open",
        "room": room(),
        "call": None,
        "had_call": False,
        "ending": None,
        "prompt_kind": None,
        "reading": None,
        "help": HelpPhase.NONE,
    }
    args.update(overrides)
    return compute_screen(**args)


def test_idle_offers_to_start_the_open_appointment() -> None:
    s = screen(focus=None, room=None)
    assert (s.state, s.detail, s.can_start, s.appointment) == (ScreenState.IDLE, "open", True, OPEN)


def test_idle_names_the_next_appointment_when_none_is_open() -> None:
    s = screen(focus=None, room=None, schedule=(PAST, LATER))
    assert (s.state, s.detail, s.can_start, s.appointment) == (ScreenState.IDLE, "later", False, LATER)


def test_idle_with_no_appointment_at_all() -> None:
    s = screen(focus=None, room=None, schedule=(PAST,))
    assert (s.state, s.detail, s.appointment) == (ScreenState.IDLE, "none", None)


@pytest.mark.parametrize(
    ("room_state", "call", "detail"),
    [
        (room(), None, "professional-away"),
        (room(professional=True), None, "professional-here"),
        (room(professional=True, admitted=True), CallPhase.CONNECTING, "connecting"),
    ],
)
def test_waiting_says_where_the_professional_is(room_state: RoomState, call: CallPhase | None, detail: str) -> None:
    s = screen(room=room_state, call=call)
    assert (s.state, s.detail, s.can_start) == (ScreenState.WAITING, detail, False)


def test_in_call_carries_the_measurement_request_and_the_reading() -> None:
    reading = temperature(37.2)
    s = screen(call=CallPhase.CONNECTED, prompt_kind="blood-pressure", reading=reading)
    assert (s.state, s.prompt_kind, s.reading) == (ScreenState.IN_CALL, "blood-pressure", reading)
    wire = s.to_json()
    assert wire["prompt"] == {"kind": "blood-pressure"}
    assert wire["reading"]["quantities"][0]["value"] == 37.2
    assert wire["appointment"]["professional_name"] == "Dr A"


def test_a_measurement_is_shown_only_in_a_call() -> None:
    s = screen(call=CallPhase.CONNECTING, prompt_kind="body-temperature", reading=temperature(37.0))
    assert s.state is ScreenState.WAITING
    assert s.to_json()["prompt"] is None and s.to_json()["reading"] is None


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"signaling_up": False}, "signaling"),
        ({"signaling_up": False, "had_call": True}, "signaling"),
        ({"had_call": True}, "professional"),
        ({"had_call": True, "call": CallPhase.CONNECTING}, "connecting"),
        ({"call": CallPhase.FAILED}, "professional"),
    ],
)
def test_reconnecting_says_what_was_lost(overrides: dict[str, Any], detail: str) -> None:
    s = screen(**overrides)
    assert (s.state, s.detail) == (ScreenState.RECONNECTING, detail)


def test_ended_wins_over_everything_and_keeps_the_help_state() -> None:
    s = screen(ending=Ending(OPEN, "cancelled"), call=CallPhase.CONNECTED, help=HelpPhase.COMING)
    assert (s.state, s.detail, s.appointment, s.help) == (ScreenState.ENDED, "cancelled", OPEN, HelpPhase.COMING)
    assert s.to_json()["help"] == "coming"


def test_a_focus_missing_from_the_schedule_is_idle() -> None:
    assert screen(focus="apt_gone").state is ScreenState.IDLE


def test_focus_keeps_the_started_appointment_else_the_earliest_checked_in() -> None:
    schedule = (OPEN, LATER)
    assert choose_focus("apt_later", {"apt_open", "apt_later"}, schedule) == "apt_later"
    assert choose_focus(None, {"apt_later", "apt_open"}, schedule) == "apt_open"
    assert choose_focus("apt_open", set(), schedule) is None
    assert choose_focus(None, {"apt_unknown"}, schedule) is None


def test_open_now_starts_fifteen_minutes_early_and_stops_at_the_end() -> None:
    soon = appointment("apt_soon", timedelta(minutes=15))
    too_soon = appointment("apt_too_soon", timedelta(minutes=16))
    ending = appointment("apt_ending", -timedelta(minutes=30), minutes=30)
    assert [a.id for a in open_now((too_soon, soon, ending, OPEN), NOW)] == ["apt_open", "apt_soon"]


def test_help_phase_and_language_codes() -> None:
    assert help_phase(False, False) is HelpPhase.NONE
    assert help_phase(True, False) is HelpPhase.SENDING
    assert help_phase(True, True) is HelpPhase.COMING
    assert valid_language("en") and valid_language("fr") and valid_language("ber")
    for bad in ("EN", "fr-FR", "", "x", None, 3, "<script>"):
        assert not valid_language(bad)


SDP = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "a=candidate:1 1 udp 2122194687 127.0.0.1 39390 typ host generation 0\r\n"
    "a=candidate:2 1 udp 2122063615 192.0.2.2 46299 typ host generation 0\r\n"
    "a=candidate:3 1 udp 2122267903 ::1 50065 typ host generation 0\r\n"
    "a=candidate:4 1 udp 2122134271 4f1c-abcd.local 34505 typ host generation 0\r\n"
    "a=candidate:5 1 udp 1686052607 203.0.113.9 34505 typ srflx raddr 0.0.0.0 rport 0\r\n"
    "a=candidate:broken\r\n"
    "a=mid:0\r\n"
)


def test_loopback_only_keeps_loopback_candidates_and_everything_else() -> None:
    filtered, count = loopback_only(SDP)
    assert count == 2
    assert "127.0.0.1 39390" in filtered and "::1 50065" in filtered
    for gone in ("192.0.2.2", ".local", "203.0.113.9", "candidate:broken"):
        assert gone not in filtered
    assert filtered.startswith("v=0\r\n") and filtered.endswith("a=mid:0\r\n")


def test_loopback_only_without_loopback_candidates() -> None:
    assert loopback_only(SDP.replace("127.0.0.1 39390", "10.0.0.1 39390").replace("::1 ", "fe80::1 "))[1] == 0
