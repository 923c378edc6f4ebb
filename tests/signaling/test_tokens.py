from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from signaling.protocol import Role
from signaling.tokens import TokenError, TokenRefusal, TokenSigner, fingerprint

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner.generate()


def issue(signer: TokenSigner, role: Role = Role.PROFESSIONAL) -> str:
    return signer.issue("apt_1", role, not_before=NOW - timedelta(minutes=15), expires_at=NOW + timedelta(minutes=30))


def test_valid_token_grants_its_subject_and_role(signer: TokenSigner) -> None:
    claims = signer.verify(issue(signer), role=Role.PROFESSIONAL, now=NOW)
    assert claims.subject == "apt_1"
    assert claims.role is Role.PROFESSIONAL
    assert claims.expires_at == NOW + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("mutate", "reason", "status"),
    [
        (lambda s, t: "", TokenRefusal.MISSING, 401),
        (lambda s, t: "not-a-token", TokenRefusal.MALFORMED, 401),
        (
            lambda s, t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),
            TokenRefusal.BAD_SIGNATURE,
            401,
        ),
        (lambda s, t: issue(TokenSigner.generate()), TokenRefusal.BAD_SIGNATURE, 401),
        (lambda s, t: issue(s, Role.CABIN), TokenRefusal.WRONG_ROLE, 403),
    ],
    ids=["missing", "garbage", "forged-signature", "other-key", "wrong-role"],
)
def test_refusals(signer: TokenSigner, mutate: object, reason: TokenRefusal, status: int) -> None:
    token = mutate(signer, issue(signer))  # type: ignore[operator]
    with pytest.raises(TokenError) as info:
        signer.verify(token, role=Role.PROFESSIONAL, now=NOW)
    assert info.value.reason is reason
    assert info.value.status == status


def test_expired_and_not_yet_valid(signer: TokenSigner) -> None:
    token = issue(signer)
    with pytest.raises(TokenError, match="expired") as late:
        signer.verify(token, role=Role.PROFESSIONAL, now=NOW + timedelta(minutes=31))
    assert late.value.status == 403
    with pytest.raises(TokenError, match="not valid yet") as early:
        signer.verify(token, role=Role.PROFESSIONAL, now=NOW - timedelta(minutes=16))
    assert early.value.reason is TokenRefusal.NOT_YET_VALID


def test_signer_round_trips_through_pem(signer: TokenSigner) -> None:
    again = TokenSigner.from_pem(signer.private_pem())
    assert again.verify(issue(signer), role=Role.PROFESSIONAL, now=NOW).subject == "apt_1"


def test_fingerprint_never_shows_the_token(signer: TokenSigner) -> None:
    token = issue(signer)
    label = fingerprint(token)
    assert len(label) <= 9
    assert token not in label and token[:20] not in label
