"""The professional's link: the server's URL and a token for one appointment, valid for its window."""

from __future__ import annotations

from signaling.models import Appointment
from signaling.protocol import Role
from signaling.tokens import TokenSigner


def professional_token(signer: TokenSigner, appointment: Appointment) -> str:
    return signer.issue(
        appointment.id, Role.PROFESSIONAL, not_before=appointment.opens_at, expires_at=appointment.ends_at
    )


def professional_link(signer: TokenSigner, public_url: str, appointment: Appointment) -> str:
    return f"{public_url.rstrip('/')}/join/{professional_token(signer, appointment)}"
