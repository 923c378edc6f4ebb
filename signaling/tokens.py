"""Signed, expiring link tokens: JWTs signed with Ed25519 (EdDSA), bound to one subject and one role.

Pure: the clock is a parameter, keys are objects; nothing here touches files or sockets.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from signaling.errors import SignalingError
from signaling.protocol import Role

ALGORITHM: Final = "EdDSA"
AUDIENCE: Final = "cabine"
# Clocks on cabin PCs drift; a few seconds either way is not an attack.
LEEWAY_SECONDS: Final = 5


class TokenRefusal(enum.StrEnum):
    """Why a token was refused. MISSING, MALFORMED and BAD_SIGNATURE are 401; the others are 403."""

    MISSING = "missing"
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad-signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    WRONG_ROLE = "wrong-role"
    REVOKED = "revoked"
    UNKNOWN_CABIN = "unknown-cabin"
    CABIN_DISABLED = "cabin-disabled"
    REPLAYED = "replayed"
    OUTSIDE_WINDOW = "outside-window"

    @property
    def status(self) -> int:
        unauthenticated = (
            TokenRefusal.MISSING,
            TokenRefusal.MALFORMED,
            TokenRefusal.BAD_SIGNATURE,
            TokenRefusal.UNKNOWN_CABIN,
        )
        return 401 if self in unauthenticated else 403


_MESSAGES: Final = {
    TokenRefusal.MISSING: "This link has no access token.",
    TokenRefusal.MALFORMED: "This link is damaged: its access token cannot be read.",
    TokenRefusal.BAD_SIGNATURE: "This link was not issued by this service.",
    TokenRefusal.EXPIRED: "This link has expired.",
    TokenRefusal.NOT_YET_VALID: "This link is not valid yet.",
    TokenRefusal.WRONG_ROLE: "This link is not for this use.",
    TokenRefusal.REVOKED: "This appointment was cancelled.",
    TokenRefusal.UNKNOWN_CABIN: "This cabin is not enrolled.",
    TokenRefusal.CABIN_DISABLED: "This cabin has been disabled by the operator.",
    TokenRefusal.REPLAYED: "This credential was already used.",
    TokenRefusal.OUTSIDE_WINDOW: "This link only works during the appointment's time window.",
}


class TokenError(SignalingError, ValueError):
    """A token was refused; `reason` says why and `status` is the HTTP status to answer with."""

    def __init__(self, reason: TokenRefusal, detail: str = "") -> None:
        super().__init__(_MESSAGES[reason] + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.status = reason.status


@dataclass(frozen=True, slots=True)
class Claims:
    """What a valid token grants: `role` access to `subject` (an appointment id, or a cabin id)."""

    subject: str
    role: Role
    not_before: datetime
    expires_at: datetime
    token_id: str


def peek_role(token: str) -> str | None:
    """The role a token claims, read WITHOUT checking its signature: only to choose the right refusal."""
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    role = payload.get("role") if isinstance(payload, dict) else None
    return role if isinstance(role, str) else None


def fingerprint(token: str) -> str:
    """A short, non-secret label for a token, safe for logs: its signature's last 8 characters."""
    return "…" + token[-8:] if len(token) > 16 else "…"


class TokenSigner:
    """Issues and verifies tokens with one Ed25519 key pair."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._public_key: Ed25519PublicKey = private_key.public_key()

    @classmethod
    def generate(cls) -> TokenSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> TokenSigner:
        """Load a signer from a PKCS#8 PEM private key.

        Raises:
            ValueError: the PEM is not an Ed25519 private key.
        """
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the signing key must be an Ed25519 private key")
        return cls(key)

    def private_pem(self) -> bytes:
        return self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def issue(self, subject: str, role: Role, *, not_before: datetime, expires_at: datetime) -> str:
        """Sign a token granting `role` on `subject` from `not_before` to `expires_at`."""
        if expires_at <= not_before:
            raise ValueError("a token must expire after it becomes valid")
        payload: dict[str, Any] = {
            "sub": subject,
            "role": role.value,
            "aud": AUDIENCE,
            "nbf": int(not_before.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": secrets.token_urlsafe(9),
        }
        return jwt.encode(payload, self._private_key, algorithm=ALGORITHM)

    def verify(self, token: str | None, *, role: Role, now: datetime) -> Claims:
        """Check signature, audience, validity window and role.

        Raises:
            TokenError: the token is missing, unreadable, forged, outside its window or for another role.
        """
        if not token:
            raise TokenError(TokenRefusal.MISSING)
        try:
            payload = jwt.decode(
                token,
                self._public_key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                # The window is checked below against the caller's clock, not the process's.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "require": ["sub", "role", "nbf", "exp", "jti"],
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise TokenError(TokenRefusal.BAD_SIGNATURE) from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenError(TokenRefusal.WRONG_ROLE, "wrong audience") from exc
        except jwt.PyJWTError as exc:
            raise TokenError(TokenRefusal.MALFORMED) from exc
        try:
            claims = Claims(
                subject=str(payload["sub"]),
                role=Role(payload["role"]),
                not_before=datetime.fromtimestamp(int(payload["nbf"]), UTC),
                expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
                token_id=str(payload["jti"]),
            )
        except (ValueError, TypeError, OverflowError) as exc:
            raise TokenError(TokenRefusal.MALFORMED) from exc
        stamp = now.timestamp()
        if stamp + LEEWAY_SECONDS < claims.not_before.timestamp():
            raise TokenError(TokenRefusal.NOT_YET_VALID)
        if stamp - LEEWAY_SECONDS >= claims.expires_at.timestamp():
            raise TokenError(TokenRefusal.EXPIRED)
        if claims.role is not role:
            raise TokenError(TokenRefusal.WRONG_ROLE)
        return claims
