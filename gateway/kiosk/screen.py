"""What the cabin screen shows, computed from the gateway's state. Pure: no I/O, no asyncio.

States: idle (what this cabin is, how to start), waiting (for the professional), in-call, reconnecting (the call or
the cabin's link was lost and is coming back), ended (nothing about the citizen is kept). The page turns a state
and its `detail` into words, pictograms and voice; this module decides which.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from gateway.devices.readings import Reading
from signaling.protocol import AppointmentInfo, RoomState

DEFAULT_LANGUAGE: Final = "fr"
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
# As gateway.cabin.EARLY_CHECKIN (not imported: this module stays free of aiortc and asyncio).
EARLY_START: Final = timedelta(minutes=15)


class ScreenState(enum.StrEnum):
    IDLE = "idle"
    WAITING = "waiting"
    IN_CALL = "in-call"
    RECONNECTING = "reconnecting"
    ENDED = "ended"


class CallPhase(enum.StrEnum):
    """Where the gateway's call with the professional stands."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"


class HelpPhase(enum.StrEnum):
    NONE = "none"
    SENDING = "sending"  # asked, signaling has not accepted it yet
    COMING = "coming"  # an operator is alerted


def valid_language(code: object) -> bool:
    """A language code the screen may be switched to (the page falls back to French for one it lacks)."""
    return isinstance(code, str) and bool(_LANGUAGE.match(code))


@dataclass(frozen=True, slots=True)
class Ending:
    """The ended screen: which appointment, and why ("citizen", "professional", "cancelled", "gone")."""

    appointment: AppointmentInfo | None
    reason: str


@dataclass(frozen=True, slots=True)
class Paper:
    """The cabin's printer and scanner as the citizen is told of them (the demo's are test ones: said so)."""

    can_scan: bool = False
    test_printer: bool = False
    test_scanner: bool = False
    # Where the test printer's pages go ("" : a real printer).
    tray: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "can_scan": self.can_scan,
            "test_printer": self.test_printer,
            "test_scanner": self.test_scanner,
            "tray": self.tray,
        }


@dataclass(frozen=True, slots=True)
class Screen:
    state: ScreenState
    lang: str
    detail: str = ""
    appointment: AppointmentInfo | None = None
    can_start: bool = False
    prompt_kind: str | None = None
    reading: Reading | None = None
    help: HelpPhase = HelpPhase.NONE
    # The languages this cabin offers, the default first.
    languages: tuple[str, ...] = (DEFAULT_LANGUAGE,)
    # The professional shares their screen: the page shows it large, their face small.
    sharing: bool = False
    # The documents the professional sent in this call, oldest first: id, name, kind, pages, print state and reason.
    documents: tuple[dict[str, Any], ...] = ()
    # Whether the cabin has a printer (the page offers "Imprimer" only then).
    can_print: bool = False
    # The document the professional asks the citizen for: id, label, state, reason, source, shot (the image's
    # number while the citizen sees it), received.
    request: dict[str, Any] | None = None
    paper: Paper = Paper()

    def to_json(self) -> dict[str, Any]:
        """The message pushed to the page (loopback only; the reading is the citizen's own, shown to them)."""
        a = self.appointment
        return {
            "type": "screen",
            "state": self.state.value,
            "detail": self.detail,
            "lang": self.lang,
            "appointment": None
            if a is None
            else {
                "id": a.id,
                "kind": a.kind.value,
                "professional_name": a.professional_name,
                "starts_at": a.starts_at,
                "ends_at": a.ends_at,
            },
            "can_start": self.can_start,
            "prompt": None if self.prompt_kind is None else {"kind": self.prompt_kind},
            "reading": None if self.reading is None else self.reading.to_wire(),
            "help": self.help.value,
            "languages": list(self.languages),
            "sharing": self.sharing,
            "documents": list(self.documents),
            "can_print": self.can_print,
            "request": self.request,
            "paper": self.paper.to_json(),
        }


def _starts(info: AppointmentInfo) -> datetime:
    return datetime.fromisoformat(info.starts_at)


def open_now(schedule: Sequence[AppointmentInfo], now: datetime) -> list[AppointmentInfo]:
    """Appointments the citizen can start now (from 15 minutes before to the end), earliest first."""
    found = [a for a in schedule if _starts(a) - EARLY_START <= now < datetime.fromisoformat(a.ends_at)]
    return sorted(found, key=_starts)


def choose_focus(focus: str | None, checked_in: Collection[str], schedule: Sequence[AppointmentInfo]) -> str | None:
    """The appointment the screen is about: the one the citizen started if still checked in, else the earliest."""
    if focus is not None and focus in checked_in:
        return focus
    starts = {a.id: _starts(a) for a in schedule}
    known = [a for a in checked_in if a in starts]
    return min(known, key=lambda a: starts[a]) if known else None


def compute_screen(
    *,
    now: datetime,
    lang: str,
    signaling_up: bool,
    schedule: Sequence[AppointmentInfo],
    focus: str | None,
    room: RoomState | None,
    call: CallPhase | None,
    had_call: bool,
    ending: Ending | None,
    prompt_kind: str | None,
    reading: Reading | None,
    help: HelpPhase,
) -> Screen:
    """The screen for this moment; `focus` is the checked-in appointment (None: nobody has started)."""
    if ending is not None:
        return Screen(ScreenState.ENDED, lang, ending.reason, ending.appointment, help=help)
    info = next((a for a in schedule if a.id == focus), None)
    if focus is None or info is None:
        available = open_now(schedule, now)
        if available:
            return Screen(ScreenState.IDLE, lang, "open", available[0], can_start=True, help=help)
        upcoming = sorted((a for a in schedule if _starts(a) > now), key=_starts)
        if upcoming:
            return Screen(ScreenState.IDLE, lang, "later", upcoming[0], help=help)
        return Screen(ScreenState.IDLE, lang, "none", None, help=help)
    if call is CallPhase.CONNECTED:
        return Screen(ScreenState.IN_CALL, lang, "", info, prompt_kind=prompt_kind, reading=reading, help=help)
    if not signaling_up:
        return Screen(ScreenState.RECONNECTING, lang, "signaling", info, help=help)
    if had_call or call is CallPhase.FAILED:
        # Admission lasts for the appointment: the call comes back by itself when the professional does.
        detail = "connecting" if call is CallPhase.CONNECTING else "professional"
        return Screen(ScreenState.RECONNECTING, lang, detail, info, help=help)
    if call is CallPhase.CONNECTING:
        detail = "connecting"
    elif room is not None and room.professional_present:
        detail = "professional-here"
    else:
        detail = "professional-away"
    return Screen(ScreenState.WAITING, lang, detail, info, help=help)


def help_phase(requested: bool, accepted: bool) -> HelpPhase:
    if not requested:
        return HelpPhase.NONE
    return HelpPhase.COMING if accepted else HelpPhase.SENDING
