"""The part of a cabin's configuration its operator may change from afar, checked before it is stored. Pure.

Sections and keys are those of the cabin's configuration file (gateway/config.py), restricted to what can change
without someone on site: the video size and frame rate, the medical devices allowed, the screen's languages. The
signaling address, the key, the camera's device are not here: a wrong one would cut the cabin off for good. The
cabin validates again with its own rules (and its hardware) and may refuse, with its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from signaling.errors import SignalingError
from signaling.protocol import SCREEN_LANGUAGES, remote_settings_problem

MAX_ALLOW: Final = 32
_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_SERVICE = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


class SettingsError(SignalingError, ValueError):
    """A configuration the operator sent cannot be used: the message says which key and why."""


@dataclass(frozen=True, slots=True)
class SettingsVersion:
    """One stored version of a cabin's remote configuration."""

    cabin_id: str
    version: int
    settings: dict[str, dict[str, Any]]
    created_at: datetime
    created_by: str


def _integer(value: object, key: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SettingsError(f"{key}: must be a whole number from {low} to {high}, got {value!r}")
    return value


def _strings(value: object, key: str, pattern: re.Pattern[str], what: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_ALLOW:
        raise SettingsError(f"{key}: must be a list of at most {MAX_ALLOW} {what}")
    items = []
    for item in value:
        if not isinstance(item, str) or not pattern.match(item.strip()):
            raise SettingsError(f"{key}: {item!r} is not {what[:-1] if what.endswith('s') else what}")
        items.append(item.strip())
    return items


def _camera(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("width", "height"):
            number = _integer(value, f"camera.{key}", 16, 4096)
            if number % 2:
                raise SettingsError(f"camera.{key}: the codecs need an even size, got {number}")
            out[key] = number
        else:
            out[key] = _integer(value, "camera.fps", 1, 60)
    return out


def _devices(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for value in values.values():  # "allow", the only key (REMOTE_SETTINGS)
        entries = []
        for item in value if isinstance(value, list) else [value]:
            text = item.strip() if isinstance(item, str) else item
            if isinstance(text, str) and _ADDRESS.match(text):
                entries.append(text.upper())
            else:
                entries.extend(_strings([item], "devices.allow", _SERVICE, "device addresses or service names"))
        if len(entries) > MAX_ALLOW:
            raise SettingsError(f"devices.allow: at most {MAX_ALLOW} entries")
        out["allow"] = entries
    return out


def _screen(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for value in values.values():  # "languages", the only key (REMOTE_SETTINGS)
        languages = _strings(value, "screen.languages", _LANGUAGE, "language codes")
        if not languages:
            raise SettingsError("screen.languages: at least one language")
        unknown = [code for code in languages if code not in SCREEN_LANGUAGES]
        if unknown:
            known = ", ".join(SCREEN_LANGUAGES)
            raise SettingsError(
                f"screen.languages: the cabin screen does not speak {', '.join(unknown)} (it speaks {known})"
            )
        out["languages"] = languages
    return out


def _thresholds(values: dict[str, Any]) -> dict[str, Any]:
    limits = {"battery_low": (1, 99), "microphone_silence": (-120, -10)}
    return {key: _integer(value, f"thresholds.{key}", *limits[key]) for key, value in values.items()}


SECTIONS: Final = {"camera": _camera, "devices": _devices, "screen": _screen, "thresholds": _thresholds}


def check_settings(raw: object) -> dict[str, dict[str, Any]]:
    """The settings, normalized (addresses upper case, strings stripped).

    Raises:
        SettingsError: not an object of known sections and keys, or a value out of range.
    """
    if not isinstance(raw, dict):
        raise SettingsError("settings must be an object of sections (camera, devices, screen, thresholds)")
    problem = remote_settings_problem(raw)
    if problem is not None:
        raise SettingsError(problem)
    out: dict[str, dict[str, Any]] = {}
    for section, values in raw.items():
        checked = SECTIONS[section](values)
        if checked:
            out[section] = checked
    camera = out.get("camera", {})
    if ("width" in camera) != ("height" in camera):
        raise SettingsError("camera.width and camera.height go together")
    return out
