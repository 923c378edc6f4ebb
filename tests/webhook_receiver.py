"""A booking system's webhook endpoint on loopback, for the tests: it checks each signature as a receiver must,
keeps the events it accepted, and can refuse the first deliveries to exercise the retries."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from signaling.webhooks import verify

SECRET = b"webhook-secret-for-tests-0123456789"


@dataclass
class Receiver:
    url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    refused: int = 0
    refuse_next: int = 0  # answer 503 to this many deliveries first
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]

    async def wait_for(
        self, event_type: str, match: Callable[[dict[str, Any]], bool] = lambda data: True, *, timeout: float = 10
    ) -> dict[str, Any]:
        """The first accepted event of this type whose data matches; fails after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while True:
                for item in self.events:
                    if item["type"] == event_type and match(item["data"]):
                        return item
                changed = self.changed
                await changed.wait()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(SECRET, request.headers, body, now=time.time()):
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.refuse_next > 0:
            self.refuse_next -= 1
            self.refused += 1
            return web.Response(status=503)
        payload = json.loads(body)
        if payload["id"] not in {e["id"] for e in self.events}:  # a retried delivery is kept once
            self.events.append(payload)
        self.changed.set()
        self.changed = asyncio.Event()
        return web.Response(status=204)


@asynccontextmanager
async def webhook_receiver(port: int) -> AsyncIterator[Receiver]:
    receiver = Receiver(url=f"http://127.0.0.1:{port}/hooks/cabine")
    app = web.Application()
    app.router.add_post("/hooks/cabine", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield receiver
    finally:
        await runner.cleanup()
