"""Command-line values checked when they are parsed: each error names the option's rule, argparse names the option.

Every option of every command is checked before anything starts, so a wrong value never leaves a booking, a key or
a file behind.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from signaling.protocol import IceUrl, ProtocolError


def port(text: str) -> int:
    """A TCP port, 1 to 65535."""
    value = _int(text, "a port number")
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is from 1 to 65535, got {value}")
    return value


def port_or_zero(text: str) -> int:
    """A TCP port, or 0 (meaning "none": for the cabin screen)."""
    value = _int(text, "a port number")
    if value != 0 and not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is from 1 to 65535 (or 0 for none), got {value}")
    return value


def int_range(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _int(text, what)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be from {low} to {high}, got {value}")
        return value

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


def positive_float(what: str, *, allow_zero: bool = False, maximum: float = math.inf) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} (a number), got {text!r}") from None
        low_ok = value >= 0 if allow_zero else value > 0
        if not math.isfinite(value) or not low_ok or value > maximum:
            bound = ">= 0" if allow_zero else "> 0"
            upper = f" and <= {maximum:g}" if math.isfinite(maximum) else ""
            raise argparse.ArgumentTypeError(f"{what} must be {bound}{upper}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


def video_size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, each even and from 16 to 4096 (the codecs need even sizes)."""
    width, sep, height = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        size = int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    for value in size:
        if not 16 <= value <= 4096 or value % 2:
            raise argparse.ArgumentTypeError(f"width and height must be even, from 16 to 4096, got {text!r}")
    return size


def public_url(text: str) -> str:
    """An http(s) URL with a host, no query or fragment: what links are built on."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected a URL such as https://visio.example.org, got {text!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise argparse.ArgumentTypeError(f"the URL must have no user, query or fragment, got {text!r}")
    return text.rstrip("/")


def ice_url(text: str) -> str:
    """A STUN or TURN URL: stun:host[:port], turn:host[:port][?transport=tcp], turns:host:443."""
    try:
        IceUrl.parse(text)
    except ProtocolError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IP address such as 192.168.1.10, got {text!r}") from None


def ip_network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an address or network such as 10.0.0.0/8, got {text!r}") from None


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what} (a whole number), got {text!r}") from None
