"""What every REST handler shares: operator authentication, JSON bodies and fields, JSON errors, audit, hooks.

Every route but POST /api/v1/enroll needs `Authorization: Bearer <operator API key>`. Every error is
`{"error": message}` with its status.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from signaling.errors import SignalingError
from signaling.keys import CONFIG, STORE, Hook
from signaling.models import AuditAction, AuditEvent
from signaling.store import StoreError

log = logging.getLogger("cabine.signaling.api")

PREFIX: Final = "/api/v1"
MAX_BODY_BYTES: Final = 64 * 1024
MAX_NAME_LENGTH: Final = 120

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OperatorHandler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


class ApiError(SignalingError):
    """A request refused with an HTTP status and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response({"error": message}, status=status, headers=headers)


def key_label(key: str) -> str:
    """A non-secret label for an operator key, fit for the audit log: a prefix of its SHA-256."""
    return "operator key sha256:" + hashlib.sha256(key.encode()).hexdigest()[:8]


def authenticate(request: web.Request) -> str:
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
    return key_label(key)


def json_errors(handler: Handler) -> Handler:
    """Turn ApiError and store failures into JSON error responses."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message)
        except StoreError as exc:
            log.error("%s %s: store failure: %s", request.method, request.path, exc)
            return error_response(503, "the database is unavailable; try again later")

    return wrapped


def operator(handler: OperatorHandler) -> Handler:
    """A handler for operators only; it receives the key's audit label as its second argument."""

    @json_errors
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await handler(request, authenticate(request))

    return wrapped


async def body(request: web.Request) -> dict[str, Any]:
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


def only(data: Mapping[str, Any], allowed: tuple[str, ...], what: str = "field") -> None:
    """Check that `data` has only the keys in `allowed`.

    Raises:
        ApiError: 400, `data` has a key outside `allowed` (most likely a typo).
    """
    for name in data:
        if name not in allowed:
            raise ApiError(400, f"unknown {what} {name!r} (expected: {', '.join(allowed)})")


def string(data: Mapping[str, Any], name: str, *, required: bool = True, max_length: int = MAX_NAME_LENGTH) -> str:
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


def parse_datetime(value: object, name: str) -> datetime:
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


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def flag(value: str, name: str) -> bool:
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


def audit(
    request: web.Request,
    action: AuditAction,
    actor: str,
    *,
    appointment_id: str | None = None,
    cabin_id: str | None = None,
    detail: str = "",
) -> None:
    """Write an audit row for this request (its client address, behind a trusted proxy the forwarded one)."""
    config = request.app[CONFIG]
    request.app[STORE].audit(
        AuditEvent(
            at=config.clock(),
            action=action,
            actor=actor,
            appointment_id=appointment_id,
            cabin_id=cabin_id,
            address=request.remote,
            detail=detail[:500],
        )
    )


async def call_hook(request: web.Request, key: web.AppKey[Hook], subject: str, what: str) -> None:
    """Await the hook registered under `key`, if any; its failure is logged, never undoes the change."""
    hook = request.app.get(key)
    if hook is None:
        return
    try:
        await hook(subject)
    except Exception:
        log.exception("%s: the %s hook failed", subject, what)


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
    return error_response(404, f"no such endpoint: {request.method} {request.path}")


def add_catch_all(app: web.Application) -> None:
    """Answer unknown /api/v1 paths in JSON; mount it after every API route."""
    app.router.add_route("*", PREFIX + "{tail:(/.*)?}", unknown_endpoint)
