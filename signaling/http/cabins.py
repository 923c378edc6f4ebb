"""The cabins under /api/v1: register, list, show, disable and enable, new enrollment codes, enrollment by the cabin
PC itself (POST /api/v1/enroll, authenticated by its one-time code), and the cabin's self-test.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from signaling.config import ServerConfig
from signaling.enrollment import code_hash, new_code
from signaling.http.rest import PREFIX, ApiError, audit, body, call_hook, iso, json_errors, only, operator, string
from signaling.hub import CabinNotConnected, SelftestTimeout
from signaling.keys import CONFIG, HUB, ON_CABIN_DISABLED, STORE
from signaling.models import AuditAction, Cabin, ModelError
from signaling.store import DuplicateId

log = logging.getLogger("cabine.signaling.api")

_ZERO_HASH: Final = bytes(32)


def _pending(cabin: Cabin, now: datetime) -> bool:
    return (
        cabin.enrollment_code_hash is not None
        and cabin.enrollment_expires_at is not None
        and now < cabin.enrollment_expires_at
    )


def cabin_json(cabin: Cabin, now: datetime) -> dict[str, Any]:
    """A cabin as the API shows it: never its key nor its enrollment code."""
    return {
        "id": cabin.id,
        "name": cabin.name,
        "enrolled": cabin.enrolled,
        "disabled": cabin.disabled,
        "enrolled_at": iso(cabin.enrolled_at),
        "enrollment_pending": _pending(cabin, now),
    }


def _with_new_code(config: ServerConfig, cabin: Cabin, now: datetime) -> tuple[Cabin, str]:
    code = new_code()
    expires_at = now + config.enrollment_lifetime
    return replace(cabin, enrollment_code_hash=code_hash(code), enrollment_expires_at=expires_at), code


def _code_json(cabin: Cabin, code: str, now: datetime) -> dict[str, Any]:
    return {
        **cabin_json(cabin, now),
        "enrollment_code": code,
        "enrollment_expires_at": iso(cabin.enrollment_expires_at),
    }


@operator
async def create_cabin(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/cabins {id, name}: register a cabin; answers with its one-time enrollment code."""
    config = request.app[CONFIG]
    now = config.clock()
    data = await body(request)
    only(data, ("id", "name"))
    cabin_id = string(data, "id", max_length=64)
    name = string(data, "name", required=False)
    try:
        cabin, code = _with_new_code(config, Cabin(cabin_id, name), now)
    except ModelError as exc:
        raise ApiError(400, f"id: {exc}") from None
    try:
        await request.app[STORE].add_cabin(cabin)
    except DuplicateId as exc:
        raise ApiError(409, str(exc)) from None
    audit(request, AuditAction.CABIN_CREATED, "operator", cabin_id=cabin.id, detail=operator)
    log.info("cabin %s: created", cabin.id)
    return web.json_response(_code_json(cabin, code, now), status=201)


@operator
async def list_cabins(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/cabins: every cabin, by id."""
    config = request.app[CONFIG]
    now = config.clock()
    return web.json_response({"cabins": [cabin_json(c, now) for c in await request.app[STORE].list_cabins()]})


async def _existing(request: web.Request, cabin_id: str) -> Cabin:
    """The cabin with this id.

    Raises:
        ApiError: 404, no such cabin.
    """
    cabin = await request.app[STORE].get_cabin(cabin_id)
    if cabin is None:
        raise ApiError(404, f"no cabin {cabin_id!r}")
    return cabin


@operator
async def show_cabin(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/cabins/{id}."""
    config = request.app[CONFIG]
    cabin = await _existing(request, request.match_info["id"])
    return web.json_response(cabin_json(cabin, config.clock()))


async def _set_disabled(request: web.Request, operator: str, disabled: bool) -> web.StreamResponse:
    config = request.app[CONFIG]
    cabin = await _existing(request, request.match_info["id"])
    if cabin.disabled != disabled:
        cabin = replace(cabin, disabled=disabled)
        await request.app[STORE].update_cabin(cabin)
        action = AuditAction.CABIN_DISABLED if disabled else AuditAction.CABIN_ENABLED
        audit(request, action, "operator", cabin_id=cabin.id, detail=operator)
        log.info("cabin %s: %s", cabin.id, action.value)
        if disabled:
            await call_hook(request, ON_CABIN_DISABLED, cabin.id, "cabin-disabled")
    return web.json_response(cabin_json(cabin, config.clock()))


@operator
async def disable_cabin(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/cabins/{id}/disable: refuse its connections (idempotent); closes the current one."""
    return await _set_disabled(request, operator, True)


@operator
async def enable_cabin(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/cabins/{id}/enable (idempotent)."""
    return await _set_disabled(request, operator, False)


@operator
async def new_enrollment_code(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/cabins/{id}/enrollment: a new one-time code; the current key keeps working until it is used."""
    config = request.app[CONFIG]
    now = config.clock()
    cabin, code = _with_new_code(config, await _existing(request, request.match_info["id"]), now)
    await request.app[STORE].update_cabin(cabin)
    audit(request, AuditAction.CABIN_ENROLLMENT_CODE, "operator", cabin_id=cabin.id, detail=operator)
    log.info("cabin %s: new enrollment code", cabin.id)
    return web.json_response(_code_json(cabin, code, now))


def _public_key(value: object) -> bytes:
    """Decode a base64 raw Ed25519 public key.

    Raises:
        ApiError: 400, not the base64 of a raw 32-byte Ed25519 public key.
    """
    message = "public_key must be the base64 of a raw 32-byte Ed25519 public key"
    if not isinstance(value, str):
        raise ApiError(400, message)
    try:
        raw = base64.b64decode(value, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise ApiError(400, message) from None
    return raw


@json_errors
async def enroll(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/enroll {cabin_id, code, public_key}: a cabin PC records its key; the code is the credential."""
    config, hub = request.app[CONFIG], request.app[HUB]
    address = request.remote or "?"
    if await hub.turned_away(address):
        log.warning("enrollment from %s turned away: too many refusals in the last minute", address)
        raise ApiError(429, "too many refused attempts from this address; wait a minute")
    now = config.clock()
    data = await body(request)
    only(data, ("cabin_id", "code", "public_key"))
    cabin_id = string(data, "cabin_id", max_length=64)
    code = string(data, "code", max_length=256)
    public_key = _public_key(data.get("public_key"))
    cabin = await request.app[STORE].get_cabin(cabin_id)
    expected = None if cabin is None else cabin.enrollment_code_hash
    # Compare even when nothing is pending, so that timing says nothing about the cabin.
    matches = hmac.compare_digest(code_hash(code), expected or _ZERO_HASH)
    if cabin is None or expected is None or not matches:
        # A guess as much as a mistake: counted, so that guessing codes stops after a hundred a minute.
        await hub.refused(address)
    if cabin is None or expected is None:
        log.warning("cabin %s: enrollment refused from %s: no code pending", cabin_id, request.remote)
        raise ApiError(
            403,
            f"no enrollment code is pending for cabin {cabin_id!r} (already used, or never issued): "
            "ask the operator for a new one",
        )
    if not matches:
        log.warning("cabin %s: enrollment refused from %s: wrong code", cabin_id, request.remote)
        raise ApiError(403, f"wrong enrollment code for cabin {cabin_id!r}")
    if cabin.enrollment_expires_at is None or now >= cabin.enrollment_expires_at:
        log.warning("cabin %s: enrollment refused from %s: expired code", cabin_id, request.remote)
        raise ApiError(
            403,
            f"the enrollment code for cabin {cabin_id!r} expired at {iso(cabin.enrollment_expires_at)}: "
            "ask the operator for a new one",
        )
    replaced = cabin.enrolled
    # The check above says why a code is refused; using it up is one statement of the store's, so that two uses of
    # one code, on this node or another, can never both succeed.
    if await request.app[STORE].enroll_cabin(cabin.id, expected, public_key, now) is None:
        log.warning("cabin %s: enrollment refused from %s: the code was used meanwhile", cabin_id, request.remote)
        raise ApiError(
            403,
            f"no enrollment code is pending for cabin {cabin_id!r} (already used, or never issued): "
            "ask the operator for a new one",
        )
    fingerprint = "key sha256:" + hashlib.sha256(public_key).hexdigest()[:8]
    audit(
        request,
        AuditAction.CABIN_ENROLLED,
        "cabin",
        cabin_id=cabin.id,
        detail=fingerprint + ("; replaces the previous key" if replaced else ""),
    )
    log.info("cabin %s: enrolled (%s)", cabin.id, fingerprint)
    if replaced:
        await call_hook(request, ON_CABIN_DISABLED, cabin.id, "cabin-disabled")
    return web.json_response({"cabin_id": cabin.id, "enrolled_at": iso(now), "disabled": cabin.disabled})


@operator
async def run_selftest(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/cabins/{id}/selftest: the connected cabin runs its self-test now; answers with its report.

    409 if the cabin is not connected (or goes away before answering), 504 if it does not answer in time.
    """
    cabin = await _existing(request, request.match_info["id"])
    hub = request.app[HUB]
    if hub.rooms.cabin(cabin.id) is not None:
        audit(request, AuditAction.SELFTEST_REQUESTED, "operator", cabin_id=cabin.id, detail=operator)
    try:
        received = await hub.run_selftest(cabin.id)
    except CabinNotConnected as exc:
        raise ApiError(409, str(exc)) from None
    except SelftestTimeout as exc:
        raise ApiError(504, str(exc)) from None
    return web.json_response(received.to_json())


@operator
async def latest_selftest(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/cabins/{id}/selftest: the cabin's latest self-test report (at start-up or asked for)."""
    cabin = await _existing(request, request.match_info["id"])
    received = request.app[HUB].selftests.latest(cabin.id)
    if received is None:
        raise ApiError(404, f"no self-test report from cabin {cabin.id!r} yet")
    return web.json_response(received.to_json())


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post(f"{PREFIX}/cabins", create_cabin)
    router.add_get(f"{PREFIX}/cabins", list_cabins)
    router.add_get(f"{PREFIX}/cabins/{{id}}", show_cabin)
    router.add_post(f"{PREFIX}/cabins/{{id}}/disable", disable_cabin)
    router.add_post(f"{PREFIX}/cabins/{{id}}/enable", enable_cabin)
    router.add_post(f"{PREFIX}/cabins/{{id}}/enrollment", new_enrollment_code)
    router.add_post(f"{PREFIX}/cabins/{{id}}/selftest", run_selftest)
    router.add_get(f"{PREFIX}/cabins/{{id}}/selftest", latest_selftest)
    router.add_post(f"{PREFIX}/enroll", enroll)
