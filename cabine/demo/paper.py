"""The demo cabin's paper: a test printer whose pages are files, and SANE's own test scanner.

The demo runs on any machine, which usually has no printer for it: its printer writes each printed document to a
folder (the "paper tray"), and the cabin screen says so. Its scanner is SANE's `test` backend, a real SANE device
that gives a test picture, when `scanimage` is installed; a real CUPS queue or SANE device can be given instead.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Final

from gateway.documents.printer import Printed, PrintError, PrintProblem
from gateway.documents.scanner import SaneScanner

# The test backend's colour pattern, at a resolution where the demo's page is quick to scan and to send.
TEST_SCANNER_OPTIONS: Final = ("--test-picture=Color pattern",)
_UNSAFE = re.compile(r"[^\w.-]+")
_EXTENSIONS: Final = {b"%PDF": "pdf", b"\x89PNG": "png", b"\xff\xd8\xff": "jpg"}


class TrayPrinter:
    """Prints into a folder: each document as the file it is, named by the time and its title."""

    def __init__(self, tray: Path) -> None:
        self.tray = tray.resolve()
        self.test_tray = str(self.tray)
        self.printed = 0

    async def print_document(self, data: bytes, title: str) -> Printed:
        """Raises: PrintError: the folder cannot be written (full disk, no permission)."""
        started = time.monotonic()
        extension = next((ext for magic, ext in _EXTENSIONS.items() if data.startswith(magic)), "bin")
        stem = _UNSAFE.sub("-", PurePosixPath(title).stem).strip("-.")[:60] or "document"
        self.printed += 1
        name = f"{datetime.now():%Y%m%d-%H%M%S}-{self.printed:03d}-{stem}.{extension}"
        try:
            await asyncio.to_thread(self._write, self.tray / name, data)
        except OSError as exc:
            raise PrintError(PrintProblem.STOPPED, f"the test printer's folder {self.tray}: {exc.strerror}") from None
        return Printed(name, time.monotonic() - started)

    def _write(self, path: Path, data: bytes) -> None:
        self.tray.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".part")
        partial.write_bytes(data)
        partial.replace(path)


def sane_test_scanner(config_dir: Path) -> SaneScanner | None:
    """SANE's test scanner, with a configuration of its own in `config_dir`; None if SANE is not installed."""
    if shutil.which("scanimage") is None:
        return None
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "dll.conf").write_text("test\n")
    return SaneScanner("test:0", resolution=100, config_dir=config_dir, options=TEST_SCANNER_OPTIONS)
