"""The store off the event loop: every call runs on one thread of the store's own, and is awaited; audit events
are queued on that thread and written in order without the caller waiting (`flush()` waits for them).

One thread, so SQLite's and psycopg's single connections are used from one place, in the order the calls came;
the event loop, which carries every room's negotiation, never waits on a disk or a database server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from signaling.cabin_settings import SettingsVersion
from signaling.models import Appointment, AuditEvent, Cabin
from signaling.store import Store

log = logging.getLogger("cabine.signaling.store")

T = TypeVar("T")


class AsyncStore:
    """`signaling.store.Store`'s methods as coroutines (and `audit` queued), over `sync`."""

    def __init__(self, sync: Store) -> None:
        self.sync = sync
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cabine-store")
        # Audit events queued and not yet written (the store's thread removes them: under a lock).
        self._pending: set[Future[None]] = set()
        self._pending_lock = threading.Lock()
        self._latest: Future[None] | None = None  # the audit event queued last
        self.audits_failed = 0

    async def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(method, *args, **kwargs))

    async def flush(self) -> None:
        """Wait until every audit event queued so far is written (at once when none is waiting)."""
        # One thread writes them in the order they came: once the latest is written, every earlier one is. (Waiting on
        # each pending one made every request's end cost as much as the backlog: quadratic under load.)
        with self._pending_lock:
            latest = self._latest if self._pending else None
        if latest is not None and not latest.done():
            await asyncio.wait([asyncio.wrap_future(latest)])

    def close(self) -> None:
        """Write what is queued, then stop the store's thread (the store itself is its owner's to close)."""
        self._executor.shutdown(wait=True)

    # Appointments

    async def add_appointment(self, appointment: Appointment) -> None:
        await self._call(self.sync.add_appointment, appointment)

    async def get_appointment(self, appointment_id: str) -> Appointment | None:
        return await self._call(self.sync.get_appointment, appointment_id)

    async def list_appointments(
        self,
        *,
        cabin_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_cancelled: bool = True,
    ) -> list[Appointment]:
        return await self._call(
            self.sync.list_appointments,
            cabin_id=cabin_id,
            since=since,
            until=until,
            include_cancelled=include_cancelled,
        )

    async def cancel_appointment(self, appointment_id: str, at: datetime) -> Appointment:
        return await self._call(self.sync.cancel_appointment, appointment_id, at)

    async def set_admitted(self, appointment_id: str, at: datetime | None) -> None:
        await self._call(self.sync.set_admitted, appointment_id, at)

    # Cabins

    async def add_cabin(self, cabin: Cabin) -> None:
        await self._call(self.sync.add_cabin, cabin)

    async def get_cabin(self, cabin_id: str) -> Cabin | None:
        return await self._call(self.sync.get_cabin, cabin_id)

    async def list_cabins(self) -> list[Cabin]:
        return await self._call(self.sync.list_cabins)

    async def update_cabin(self, cabin: Cabin) -> None:
        await self._call(self.sync.update_cabin, cabin)

    async def enroll_cabin(self, cabin_id: str, code_hash: bytes, public_key: bytes, at: datetime) -> Cabin | None:
        return await self._call(self.sync.enroll_cabin, cabin_id, code_hash, public_key, at)

    # Cabin settings

    async def add_cabin_settings(
        self, cabin_id: str, settings: dict[str, dict[str, Any]], at: datetime, by: str
    ) -> SettingsVersion:
        return await self._call(self.sync.add_cabin_settings, cabin_id, settings, at, by)

    async def cabin_settings(self, cabin_id: str, *, limit: int = 1) -> list[SettingsVersion]:
        return await self._call(self.sync.cabin_settings, cabin_id, limit=limit)

    # Audit

    def audit(self, event: AuditEvent) -> None:
        """Queue `event` (written in order on the store's thread; a failure is logged and counted, never raised)."""
        try:
            future: Future[None] = self._executor.submit(self.sync.audit, event)
        except RuntimeError:  # closed: the server is stopping; written here, as before
            try:
                self.sync.audit(event)
            except Exception as exc:
                self.audits_failed += 1
                log.error("an audit event could not be written: %s", exc)
            return
        with self._pending_lock:
            self._latest = future
            # It may be written already (and its callback, below, run at once): then it is not pending.
            if not future.done():
                self._pending.add(future)
        future.add_done_callback(self._audited)

    def _audited(self, future: Future[None]) -> None:
        with self._pending_lock:
            self._pending.discard(future)
        error = future.exception()
        if error is not None:
            self.audits_failed += 1
            log.error("an audit event could not be written: %s", error)

    async def audit_log(
        self, *, appointment_id: str | None = None, cabin_id: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        return await self._call(self.sync.audit_log, appointment_id=appointment_id, cabin_id=cabin_id, limit=limit)
