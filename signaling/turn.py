"""Short-lived TURN credentials, as coturn's `use-auth-secret` checks them (the "TURN REST API" convention). Pure.

The server and coturn share a secret; each participant gets a username "<unix expiry>:<name>" and, as password,
base64(HMAC-SHA1(secret, username)). coturn recomputes the password and refuses it once the expiry has passed, so a
leaked credential is worth little and nothing per user is stored anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from signaling.errors import SignalingError
from signaling.protocol import IceServer, IceUrl, ProtocolError

MIN_SECRET_CHARS = 16


class TurnConfigError(SignalingError, ValueError):
    """A TURN setting that cannot work (no URL, a URL that is not turn:/turns:, a short secret)."""


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """TURN URLs (tried in order by aiortc, which uses the first; browsers try them all) and the shared secret."""

    urls: tuple[str, ...]
    secret: str
    # How long a credential lives at least; a participant's always lasts until their appointment is over.
    ttl: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not self.urls:
            raise TurnConfigError("a TURN secret needs at least one turn: or turns: URL")
        for url in self.urls:
            try:
                parsed = IceUrl.parse(url)
            except ProtocolError as exc:
                raise TurnConfigError(str(exc)) from None
            if not parsed.scheme.startswith("turn"):
                raise TurnConfigError(f"{url!r} is not a TURN URL (turn: or turns:)")
        if len(self.secret) < MIN_SECRET_CHARS:
            raise TurnConfigError(f"the TURN secret must be at least {MIN_SECRET_CHARS} characters")
        if self.ttl < timedelta(minutes=1):
            raise TurnConfigError("TURN credentials must live at least one minute")


def credentials(secret: str, name: str, expires: datetime) -> tuple[str, str]:
    """(username, password) valid until `expires` for a coturn started with `--static-auth-secret=secret`."""
    username = f"{int(expires.timestamp())}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(
    stun: tuple[IceServer, ...],
    turn: TurnSettings | None,
    *,
    name: str,
    now: datetime,
    until: datetime | None = None,
) -> tuple[IceServer, ...]:
    """What one participant is handed: the plain servers, then TURN with credentials valid past `until`."""
    if turn is None:
        return stun
    expires = max(now + turn.ttl, until or now)
    username, password = credentials(turn.secret, name, expires)
    return (IceServer(urls=turn.urls, username=username, credential=password), *stun)
