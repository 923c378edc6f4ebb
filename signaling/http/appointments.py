"""POST/GET /api/v1/appointments, GET /api/v1/appointments/{id}, POST .../{id}/cancel.

A professional link is never stored: it is signed again whenever it is asked for. A cabin cannot be booked twice
at overlapping times (409 naming the appointment in the way); cancelled appointments do not count.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from aiohttp import web

from signaling.config import ServerConfig
from signaling.http.rest import (
    PREFIX,
    ApiError,
    audit,
    body,
    call_hook,
    flag,
    iso,
    only,
    operator,
    parse_datetime,
    string,
)
from signaling.keys import CONFIG, ON_APPOINTMENT_CREATED, ON_CANCEL, STORE
from signaling.links import professional_link
from signaling.models import Appointment, AuditAction, ModelError, NotFound
from signaling.protocol import AppointmentKind
from signaling.store import DuplicateId, Overlap, UnknownCabin

log = logging.getLogger("cabine.signaling.api")

MAX_DURATION_MINUTES: Final = 8 * 60


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
        "starts_at": iso(appointment.starts_at),
        "ends_at": iso(appointment.ends_at),
        "opens_at": iso(appointment.opens_at),
        "duration_minutes": _minutes(appointment.duration),
        "created_at": iso(appointment.created_at),
        "cancelled": appointment.cancelled,
        "cancelled_at": iso(appointment.cancelled_at),
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
    only(data, ("kind", "cabin_id", "starts_at", "duration_minutes", "professional_name"))
    kinds = ", ".join(k.value for k in AppointmentKind)
    try:
        kind = AppointmentKind(str(data.get("kind")))
    except ValueError:
        raise ApiError(400, f"kind must be one of: {kinds}") from None
    cabin_id = string(data, "cabin_id", max_length=64)
    starts_at = parse_datetime(data.get("starts_at"), "starts_at")
    minutes = data.get("duration_minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_DURATION_MINUTES:
        raise ApiError(400, f"duration_minutes must be a whole number between 1 and {MAX_DURATION_MINUTES}")
    professional_name = string(data, "professional_name")
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


@operator
async def create_appointment(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/appointments: book a cabin; answers with the professional's link."""
    config = request.app[CONFIG]
    now = config.clock()
    appointment = _appointment_from(await body(request), now)
    cabin = await request.app[STORE].get_cabin(appointment.cabin_id)
    if cabin is None:
        raise ApiError(422, f"cabin_id: no cabin {appointment.cabin_id!r}")
    if cabin.disabled:
        raise ApiError(409, f"cabin {cabin.id!r} is disabled: enable it before booking it")
    try:
        await request.app[STORE].add_appointment(appointment)
    except UnknownCabin:
        raise ApiError(422, f"cabin_id: no cabin {appointment.cabin_id!r}") from None
    except Overlap as exc:
        raise ApiError(409, f"{exc}: choose another time") from None
    except DuplicateId as exc:
        raise ApiError(409, str(exc)) from None
    audit(
        request,
        AuditAction.APPOINTMENT_CREATED,
        "operator",
        appointment_id=appointment.id,
        cabin_id=appointment.cabin_id,
        detail=f"kind={appointment.kind.value}; {operator}",
    )
    log.info("%s: created for cabin %s", appointment.id, appointment.cabin_id)
    await call_hook(request, ON_APPOINTMENT_CREATED, appointment.id, "appointment-created")
    stored = await request.app[STORE].get_appointment(appointment.id) or appointment
    return web.json_response(appointment_json(config, stored, with_link=True), status=201)


@operator
async def list_appointments(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/appointments?cabin_id=&from=&to=&include_cancelled=: appointments overlapping [from, to)."""
    config = request.app[CONFIG]
    query = request.query
    only(query, ("cabin_id", "from", "to", "include_cancelled"), "query parameter")
    since = parse_datetime(query["from"], "from") if "from" in query else None
    until = parse_datetime(query["to"], "to") if "to" in query else None
    include_cancelled = flag(query["include_cancelled"], "include_cancelled") if "include_cancelled" in query else True
    appointments = await request.app[STORE].list_appointments(
        cabin_id=query.get("cabin_id") or None, since=since, until=until, include_cancelled=include_cancelled
    )
    return web.json_response({"appointments": [appointment_json(config, a, with_link=False) for a in appointments]})


async def _existing(request: web.Request, appointment_id: str) -> Appointment:
    """The appointment with this id.

    Raises:
        ApiError: 404, no such appointment.
    """
    appointment = await request.app[STORE].get_appointment(appointment_id)
    if appointment is None:
        raise ApiError(404, f"no appointment {appointment_id!r}")
    return appointment


@operator
async def show_appointment(request: web.Request, operator: str) -> web.StreamResponse:
    """GET /api/v1/appointments/{id}: the appointment, with a freshly signed link."""
    config = request.app[CONFIG]
    appointment = await _existing(request, request.match_info["id"])
    return web.json_response(appointment_json(config, appointment, with_link=True))


@operator
async def cancel_appointment(request: web.Request, operator: str) -> web.StreamResponse:
    """POST /api/v1/appointments/{id}/cancel: idempotent; an appointment that is over cannot be cancelled."""
    config = request.app[CONFIG]
    now = config.clock()
    appointment = await _existing(request, request.match_info["id"])
    if appointment.cancelled:
        return web.json_response(appointment_json(config, appointment, with_link=True))
    if appointment.ends_at <= now:
        raise ApiError(409, f"appointment {appointment.id!r} is already over (it ended at {iso(appointment.ends_at)})")
    try:
        cancelled = await request.app[STORE].cancel_appointment(appointment.id, now)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    audit(
        request,
        AuditAction.APPOINTMENT_CANCELLED,
        "operator",
        appointment_id=appointment.id,
        cabin_id=appointment.cabin_id,
        detail=operator,
    )
    log.info("%s: cancelled", appointment.id)
    await call_hook(request, ON_CANCEL, appointment.id, "cancel")
    return web.json_response(appointment_json(config, cancelled, with_link=True))


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post(f"{PREFIX}/appointments", create_appointment)
    router.add_get(f"{PREFIX}/appointments", list_appointments)
    router.add_get(f"{PREFIX}/appointments/{{id}}", show_appointment)
    router.add_post(f"{PREFIX}/appointments/{{id}}/cancel", cancel_appointment)
