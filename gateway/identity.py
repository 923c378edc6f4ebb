"""The cabin's own identity: an Ed25519 key pair made on the cabin PC, whose private half never leaves it.

The gateway proves the key to signaling with a short-lived JWT it signs itself (EdDSA): role "cabin", subject the
cabin id, a unique id so that a captured proof cannot be replayed, and an expiry of a minute.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.errors import ConfigError
from signaling.protocol import PROOF_AUDIENCE

PROOF_LIFETIME: Final = timedelta(seconds=60)
SYSTEM_KEY_DIR: Final = Path("/etc/cabine")
LOCAL_KEY_FILE: Final = Path(".cabine/cabin.key")


def default_key_file() -> Path:
    """Where the cabin's key is by default, for `cabine cabin enroll` and `cabine gateway` alike.

    /etc/cabine/cabin.key when it exists or this user may create it there, else .cabine/cabin.key (a development
    machine, or a cabin enrolled without administrator rights).
    """
    system = SYSTEM_KEY_DIR / "cabin.key"
    if system.exists():
        return system
    parent = SYSTEM_KEY_DIR if SYSTEM_KEY_DIR.is_dir() else SYSTEM_KEY_DIR.parent
    return system if os.access(parent, os.W_OK | os.X_OK) else LOCAL_KEY_FILE


class CabinIdentity:
    """A cabin id and its private key."""

    def __init__(self, cabin_id: str, private_key: Ed25519PrivateKey) -> None:
        self.cabin_id = cabin_id
        self._key = private_key

    @classmethod
    def generate(cls, cabin_id: str) -> CabinIdentity:
        return cls(cabin_id, Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> CabinIdentity:
        """Load `path` (PKCS#8 PEM, with the cabin id in a `Cabin-Id:` header line).

        Raises:
            ConfigError: the file is missing, unreadable or not an Ed25519 key.
        """
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read the cabin key {path}: {exc.strerror}") from exc
        cabin_id = ""
        for line in text.splitlines():
            if line.startswith("Cabin-Id:"):
                cabin_id = line.split(":", 1)[1].strip()
        pem = text[text.find("-----BEGIN") :].encode()
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except ValueError as exc:
            raise ConfigError(f"{path} is not a PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey) or not cabin_id:
            raise ConfigError(f"{path} is not a Cabine cabin key (Ed25519 with a Cabin-Id header)")
        return cls(cabin_id, key)

    def private_file_bytes(self) -> bytes:
        """The key file's content (PKCS#8 PEM after a `Cabin-Id:` line): to be written readable by its owner only."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return f"Cabin-Id: {self.cabin_id}\n".encode() + pem

    def public_bytes(self) -> bytes:
        """The raw 32-byte public key that the operator's server records at enrollment."""
        return self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def proof(self, now: datetime) -> str:
        """A one-use credential for one signaling connection."""
        payload = {
            "sub": self.cabin_id,
            "role": "cabin",
            "aud": PROOF_AUDIENCE,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + PROOF_LIFETIME).timestamp()),
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(payload, self._key, algorithm="EdDSA", headers={"kid": self.cabin_id})
