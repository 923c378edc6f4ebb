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

from signaling.errors import SignalingError
from signaling.models import Cabin
from signaling.protocol import PROOF_AUDIENCE
from signaling.tokens import LEEWAY_SECONDS, TokenError, TokenRefusal

MAX_PROOF_LIFETIME: Final = 300


# A gateway reconnecting with backoff makes a few connections a minute; many more live proofs is a misbehaving cabin.
MAX_LIVE_PROOFS_PER_CABIN: Final = 64


class TooManyProofs(SignalingError, RuntimeError):
    """A cabin presented more live proofs than any gateway needs: refused until the older ones expire."""


@dataclass(slots=True)
class ReplayCache:
    """Proof ids seen, per cabin, each kept until its expiry (Unix seconds). Bounded: MAX_LIVE_PROOFS_PER_CABIN
    per cabin, and only enrolled cabins (whose signature was checked) get an entry."""

    max_per_cabin: int = MAX_LIVE_PROOFS_PER_CABIN
    _seen: dict[str, dict[str, float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._seen.values())

    def check_and_add(self, cabin_id: str, token_id: str, expires: float, now: float) -> bool:
        """False if `token_id` was already seen for this cabin and has not expired.

        Raises:
            TooManyProofs: the cabin already has `max_per_cabin` live proofs.
        """
        seen = {k: v for k, v in self._seen.get(cabin_id, {}).items() if v > now}
        self._seen[cabin_id] = seen
        if token_id in seen:
            return False
        if len(seen) >= self.max_per_cabin:
            raise TooManyProofs(f"too many connections from cabin {cabin_id!r}: try again in a few minutes")
        seen[token_id] = expires
        return True

    def prune(self, now: float) -> None:
        """Forget the proofs that expired (periodically, so that a cabin that stopped connecting costs nothing)."""
        live = {cabin_id: {k: v for k, v in ids.items() if v > now} for cabin_id, ids in self._seen.items()}
        self._seen = {cabin_id: ids for cabin_id, ids in live.items() if ids}


def claimed_cabin(token: str | None) -> str | None:
    """The cabin a proof says it is from, unverified (to look it up before verifying); None if unreadable."""
    if not token:
        return None
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    subject = unverified.get("sub") if isinstance(unverified, dict) else None
    return subject if isinstance(subject, str) else None


def verify_cabin_proof(
    token: str | None, *, lookup: Callable[[str], Cabin | None], now: datetime, replays: ReplayCache
) -> Cabin:
    """Return the enrolled, enabled cabin whose key signed `token`.

    Raises:
        TokenError: missing, unreadable, wrong role, unknown or disabled cabin, bad signature, expired, replayed.
        TooManyProofs: the cabin has too many live proofs (a flood of connections).
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
            # Times are checked below against the server's own clock, with a clear reason (PyJWT would use the
            # machine's and call a proof from a cabin whose clock is ahead "damaged").
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": ["sub", "exp", "iat", "jti"],
            },
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
    if not replays.check_and_add(cabin.id, token_id, expires + LEEWAY_SECONDS, stamp):
        raise TokenError(TokenRefusal.REPLAYED)
    return cabin
