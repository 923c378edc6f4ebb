"""HTTP pages: the professional's join link, clear refusal pages, the landing page, the operator's page."""

from __future__ import annotations

import html
import logging

from aiohttp import web

from signaling.keys import CONFIG, STORE
from signaling.protocol import Role
from signaling.tokens import TokenError, TokenRefusal, fingerprint, peek_role

log = logging.getLogger("cabine.signaling")

SECURITY_HEADERS = {
    # The link is the credential: it must not leak through Referer or caches.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "connect-src 'self' wss: ws:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    ),
    "Permissions-Policy": "camera=(self), microphone=(self)",
}

_FRENCH = {
    TokenRefusal.MISSING: "Ce lien ne contient pas de jeton d'accès.",
    TokenRefusal.MALFORMED: "Ce lien est abîmé : son jeton d'accès est illisible.",
    TokenRefusal.BAD_SIGNATURE: "Ce lien n'a pas été émis par ce service.",
    TokenRefusal.EXPIRED: "Ce lien a expiré.",
    TokenRefusal.NOT_YET_VALID: "Ce lien n'est pas encore valable.",
    TokenRefusal.WRONG_ROLE: "Ce lien n'est pas prévu pour cet usage.",
    TokenRefusal.REVOKED: "Ce rendez-vous a été annulé.",
    TokenRefusal.UNKNOWN_CABIN: "Cette cabine n'est pas enregistrée.",
    TokenRefusal.CABIN_DISABLED: "Cette cabine a été désactivée.",
    TokenRefusal.REPLAYED: "Ce justificatif a déjà été utilisé.",
    TokenRefusal.OUTSIDE_WINDOW: "Ce lien n'est valable que pendant le créneau du rendez-vous.",
}


def refusal_page(status: int, french: str, english: str) -> web.Response:
    body = f"""<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cabine : lien refusé</title><link rel="stylesheet" href="/static/shared/page.css"></head>
<body><main class="refusal"><h1>Lien refusé</h1><p>{html.escape(french, quote=False)}</p>
<p lang="en">{html.escape(english, quote=False)}</p>
<p>Demandez un nouveau lien à l'organisateur du rendez-vous. / Ask the organiser for a new link.</p>
<p class="code">HTTP {status}</p></main></body></html>"""
    return web.Response(status=status, text=body, content_type="text/html", headers=SECURITY_HEADERS)


async def join(request: web.Request) -> web.StreamResponse:
    """GET /join/{token}: the professional's page, only for a valid, current professional link."""
    config = request.app[CONFIG]
    token = request.match_info.get("token", "")
    now = config.clock()
    try:
        if peek_role(token) not in (None, Role.PROFESSIONAL.value):
            raise TokenError(TokenRefusal.WRONG_ROLE)
        claims = config.signer.verify(token, role=Role.PROFESSIONAL, now=now)
    except TokenError as exc:
        log.info("join refused from %s: %s (token %s)", request.remote, exc.reason, fingerprint(token))
        return refusal_page(exc.status, _FRENCH[exc.reason], str(exc))
    appointment = await request.app[STORE].get_appointment(claims.subject)
    if appointment is None:
        return refusal_page(403, "Ce rendez-vous n'existe pas.", "This appointment does not exist.")
    if appointment.cancelled:
        return refusal_page(403, _FRENCH[TokenRefusal.REVOKED], str(TokenError(TokenRefusal.REVOKED)))
    if not appointment.opens_at <= now < appointment.ends_at:
        return refusal_page(
            403,
            "Ce lien n'est valable que pendant le créneau du rendez-vous.",
            "This link only works during the appointment's time window.",
        )
    page = config.webclient_dir / "pro" / "index.html"
    return web.FileResponse(page, headers=SECURITY_HEADERS)


async def join_without_token(request: web.Request) -> web.Response:
    return refusal_page(401, _FRENCH[TokenRefusal.MISSING], str(TokenError(TokenRefusal.MISSING)))


async def index(request: web.Request) -> web.Response:
    body = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Cabine</title>
<link rel="stylesheet" href="/static/shared/page.css"></head>
<body><main class="refusal"><h1>Cabine</h1>
<p>Service de rendez-vous en cabine. Ouvrez le lien personnel que vous avez reçu pour rejoindre un rendez-vous.</p>
<p lang="en">Cabin appointment service. Open the personal link you received to join an appointment.</p>
</main></body></html>"""
    return web.Response(text=body, content_type="text/html", headers=SECURITY_HEADERS)


async def favicon(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[CONFIG].webclient_dir / "shared" / "favicon.svg")


async def operator_page(request: web.Request) -> web.FileResponse:
    """GET /operator/: the operator's page (it asks for the API key itself; the page holds no secret)."""
    return web.FileResponse(request.app[CONFIG].webclient_dir / "operator" / "index.html", headers=SECURITY_HEADERS)


async def operator_redirect(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/operator/")


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/", index)
    router.add_get("/favicon.ico", favicon)
    router.add_get("/join", join_without_token)
    router.add_get("/join/", join_without_token)
    router.add_get("/join/{token}", join)
    router.add_get("/operator", operator_redirect)
    router.add_get("/operator/", operator_page)
