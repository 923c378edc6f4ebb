"""The store off the event loop: while a store call is stuck (a database that hangs, here a call held on purpose),
the server still answers, /readyz says the node is not ready within its time limit, and audit events are written in
order once the store answers again."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from signaling.async_store import AsyncStore
from signaling.models import AuditAction, AuditEvent, Cabin
from signaling.sqlite_store import SQLiteStore
from tests.signaling.conftest import World, server_options, world

__all__ = ["server_options", "world"]  # fixtures, imported to be used here

pytestmark = pytest.mark.timeout(30)


class Held:
    """A store whose get_cabin waits until released (in the store's thread, as a hanging database would)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.entered = threading.Event()
        self.release = threading.Event()

    def get_cabin(self, cabin_id: str) -> Cabin | None:
        self.entered.set()
        self.release.wait(timeout=20)
        return self.store.get_cabin(cabin_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_a_hanging_store_does_not_stop_the_server(world: World) -> None:
    held = Held(world.store)
    world.hub.store.sync = held  # type: ignore[assignment]
    stuck = asyncio.ensure_future(world.client.get("/readyz"))
    await asyncio.to_thread(held.entered.wait, 10)
    # The store's thread is held: the event loop is not.
    async with world.client.get("/healthz") as alive:
        assert alive.status == 200
    ready = await stuck
    assert ready.status == 503 and "the database does not answer" in await ready.text()
    held.release.set()
    async with world.client.get("/readyz") as again:
        assert again.status == 200


async def test_audit_events_are_written_in_order_and_flushed(tmp_path: Any) -> None:
    with SQLiteStore.open(tmp_path / "s.sqlite") as sync:
        store = AsyncStore(sync)
        from datetime import UTC, datetime, timedelta

        start = datetime(2026, 12, 2, 9, tzinfo=UTC)
        for minute in range(20):
            store.audit(AuditEvent(start + timedelta(minutes=minute), AuditAction.REFUSED, f"actor-{minute}"))
        await store.flush()
        log = await store.audit_log(limit=50)
        assert [e.actor for e in log] == [f"actor-{m}" for m in reversed(range(20))]
        store.close()
        # Once closed (the server stopping), an audit event is still written, in the caller's thread.
        store.audit(AuditEvent(start + timedelta(hours=1), AuditAction.REFUSED, "late"))
        assert sync.audit_log(limit=1)[0].actor == "late"
