"""The operator's REST API (JSON over HTTPS, under /api/v1): appointments, cabins, and cabin enrollment.

Every route but POST /api/v1/enroll needs `Authorization: Bearer <operator API key>`; enrollment is authenticated by
its one-time code instead. Every error is `{"error": message}` with its status. A professional link is never stored:
it is signed again whenever it is asked for.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from signaling.config import ServerConfig
from signaling.errors import SignalingError
from signaling.links import professional_link
from signaling.models import Appointment, AuditAction, AuditEvent, Cabin, ModelError, NotFound
from signaling.protocol import AppointmentKind
from signaling.store import DuplicateId, StoreError, UnknownCabin
from signaling.ws import CONFIG

log = logging.getLogger("cabine.signaling.api")

PREFIX: Final = "/api/v1"
MAX_BODY_BYTES: Final = 64 * 1024
MAX_DURATION_MINUTES: Final = 8 * 60
MAX_NAME_LENGTH: Final = 120
_ZERO_HASH: Final = bytes(32)

Hook = Callable[[str], Awaitable[None]]
# Awaited with the appointment id after a cancellation: end its call and turn its professional away.
ON_CANCEL: web.AppKey[Hook] = web.AppKey("on_cancel")
# Awaited with the cabin id when the cabin's current connection must end: it was disabled, or re-enrolled with a
# new key (a replaced or stolen PC must not stay connected with the old one).
ON_CABIN_DISABLED: web.AppKey[Hook] = web.AppKey("on_cabin_disabled")
# Awaited with the appointment id after a creation: a connected cabin's schedule can be refreshed at once.
ON_APPOINTMENT_CREATED: web.AppKey[Hook] = web.AppKey("on_appointment_created")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(SignalingError):
    """A request refused with an HTTP status and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- plumbing ---------------------------------------------------------------------------------------------


def _error_response(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response({"error": message}, status=status, headers=headers)


def _key_label(key: str) -> str:
    """A non-secret label for an operator key, fit for the audit log: a prefix of its SHA-256."""
    return "operator key sha256:" + hashlib.sha256(key.encode()).hexdigest()[:8]


def _authenticate(request: web.Request) -> str:
    """Check the operator's bearer key; returns a label for the audit log.

    Raises:
        ApiError: 401, the key is missing or wrong.
    """
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "missing operator API key: send the header 'Authorization: Bearer <key>'")
    if not request.app[CONFIG].operator_key_ok(key):
        log.warning("refused an operator request from %s: invalid API key", request.remote)
        raise ApiError(401, "invalid operator API key")
    return _key_label(key)


def _json_errors(handler: _Handler) -> _Handler:
    """Turn ApiError and store failures into JSON error responses."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return _error_response(exc.status, exc.message)
        except StoreError as exc:
            log.error("%s %s: store failure: %s", request.method, request.path, exc)
            return _error_response(503, "the database is unavailable; try again later")

    return wrapped


def _operator(handler: Callable[[web.Request, str], Awaitable[web.StreamResponse]]) -> _Handler:
    """A handler for operators only; it receives the key's audit label as its second argument."""

    @_json_errors
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await handler(request, _authenticate(request))

    return wrapped


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, at most MAX_BODY_BYTES.

    Raises:
        ApiError: 413 if too large, 400 if not a JSON object.
    """
    too_large = ApiError(413, f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    try:
        data = json.loads(raw)
    except ValueError:  # includes UnicodeDecodeError
        data = None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


def _only(data: Mapping[str, Any], allowed: tuple[str, ...], what: str = "field") -> None:
    """Check that `data` has only the keys in `allowed`.

    Raises:
        ApiError: 400, `data` has a key outside `allowed` (most likely a typo).
    """
    for name in data:
        if name not in allowed:
            raise ApiError(400, f"unknown {what} {name!r} (expected: {', '.join(allowed)})")


def _string(data: Mapping[str, Any], name: str, *, required: bool = True, max_length: int = MAX_NAME_LENGTH) -> str:
    """The string field `name` of `data` ("" when absent and optional).

    Raises:
        ApiError: 400, the field is missing (when required), not a string, or too long.
    """
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    if len(value) > max_length:
        raise ApiError(400, f"{name} is too long ({max_length} characters at most)")
    return value


def _datetime(value: object, name: str) -> datetime:
    """Parse an ISO 8601 date and time that includes a timezone.

    Raises:
        ApiError: 400, `value` is not an ISO 8601 date and time with a timezone.
    """
    message = f"{name} must be an ISO 8601 date and time with a timezone, e.g. 2026-11-26T09:30+01:00"
    if not isinstance(value, str):
        raise ApiError(400, message)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, message) from None
    if parsed.tzinfo is None:
        raise ApiError(400, message)
    return parsed


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _audit(
    request: web.Request,
    action: AuditAction,
    actor: str,
    *,
    appointment_id: str | None = None,
    cabin_id: str | None = None,
    detail: str = "",
) -> None:
    config = request.app[CONFIG]
    config.store.audit(
        AuditEvent(
            at=config.clock(),
            action=action,
            actor=actor,
            appointment_id=appointment_id,
            cabin_id=cabin_id,
            address=request.remote,
            detail=detail,
        )
    )


async def _call_hook(request: web.Request, key: web.AppKey[Hook], subject: str, what: str) -> None:
    """Await the hook registered under `key`, if any; its failure is logged, never undoes the change."""
    hook = request.app.get(key)
    if hook is None:
        return
    try:
        await hook(subject)
    except Exception:
        log.exception("%s: the %s hook failed", subject, what)


# --- appointments -----------------------------------------------------------------------------------------


def _minutes(duration: timedelta) -> int | float:
    minutes = duration.total_seconds() / 60
    return int(minutes) if minutes.is_integer() else minutes


def appointment_json(config: ServerConfig, appointment: Appointment, *, with_link: bool) -> dict[str, Any]:
    """An appointment as the API shows it; with its professional link unless cancelled, if asked."""
    data: dict[str, Any] = {
        "id": appointment.id,
        "kind": appointment.kind.value,
        "cabin_id": appointment.cabin_id,
        "professional_name": appointment.professional_name,
        "starts_at": _iso(appointment.starts_at),
        "ends_at": _iso(appointment.ends_at),
        "opens_at": _iso(appointment.opens_at),
        "duration_minutes": _minutes(appointment.duration),
        "created_at": _iso(appointment.created_at),
        "cancelled": appointment.cancelled,
        "cancelled_at": _iso(appointment.cancelled_at),
    }
    if with_link:
        data["link"] = (
            None if appointment.cancelled else professional_link(config.signer, config.public_url, appointment)
        )
    return data


def _appointment_from(data: Mapping[str, Any], now: datetime) -> Appointment:
    """Validate a POST /appointments body.

    Raises:
        ApiError: 400, naming the field that is wrong.
    """
    _only(data, ("kind", "cabin_id", "starts_at", "duration_minutes", "professional_name"))
    kinds = ", ".join(k.value for k in AppointmentKind)
    try:
        kind = AppointmentKind(str(data.get("kind")))
    except ValueError:
        raise ApiError(400, f"kind must be one of: {kinds}") from None
    cabin_id = _string(data, "cabin_id", max_length=64)
    starts_at = _datetime(data.get("starts_at"), "starts_at")
    minutes = data.get("duration_minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_DURATION_MINUTES:
        raise ApiError(400, f"duration_minutes must be a whole number between 1 and {MAX_DURATION_MINUTES}")
    professional_name = _string(data, "professional_name")
    try:
        appointment = Appointment(
            id=Appointment.new_id(),
            kind=kind,
            cabin_id=cabin_id,
            starts_at=starts_at,
            duration=timedelta(minutes=minutes),
            professional_name=professional_name,
            created_at=now,
        )
    except ModelError as exc:
        raise ApiError(400, str(exc)) from None
    if appointment.ends_at <= now:
        raise ApiError(400, "starts_at: this appointment would already be over")
    return appointment


@_operator
async def create_appointment(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/appointments: book a cabin; answers with the professional's link."""
    config = request.app[CONFIG]
    now = config.clock()
    appointment = _appointment_from(await _body(request), now)
    cabin = config.store.get_cabin(appointment.cabin_id)
    if cabin is None:
        raise ApiError(422, f"cabin_id: no cabin {appointment.cabin_id!r}")
    if cabin.disabled:
        raise ApiError(409, f"cabin {cabin.id!r} is disabled: enable it before booking it")
    try:
        config.store.add_appointment(appointment)
    except UnknownCabin:
        raise ApiError(422, f"cabin_id: no cabin {appointment.cabin_id!r}") from None
    except DuplicateId as exc:
        raise ApiError(409, str(exc)) from None
    _audit(
        request,
        AuditAction.APPOINTMENT_CREATED,
        "operator",
        appointment_id=appointment.id,
        cabin_id=appointment.cabin_id,
        detail=f"kind={appointment.kind.value}; {operator}",
    )
    log.info("%s: created for cabin %s", appointment.id, appointment.cabin_id)
    await _call_hook(request, ON_APPOINTMENT_CREATED, appointment.id, "appointment-created")
    stored = config.store.get_appointment(appointment.id) or appointment
    return web.json_response(appointment_json(config, stored, with_link=True), status=201)


def _flag(value: str, name: str) -> bool:
    """Parse a boolean query parameter.

    Raises:
        ApiError: 400, not true/false/1/0/yes/no.
    """
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ApiError(400, f"{name} must be true or false")


@_operator
async def list_appointments(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/appointments?cabin_id=&from=&to=&include_cancelled=: appointments overlapping [from, to)."""
    config = request.app[CONFIG]
    query = request.query
    _only(query, ("cabin_id", "from", "to", "include_cancelled"), "query parameter")
    since = _datetime(query["from"], "from") if "from" in query else None
    until = _datetime(query["to"], "to") if "to" in query else None
    include_cancelled = _flag(query["include_cancelled"], "include_cancelled") if "include_cancelled" in query else True
    appointments = config.store.list_appointments(
        cabin_id=query.get("cabin_id") or None, since=since, until=until, include_cancelled=include_cancelled
    )
    return web.json_response({"appointments": [appointment_json(config, a, with_link=False) for a in appointments]})


def _existing_appointment(config: ServerConfig, appointment_id: str) -> Appointment:
    """The appointment with this id.

    Raises:
        ApiError: 404, no such appointment.
    """
    appointment = config.store.get_appointment(appointment_id)
    if appointment is None:
        raise ApiError(404, f"no appointment {appointment_id!r}")
    return appointment


@_operator
async def show_appointment(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/appointments/{id}: the appointment, with a freshly signed link."""
    config = request.app[CONFIG]
    appointment = _existing_appointment(config, request.match_info["id"])
    return web.json_response(appointment_json(config, appointment, with_link=True))


@_operator
async def cancel_appointment(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/appointments/{id}/cancel: idempotent; an appointment that is over cannot be cancelled."""
    config = request.app[CONFIG]
    now = config.clock()
    appointment = _existing_appointment(config, request.match_info["id"])
    if appointment.cancelled:
        return web.json_response(appointment_json(config, appointment, with_link=True))
    if appointment.ends_at <= now:
        raise ApiError(409, f"appointment {appointment.id!r} is already over (it ended at {_iso(appointment.ends_at)})")
    try:
        cancelled = config.store.cancel_appointment(appointment.id, now)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    _audit(
        request,
        AuditAction.APPOINTMENT_CANCELLED,
        "operator",
        appointment_id=appointment.id,
        cabin_id=appointment.cabin_id,
        detail=operator,
    )
    log.info("%s: cancelled", appointment.id)
    await _call_hook(request, ON_CANCEL, appointment.id, "cancel")
    return web.json_response(appointment_json(config, cancelled, with_link=True))


# --- cabins -----------------------------------------------------------------------------------------------


def _code_hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


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
        "enrolled_at": _iso(cabin.enrolled_at),
        "enrollment_pending": _pending(cabin, now),
    }


def _with_new_code(config: ServerConfig, cabin: Cabin, now: datetime) -> tuple[Cabin, str]:
    code = secrets.token_urlsafe(16)
    expires_at = now + config.enrollment_lifetime
    return replace(cabin, enrollment_code_hash=_code_hash(code), enrollment_expires_at=expires_at), code


def _code_json(cabin: Cabin, code: str, now: datetime) -> dict[str, Any]:
    return {
        **cabin_json(cabin, now),
        "enrollment_code": code,
        "enrollment_expires_at": _iso(cabin.enrollment_expires_at),
    }


@_operator
async def create_cabin(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/cabins {id, name}: register a cabin; answers with its one-time enrollment code."""
    config = request.app[CONFIG]
    now = config.clock()
    data = await _body(request)
    _only(data, ("id", "name"))
    cabin_id = _string(data, "id", max_length=64)
    name = _string(data, "name", required=False)
    try:
        cabin, code = _with_new_code(config, Cabin(cabin_id, name), now)
    except ModelError as exc:
        raise ApiError(400, f"id: {exc}") from None
    try:
        config.store.add_cabin(cabin)
    except DuplicateId as exc:
        raise ApiError(409, str(exc)) from None
    _audit(request, AuditAction.CABIN_CREATED, "operator", cabin_id=cabin.id, detail=operator)
    log.info("cabin %s: created", cabin.id)
    return web.json_response(_code_json(cabin, code, now), status=201)


@_operator
async def list_cabins(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/cabins: every cabin, by id."""
    config = request.app[CONFIG]
    now = config.clock()
    return web.json_response({"cabins": [cabin_json(c, now) for c in config.store.list_cabins()]})


def _existing_cabin(config: ServerConfig, cabin_id: str) -> Cabin:
    """The cabin with this id.

    Raises:
        ApiError: 404, no such cabin.
    """
    cabin = config.store.get_cabin(cabin_id)
    if cabin is None:
        raise ApiError(404, f"no cabin {cabin_id!r}")
    return cabin


@_operator
async def show_cabin(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/cabins/{id}."""
    config = request.app[CONFIG]
    cabin = _existing_cabin(config, request.match_info["id"])
    return web.json_response(cabin_json(cabin, config.clock()))


async def _set_disabled(request: web.Request, operator: str, disabled: bool) -> web.StreamResponse:
    config = request.app[CONFIG]
    cabin = _existing_cabin(config, request.match_info["id"])
    if cabin.disabled != disabled:
        cabin = replace(cabin, disabled=disabled)
        config.store.update_cabin(cabin)
        action = AuditAction.CABIN_DISABLED if disabled else AuditAction.CABIN_ENABLED
        _audit(request, action, "operator", cabin_id=cabin.id, detail=operator)
        log.info("cabin %s: %s", cabin.id, action.value)
        if disabled:
            await _call_hook(request, ON_CABIN_DISABLED, cabin.id, "cabin-disabled")
    return web.json_response(cabin_json(cabin, config.clock()))


@_operator
async def disable_cabin(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/cabins/{id}/disable: refuse its connections (idempotent); closes the current one."""
    return await _set_disabled(request, operator, True)


@_operator
async def enable_cabin(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/cabins/{id}/enable (idempotent)."""
    return await _set_disabled(request, operator, False)


@_operator
async def new_enrollment_code(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/cabins/{id}/enrollment: a new one-time code; the current key keeps working until it is used."""
    config = request.app[CONFIG]
    now = config.clock()
    cabin, code = _with_new_code(config, _existing_cabin(config, request.match_info["id"]), now)
    config.store.update_cabin(cabin)
    _audit(request, AuditAction.CABIN_ENROLLMENT_CODE, "operator", cabin_id=cabin.id, detail=operator)
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


@_json_errors
async def enroll(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/enroll {cabin_id, code, public_key}: a cabin PC records its key; the code is the credential."""
    config = request.app[CONFIG]
    now = config.clock()
    data = await _body(request)
    _only(data, ("cabin_id", "code", "public_key"))
    cabin_id = _string(data, "cabin_id", max_length=64)
    code = _string(data, "code", max_length=256)
    public_key = _public_key(data.get("public_key"))
    cabin = config.store.get_cabin(cabin_id)
    expected = None if cabin is None else cabin.enrollment_code_hash
    # Compare even when nothing is pending, so that timing says nothing about the cabin.
    matches = hmac.compare_digest(_code_hash(code), expected or _ZERO_HASH)
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
            f"the enrollment code for cabin {cabin_id!r} expired at {_iso(cabin.enrollment_expires_at)}: "
            "ask the operator for a new one",
        )
    replaced = cabin.enrolled
    # Read, check and write happen with no await in between: two uses of one code cannot both succeed.
    enrolled = replace(
        cabin, public_key=public_key, enrolled_at=now, enrollment_code_hash=None, enrollment_expires_at=None
    )
    config.store.update_cabin(enrolled)
    fingerprint = "key sha256:" + hashlib.sha256(public_key).hexdigest()[:8]
    _audit(
        request,
        AuditAction.CABIN_ENROLLED,
        "cabin",
        cabin_id=cabin.id,
        detail=fingerprint + ("; replaces the previous key" if replaced else ""),
    )
    log.info("cabin %s: enrolled (%s)", cabin.id, fingerprint)
    if replaced:
        await _call_hook(request, ON_CABIN_DISABLED, cabin.id, "cabin-disabled")
    return web.json_response({"cabin_id": cabin.id, "enrolled_at": _iso(now), "disabled": cabin.disabled})


async def unknown_endpoint(request: web.Request) -> web.StreamResponse:
    """Anything else under /api/v1: a JSON 405 (a known path, another method) or 404, not a plain-text page."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.canonical.startswith(PREFIX + "/"):
            match, methods = await resource.resolve(request)
            if match is None:
                allowed |= methods
    if allowed:
        methods_text = ", ".join(sorted(allowed))
        return web.json_response(
            {"error": f"{request.method} is not allowed on {request.path} (allowed: {methods_text})"},
            status=405,
            headers={"Allow": methods_text},
        )
    return _error_response(404, f"no such endpoint: {request.method} {request.path}")


def add_api_routes(app: web.Application) -> None:
    """Mount the operator API under /api/v1 on `app` (which holds CONFIG)."""
    router = app.router
    router.add_post(f"{PREFIX}/appointments", create_appointment)
    router.add_get(f"{PREFIX}/appointments", list_appointments)
    router.add_get(f"{PREFIX}/appointments/{{id}}", show_appointment)
    router.add_post(f"{PREFIX}/appointments/{{id}}/cancel", cancel_appointment)
    router.add_post(f"{PREFIX}/cabins", create_cabin)
    router.add_get(f"{PREFIX}/cabins", list_cabins)
    router.add_get(f"{PREFIX}/cabins/{{id}}", show_cabin)
    router.add_post(f"{PREFIX}/cabins/{{id}}/disable", disable_cabin)
    router.add_post(f"{PREFIX}/cabins/{{id}}/enable", enable_cabin)
    router.add_post(f"{PREFIX}/cabins/{{id}}/enrollment", new_enrollment_code)
    router.add_post(f"{PREFIX}/enroll", enroll)
    router.add_route("*", PREFIX + "{tail:(/.*)?}", unknown_endpoint)
