"""Webhooks for booking systems: appointment events and cabin alerts, POSTed as signed JSON, retried with backoff.

Signed as the Standard Webhooks specification says (https://www.standardwebhooks.com, the scheme of Svix and of
several video platforms' webhooks): headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the shared secret. A receiver checks
the signature and the timestamp (refusing old ones) and ignores an id it has already seen: a delivery is retried
until a 2xx answer, so it may arrive twice.

Event types: appointment.professional_joined, appointment.citizen_admitted, appointment.ended,
appointment.no_show, appointment.cancelled, alert.opened, alert.closed. Payloads name appointments, cabins and
alert kinds, never a citizen nor a reading.

`sign` and `event` are pure; `WebhookSender` does the I/O, from one bounded queue and one task.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from signaling.errors import SignalingError

log = logging.getLogger("cabine.signaling.webhooks")

EVENT_TYPES: Final = frozenset(
    {
        "appointment.professional_joined",
        "appointment.citizen_admitted",
        "appointment.ended",
        "appointment.no_show",
        "appointment.cancelled",
        "alert.opened",
        "alert.closed",
    }
)
MAX_QUEUE: Final = 1000
ATTEMPTS: Final = 8
FIRST_RETRY: Final = 2.0
MAX_RETRY: Final = 600.0
TIMEOUT: Final = 10.0
MIN_SECRET_BYTES: Final = 16


class WebhookError(SignalingError, ValueError):
    """A webhook that cannot be configured: a bad URL or secret."""


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where to POST, with which secret; `events` limits the event types (empty: all)."""

    url: str
    secret: bytes = field(repr=False)
    events: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise WebhookError(
                f"webhook URL {self.url!r} must be https://host/path (http:// only on a private network)"
            )
        if len(self.secret) < MIN_SECRET_BYTES:
            raise WebhookError(f"the webhook secret must be at least {MIN_SECRET_BYTES} bytes")
        unknown = self.events - EVENT_TYPES
        if unknown:
            raise WebhookError(f"unknown webhook events {sorted(unknown)} (known: {', '.join(sorted(EVENT_TYPES))})")

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


def sign(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value (Standard Webhooks v1)."""
    digest = hmac.new(secret, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: bytes, headers: Mapping[str, str], body: bytes, *, now: float, tolerance: float = 300.0) -> bool:
    """What a receiver does (the tests' receiver, and the docs' example): signature and timestamp."""
    try:
        message_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        signatures = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


def event(event_type: str, data: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """One event as it is sent: its id, type, time and data."""
    if event_type not in EVENT_TYPES:
        raise WebhookError(f"unknown webhook event {event_type!r}")
    return {
        "id": "evt_" + secrets.token_hex(8),
        "type": event_type,
        "timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": dict(data),
    }


@dataclass(slots=True)
class _Delivery:
    target: WebhookTarget
    payload: dict[str, Any]
    attempt: int = 0
    due: float = 0.0


class WebhookSender:
    """Delivers events to the targets from one bounded queue, retrying failures with exponential backoff.

    An async context manager; `close` stops at once (undelivered events are logged, not kept: a booking system
    reconciles from the API after an outage). `on_outcome(outcome)` counts delivered / retried / failed / dropped.
    """

    def __init__(
        self,
        targets: tuple[WebhookTarget, ...],
        *,
        on_outcome: Callable[[str], None] = lambda outcome: None,
        first_retry: float = FIRST_RETRY,
        attempts: int = ATTEMPTS,
    ) -> None:
        self.targets = targets
        self._on_outcome = on_outcome
        self._first_retry = first_retry
        self._attempts = attempts
        self._queue: deque[_Delivery] = deque()
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0

    async def __aenter__(self) -> WebhookSender:
        if self.targets:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
            self._task = asyncio.create_task(self._run(), name="signaling-webhooks")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._queue:
            log.warning("%d webhook deliveries not made (server stopping)", len(self._queue))
            self._queue.clear()

    def send(self, event_type: str, data: Mapping[str, Any], at: datetime) -> None:
        """Queue the event for every target that wants it (no-op without targets)."""
        targets = [t for t in self.targets if t.wants(event_type)]
        if not targets or self._task is None:
            return
        payload = event(event_type, data, at)
        for target in targets:
            if len(self._queue) >= MAX_QUEUE:
                dropped = self._queue.popleft()
                log.error("webhook queue full: dropped %s to %s", dropped.payload["type"], dropped.target.url)
                self._on_outcome("dropped")
            self._queue.append(_Delivery(target, payload))
        self._wake.set()

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            ready = [d for d in self._queue if d.due <= now]
            if not ready:
                self._wake.clear()
                wait = min((d.due for d in self._queue), default=now + 3600) - now
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, wait)):
                        await self._wake.wait()
                continue
            for delivery in ready:
                self._queue.remove(delivery)
                try:
                    delivered = await self._post(delivery)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook to %s: unexpected failure", delivery.target.url)
                    delivered = False
                if delivered:
                    self.delivered += 1
                    self._on_outcome("delivered")
                    continue
                delivery.attempt += 1
                if delivery.attempt >= self._attempts:
                    log.error(
                        "webhook %s to %s: given up after %d attempts",
                        delivery.payload["type"],
                        delivery.target.url,
                        delivery.attempt,
                    )
                    self._on_outcome("failed")
                    continue
                delay = min(MAX_RETRY, self._first_retry * 2 ** (delivery.attempt - 1))
                delivery.due = time.monotonic() + delay
                self._queue.append(delivery)
                self._on_outcome("retried")

    async def _post(self, delivery: _Delivery) -> bool:
        assert self._session is not None
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        message_id = delivery.payload["id"]
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Cabine-Webhooks/1",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(delivery.target.secret, message_id, timestamp, body),
        }
        try:
            async with self._session.post(delivery.target.url, data=body, headers=headers) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return True
                log.warning("webhook %s to %s: HTTP %d", delivery.payload["type"], delivery.target.url, response.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning(
                "webhook %s to %s: %s", delivery.payload["type"], delivery.target.url, exc or type(exc).__name__
            )
        return False
