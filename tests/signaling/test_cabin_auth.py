from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.identity import CabinIdentity
from signaling.cabin_auth import ReplayCache, verify_cabin_proof
from signaling.models import Cabin
from signaling.tls import write_private
from signaling.tokens import TokenError, TokenRefusal

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture
def identity() -> CabinIdentity:
    return CabinIdentity.generate("cabin-7")


def lookup_for(identity: CabinIdentity, **changes: object) -> dict[str, Cabin]:
    cabin = replace(Cabin(id="cabin-7", public_key=identity.public_bytes()), **changes)  # type: ignore[arg-type]
    return {"cabin-7": cabin}


def test_a_fresh_proof_names_the_cabin(identity: CabinIdentity) -> None:
    cabins = lookup_for(identity)
    cabin = verify_cabin_proof(identity.proof(NOW), lookup=cabins.get, now=NOW, replays=ReplayCache())
    assert cabin.id == "cabin-7"


@pytest.mark.parametrize(
    ("when", "reason"),
    [(NOW + timedelta(minutes=2), TokenRefusal.EXPIRED), (NOW - timedelta(minutes=2), TokenRefusal.NOT_YET_VALID)],
)
def test_proofs_live_a_minute(identity: CabinIdentity, when: datetime, reason: TokenRefusal) -> None:
    with pytest.raises(TokenError) as info:
        verify_cabin_proof(identity.proof(NOW), lookup=lookup_for(identity).get, now=when, replays=ReplayCache())
    assert info.value.reason is reason


def test_replay_disabled_and_foreign_keys(identity: CabinIdentity) -> None:
    replays = ReplayCache()
    proof = identity.proof(NOW)
    verify_cabin_proof(proof, lookup=lookup_for(identity).get, now=NOW, replays=replays)
    with pytest.raises(TokenError, match="already used"):
        verify_cabin_proof(proof, lookup=lookup_for(identity).get, now=NOW, replays=replays)
    with pytest.raises(TokenError, match="disabled"):
        verify_cabin_proof(
            identity.proof(NOW), lookup=lookup_for(identity, disabled=True).get, now=NOW, replays=replays
        )
    impostor = CabinIdentity.generate("cabin-7")
    with pytest.raises(TokenError, match="not issued by this service"):
        verify_cabin_proof(impostor.proof(NOW), lookup=lookup_for(identity).get, now=NOW, replays=replays)
    with pytest.raises(TokenError, match="not enrolled"):
        verify_cabin_proof(
            identity.proof(NOW), lookup=lookup_for(identity, public_key=None).get, now=NOW, replays=replays
        )


def test_identity_round_trips_and_stays_private(identity: CabinIdentity, tmp_path: Path) -> None:
    path = tmp_path / "cabin.key"
    write_private(path, identity.private_file_bytes())
    assert path.stat().st_mode & 0o077 == 0
    again = CabinIdentity.load(path)
    assert again.cabin_id == "cabin-7"
    assert again.public_bytes() == identity.public_bytes()
    path.write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM private key"):
        CabinIdentity.load(path)
    with pytest.raises(ConfigError, match="cannot read the cabin key"):
        CabinIdentity.load(tmp_path / "missing.key")
