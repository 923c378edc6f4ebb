"""Checking a cabin's proof of key: a short JWT signed by the cabin's own Ed25519 key. Pure.

The cabin's public key was recorded at enrollment; the proof lives a minute and carries a unique id, which is
remembered until it expires so that a captured proof cannot be replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from signaling.models import Cabin
from signaling.protocol import PROOF_AUDIENCE
from signaling.tokens import LEEWAY_SECONDS, TokenError, TokenRefusal

MAX_PROOF_LIFETIME: Final = 300


@dataclass(slots=True)
class ReplayCache:
    """Proof ids seen, each kept until its expiry (Unix seconds)."""

    _seen: dict[str, float] = field(default_factory=dict)

    def check_and_add(self, token_id: str, expires: float, now: float) -> bool:
        """False if `token_id` was already seen and has not expired."""
        if len(self._seen) > 1024:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
        if token_id in self._seen and self._seen[token_id] > now:
            return False
        self._seen[token_id] = expires
        return True


def verify_cabin_proof(
    token: str | None, *, lookup: Callable[[str], Cabin | None], now: datetime, replays: ReplayCache
) -> Cabin:
    """Return the enrolled, enabled cabin whose key signed `token`.

    Raises:
        TokenError: missing, unreadable, wrong role, unknown or disabled cabin, bad signature, expired, replayed.
    """
    if not token:
        raise TokenError(TokenRefusal.MISSING)
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenError(TokenRefusal.MALFORMED) from exc
    if not isinstance(unverified, dict) or unverified.get("role") != "cabin":
        raise TokenError(TokenRefusal.WRONG_ROLE)
    cabin_id = unverified.get("sub")
    cabin = lookup(cabin_id) if isinstance(cabin_id, str) else None
    if cabin is None or cabin.public_key is None:
        raise TokenError(TokenRefusal.UNKNOWN_CABIN)
    try:
        claims = jwt.decode(
            token,
            Ed25519PublicKey.from_public_bytes(cabin.public_key),
            algorithms=["EdDSA"],
            audience=PROOF_AUDIENCE,
            options={"verify_exp": False, "verify_nbf": False, "require": ["sub", "exp", "iat", "jti"]},
        )
    except jwt.InvalidSignatureError as exc:
        raise TokenError(TokenRefusal.BAD_SIGNATURE) from exc
    except jwt.PyJWTError as exc:
        raise TokenError(TokenRefusal.MALFORMED) from exc
    if cabin.disabled:
        raise TokenError(TokenRefusal.CABIN_DISABLED)
    stamp = now.timestamp()
    try:
        issued, expires, token_id = float(claims["iat"]), float(claims["exp"]), str(claims["jti"])
    except (TypeError, ValueError) as exc:
        raise TokenError(TokenRefusal.MALFORMED) from exc
    if expires - issued > MAX_PROOF_LIFETIME or issued > stamp + LEEWAY_SECONDS:
        raise TokenError(TokenRefusal.NOT_YET_VALID, "proof issued in the future or too long-lived")
    if stamp - LEEWAY_SECONDS >= expires:
        raise TokenError(TokenRefusal.EXPIRED)
    if not replays.check_and_add(token_id, expires + LEEWAY_SECONDS, stamp):
        raise TokenError(TokenRefusal.REPLAYED)
    return cabin
