"""Scanning a page on the cabin's scanner through SANE (`scanimage`), into memory only.

The page comes back as PNG bytes on scanimage's standard output: nothing is written to disk, and the citizen sees it
and confirms before it leaves. Failures come back as ScanError with a reason both screens say in plain words (no
scanner, scanner busy, scan failed, too long). `config_dir` (SANE_CONFIG_DIR) chooses which SANE backends are
loaded: the system's by default, only the `test` backend in the tests and the demo.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from gateway.errors import GatewayError
from gateway.program import ProgramMissing, ProgramOutputTooLarge, ProgramTimeout, run_program

SCAN_TIMEOUT: Final = 120.0
# An A4 page at 300 dpi in colour is about 25 MB raw, far less as PNG; anything larger is not a page.
MAX_SCAN_BYTES: Final = 64 * 1024 * 1024
RESOLUTIONS: Final = (75, 100, 150, 200, 300)


class ScanProblem(enum.StrEnum):
    NO_SCANNER = "no-scanner"
    BUSY = "busy"
    FAILED = "failed"
    TIMEOUT = "timeout"


class ScanError(GatewayError, RuntimeError):
    def __init__(self, problem: ScanProblem, detail: str) -> None:
        super().__init__(f"{problem.value}: {detail}")
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Scan:
    png: bytes = field(repr=False)
    seconds: float


class Scanner(Protocol):
    # SANE's test backend (the demo's scanner): the cabin screen says so.
    test: bool

    async def scan(self) -> Scan: ...


class SaneScanner:
    """One SANE device (None: the first scanimage finds)."""

    def __init__(
        self,
        device: str | None = None,
        *,
        resolution: int = 150,
        timeout: float = SCAN_TIMEOUT,
        config_dir: Path | None = None,
        options: tuple[str, ...] = (),
    ) -> None:
        """`options` are the device's own scanimage options (e.g. the test backend's picture).

        Raises:
            GatewayError: a resolution or timeout out of range.
        """
        if resolution not in RESOLUTIONS:
            raise GatewayError(f"scan resolution must be one of {RESOLUTIONS} dpi, got {resolution}")
        if timeout <= 0:
            raise GatewayError(f"the scan timeout must be > 0 seconds, got {timeout}")
        self.device, self._resolution, self._timeout = device, resolution, timeout
        self.test = device is not None and device.split(":", 1)[0] == "test"
        self._config_dir, self._options = config_dir, options

    async def scan(self) -> Scan:
        """Scan one page in colour.

        Raises:
            ScanError: with its problem.
        """
        argv = ["scanimage", "--format=png", f"--resolution={self._resolution}", "--mode=Color", *self._options]
        if self.device is not None:
            argv[1:1] = ["-d", self.device]
        env = {"LC_ALL": "C"}
        if self._config_dir is not None:
            env["SANE_CONFIG_DIR"] = str(self._config_dir)
        started = time.monotonic()
        try:
            done = await run_program(argv, timeout=self._timeout, env=env, max_stdout=MAX_SCAN_BYTES)
        except ProgramMissing:
            raise ScanError(ScanProblem.NO_SCANNER, "scanimage is not installed (Debian package sane-utils)") from None
        except ProgramTimeout:
            raise ScanError(ScanProblem.TIMEOUT, f"no page within {self._timeout:g} s") from None
        except ProgramOutputTooLarge:
            raise ScanError(ScanProblem.FAILED, f"the scan is larger than {MAX_SCAN_BYTES >> 20} MB") from None
        out, message = done.stdout, done.stderr.decode(errors="replace").strip()
        if done.returncode != 0 or not out.startswith(b"\x89PNG"):
            lowered = message.lower()
            if "busy" in lowered:
                raise ScanError(ScanProblem.BUSY, message)
            absent = ("no sane devices found", "no scanners were identified", "open of device", "invalid argument")
            if any(words in lowered for words in absent):
                raise ScanError(ScanProblem.NO_SCANNER, message or "no scanner found")
            raise ScanError(ScanProblem.FAILED, message or f"scanimage exited with {done.returncode}")
        return Scan(out, time.monotonic() - started)
