"""Shared pieces of the cabin screen's tests: a reading source fed by the test, and saved screenshots."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import Page

from gateway.devices.readings import DeviceIdentity, Quantity, Reading, ReadingKind, TimeSource
from tests.browser import assert_accessible, screenshot

DOCS_SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "docs" / "screenshots"


class FedReadings:
    """A ReadingSource whose readings the test pushes, as if the citizen used a device."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Reading] = asyncio.Queue()

    async def readings(self) -> AsyncIterator[Reading]:
        while True:
            yield await self.queue.get()


def temperature(celsius: float) -> Reading:
    return Reading(
        kind=ReadingKind.BODY_TEMPERATURE,
        quantities=(Quantity("value", celsius, "Cel"),),
        measured_at=datetime.now(UTC).replace(microsecond=0),
        time_source=TimeSource.DEVICE,
        device=DeviceIdentity(address="AA:BB:CC:00:00:01", name="Thermomètre"),
    )


async def check_state(page: Page, name: str, *, docs: str | None = None) -> None:
    """axe-core finds no serious or critical violation; a screenshot goes to test-artifacts/.

    With CABINE_DOCS_SCREENSHOTS=1, a state given a `docs` name also refreshes docs/screenshots/<docs>.png.
    """
    await assert_accessible(page, name)
    path = await screenshot(page, name)
    if docs is not None and os.environ.get("CABINE_DOCS_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / f"{docs}.png")
