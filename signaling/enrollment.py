"""One-time enrollment codes: typed by an installer on the cabin PC, so short groups of unambiguous characters.

A code is 20 characters of Crockford's base32 (100 bits) in groups of four, e.g. ``7KQM-2XHD-9TBC-W4NF-JR3P``. What
is typed back is read forgivingly: any case, spaces or dashes anywhere, O for 0 and I or L for 1. Only the hash of the
canonical form is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH: Final = 20
GROUP: Final = 4

_LOOKALIKES: Final = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code() -> str:
    """A fresh code in its display form (groups of four joined by dashes; never starts with a dash)."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i : i + GROUP] for i in range(0, LENGTH, GROUP))


def canonical(typed: str) -> str:
    """The code as typed, without separators, upper case, look-alike letters read as digits."""
    return "".join(typed.split()).replace("-", "").upper().translate(_LOOKALIKES)


def code_hash(typed: str) -> bytes:
    """What the store keeps: the SHA-256 of the canonical form."""
    return hashlib.sha256(canonical(typed).encode()).digest()
