"""The latest self-test report of each cabin, kept in memory for the operators. Pure: no I/O.

A report says which parts of a cabin work (camera, microphone, Bluetooth, devices, clock...), never a health
reading. Only the latest per cabin is kept, for at most MAX_CABINS cabins (the least recently reporting is dropped).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from signaling.protocol import CheckStatus, SelftestReport

MAX_CABINS: Final = 5000


@dataclass(frozen=True, slots=True)
class ReceivedReport:
    """A cabin's self-test report as signaling received it."""

    cabin_id: str
    report: SelftestReport
    received_at: datetime

    @property
    def failed(self) -> list[str]:
        """The names of the required checks that failed."""
        return [c.name for c in self.report.checks if c.required and c.status is CheckStatus.FAILED]

    def summary(self) -> str:
        """The failed required checks in one line, for the operator's alert."""
        failed = [c for c in self.report.checks if c.required and c.status is CheckStatus.FAILED]
        if not failed:
            return "the self-test failed"
        parts = [c.name + (f" ({c.detail})" if c.detail else "") for c in failed]
        return ("failed: " + "; ".join(parts))[:400]

    def to_json(self) -> dict[str, Any]:
        return {
            "cabin_id": self.cabin_id,
            "request_id": self.report.request_id,
            "ok": self.report.ok,
            "finished_at": self.report.finished_at,
            "received_at": self.received_at.isoformat(),
            "checks": [
                {"name": c.name, "status": c.status.value, "detail": c.detail, "required": c.required}
                for c in self.report.checks
            ],
        }


class SelftestBook:
    """The latest report per cabin, bounded; no I/O."""

    def __init__(self, max_cabins: int = MAX_CABINS) -> None:
        self._latest: OrderedDict[str, ReceivedReport] = OrderedDict()
        self._max = max_cabins

    def __len__(self) -> int:
        return len(self._latest)

    def record(self, received: ReceivedReport) -> None:
        """Keep `received` as its cabin's latest report."""
        self._latest.pop(received.cabin_id, None)
        self._latest[received.cabin_id] = received
        while len(self._latest) > self._max:
            self._latest.popitem(last=False)

    def latest(self, cabin_id: str) -> ReceivedReport | None:
        return self._latest.get(cabin_id)
