"""Printing a document on the cabin's printer through CUPS, the system's print service, and forgetting it after.

The document goes to `lp` on its standard input: it is never written to a file of the gateway's. The job is then
followed with `lpstat` until it is completed or fails, within a time limit, and purged from CUPS's spool
(`cancel -a -x`), so that no citizen's paper stays on the PC. Failures come back as PrintError with a reason the
citizen's screen and the professional's console say in plain words (no printer, printer stopped, job aborted).

`CUPS_SERVER` (the environment, or `server`) chooses the CUPS scheduler: the system's by default, a private one in
the tests.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
from dataclasses import dataclass
from typing import Final, Protocol

from gateway.errors import GatewayError
from gateway.program import ProgramMissing, ProgramTimeout, run_program

log = logging.getLogger("cabine.gateway.printer")

PRINT_TIMEOUT: Final = 120.0
COMMAND_TIMEOUT: Final = 10.0
POLL: Final = 0.25
_JOB = re.compile(r"request id is (\S+)")


class PrintProblem(enum.StrEnum):
    """Why a document was not printed (the screens word each one)."""

    NO_PRINTER = "no-printer"  # the queue does not exist, or CUPS does not answer
    STOPPED = "stopped"  # the printer is off, out of paper, jammed: CUPS stopped it
    FAILED = "failed"  # the job was aborted or cancelled
    TIMEOUT = "timeout"  # not printed in the time allowed


class PrintError(GatewayError, RuntimeError):
    def __init__(self, problem: PrintProblem, detail: str) -> None:
        super().__init__(f"{problem.value}: {detail}")
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Printed:
    job: str
    seconds: float


class Printer(Protocol):
    """What the cabin prints on: a CUPS queue, or the demo's test printer."""

    # Where a test printer's pages go, said on the cabin screen ("": a real printer).
    test_tray: str

    async def print_document(self, data: bytes, title: str) -> Printed: ...


class CupsPrinter:
    """One CUPS queue. Prints a document, waits until it is out, purges it."""

    test_tray = ""

    def __init__(self, queue: str, *, server: str | None = None, timeout: float = PRINT_TIMEOUT) -> None:
        """Raises: GatewayError: an empty queue name or a timeout <= 0."""
        if not queue or any(c.isspace() or c in "/#" for c in queue):
            raise GatewayError(f"not a CUPS queue name: {queue!r}")
        if timeout <= 0:
            raise GatewayError(f"the print timeout must be > 0 seconds, got {timeout}")
        self.queue, self._server, self._timeout = queue, server, timeout

    async def _run(self, *argv: str, stdin: bytes | None = None) -> tuple[int, str]:
        """(exit status, what it wrote, stdout then stderr)."""
        # CUPS's messages in English, which this module reads.
        env = {"LC_ALL": "C", **({"CUPS_SERVER": self._server} if self._server is not None else {})}
        try:
            done = await run_program(list(argv), stdin=stdin, timeout=COMMAND_TIMEOUT, env=env)
        except ProgramMissing:
            missing = f"{argv[0]} is not installed (Debian package cups-client)"
            raise PrintError(PrintProblem.NO_PRINTER, missing) from None
        except ProgramTimeout:
            raise PrintError(PrintProblem.NO_PRINTER, f"{argv[0]} got no answer from CUPS") from None
        return done.returncode, (done.stdout + done.stderr).decode(errors="replace").strip()

    async def state(self) -> str:
        """The queue's state as `lpstat -p` says it (idle, printing, disabled...).

        Raises:
            PrintError: no such queue, or CUPS does not answer.
        """
        code, out = await self._run("lpstat", "-p", self.queue)
        if code != 0 or not out:
            raise PrintError(PrintProblem.NO_PRINTER, out or f"no printer {self.queue!r}")
        return out

    async def print_document(self, data: bytes, title: str) -> Printed:
        """Print `data` (a PDF or image CUPS can filter), wait until it is out, purge it.

        Raises:
            PrintError: with its problem; the job, if one was made, is cancelled and purged.
        """
        state = await self.state()
        if "disabled" in state:
            raise PrintError(PrintProblem.STOPPED, state)
        started = time.monotonic()
        safe_title = "".join(c for c in title if c.isprintable())[:80] or "document"
        code, out = await self._run("lp", "-d", self.queue, "-t", safe_title, "-", stdin=data)
        found = _JOB.search(out)
        if code != 0 or found is None:
            raise PrintError(PrintProblem.NO_PRINTER, out or "lp refused the document")
        job = found.group(1)
        try:
            await self._wait(job)
        except BaseException:
            await self._purge(job, cancel=True)
            raise
        await self._purge(job, cancel=False)
        return Printed(job, time.monotonic() - started)

    async def _wait(self, job: str) -> None:
        deadline = time.monotonic() + self._timeout
        while True:
            _, pending = await self._run("lpstat", "-W", "not-completed", "-o", self.queue)
            if job not in pending.split():
                break
            state = await self.state()
            if "disabled" in state:
                raise PrintError(PrintProblem.STOPPED, state)
            if time.monotonic() > deadline:
                raise PrintError(PrintProblem.TIMEOUT, f"not printed within {self._timeout:g} s")
            await asyncio.sleep(POLL)
        _, completed = await self._run("lpstat", "-W", "completed", "-l", "-o", self.queue)
        block = completed.split(job, 1)[1].split("\n" + self.queue + "-", 1)[0] if job in completed else ""
        if "aborted" in block or "canceled" in block or "cancelled" in block:
            raise PrintError(PrintProblem.FAILED, block.strip()[:300])

    async def _purge(self, job: str, *, cancel: bool) -> None:
        """Remove the job from CUPS: cancelled if it still runs, then every job's files and history on this queue
        purged (a completed job's record keeps its title and owner: the cabin's queue keeps nothing)."""
        steps = ([("cancel", job)] if cancel else []) + [("cancel", "-a", "-x", self.queue)]
        for argv in steps:
            try:
                code, out = await self._run(*argv)
            except PrintError as exc:
                log.warning("print job %s: %s: %s", job, " ".join(argv), exc)
                continue
            if code != 0 and "not found" not in out.lower() and "already" not in out.lower():
                log.warning("print job %s: %s: %s", job, " ".join(argv), out)
