"""A private CUPS scheduler for the tests, with one queue that prints to PDF files through cups-pdf.

`cupsd` runs in the foreground with its own configuration, spool and socket in a temporary directory (it dies with
the test: `setpriv --pdeathsig KILL`); the queue uses the real cups-pdf backend and its PPD, so a job goes through
CUPS's filters and comes out as a PDF whose pages the test counts. cups-pdf reads its settings from
/etc/cups/cups-pdf-<queue>.conf only (a compiled-in path): the queue has a unique name and its file is removed
when the scheduler stops. Needs root (cupsd drops to the `lp` user for filters), and Debian's cups,
cups-client and printer-driver-cups-pdf.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Self

from tests.conftest import need_tool, unavailable
from tests.netlab.resource import Started

PPD = Path("/usr/share/ppd/cups-pdf/CUPS-PDF_opt.ppd")
BACKEND = Path("/usr/lib/cups/backend/cups-pdf")


def need_cups() -> None:
    """Skip locally, fail under CI=true, without root or the CUPS packages."""
    need_tool("cupsd", "cups")
    need_tool("lpadmin", "cups-client")
    missing = [str(p) for p in (PPD, BACKEND) if not p.exists()]
    message = ""
    if missing:
        message = f"{', '.join(missing)} missing (Debian package printer-driver-cups-pdf; .ci/run installs it)"
    elif os.geteuid() != 0:
        message = "a private cupsd needs root (it runs its filters as the lp user)"
    if message:
        unavailable(message)


class PrivateCups(Started):
    """`async with PrivateCups() as cups:` a scheduler at `cups.server` (a socket) with the queue `cups.queue`."""

    def __init__(self) -> None:
        self.queue = "cabine-test-" + secrets.token_hex(4)
        self.root = Path(tempfile.mkdtemp(prefix="cabine-cups-"))
        self.out = self.root / "out"
        self.spool = self.root / "spool"
        self.server = str(self.root / "run" / "cups.sock")
        self._conf = Path("/etc/cups") / f"cups-pdf-{self.queue}.conf"
        self._proc: asyncio.subprocess.Process | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "CUPS_SERVER": self.server, "LC_ALL": "C"}

    async def run(self, *argv: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=self.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 15)
        text = out.decode(errors="replace")
        assert proc.returncode == 0, f"{' '.join(argv)}: {text}"
        return text

    async def start(self) -> Self:
        need_cups()
        root = self.root
        for name in ("etc", "spool/tmp", "cache", "log", "run", "out", "cpspool"):
            (root / name).mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        (root / "etc" / "cupsd.conf").write_text(
            f"Listen {self.server}\nLogLevel info\nWebInterface No\nMaxJobs 50\nPreserveJobFiles No\n"
            "<Location />\n  Order allow,deny\n  Allow all\n</Location>\n"
        )
        (root / "etc" / "cups-files.conf").write_text(
            "FileDevice No\n"
            f"ServerRoot {root / 'etc'}\nRequestRoot {self.spool}\nCacheDir {root / 'cache'}\n"
            f"StateDir {root / 'run'}\nTempDir {self.spool / 'tmp'}\nErrorLog {root / 'log' / 'error_log'}\n"
            f"AccessLog {root / 'log' / 'access_log'}\nPageLog {root / 'log' / 'page_log'}\n"
            "SystemGroup root\nUser lp\nGroup lp\n"
        )
        shutil.chown(self.spool, "lp", "lp")
        shutil.chown(self.spool / "tmp", "lp", "lp")
        shutil.chown(root / "cache", "lp", "lp")
        self._conf.write_text(
            f"Out {self.out}\nAnonDirName {self.out}\nSpool {root / 'cpspool'}\nLog {root / 'log'}\nLabel 0\nGrp root\n"
        )
        self._proc = await asyncio.create_subprocess_exec(
            "setpriv", "--pdeathsig", "KILL", "--", "cupsd", "-f",
            "-c", str(root / "etc" / "cupsd.conf"), "-s", str(root / "etc" / "cups-files.conf"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(AssertionError, TimeoutError):
                if "is running" in await self.run("lpstat", "-r"):
                    break
            if self._proc.returncode is not None or time.monotonic() > deadline:
                log = (root / "log" / "error_log").read_text() if (root / "log" / "error_log").exists() else ""
                await self.close()
                raise RuntimeError(f"cupsd did not start:\n{log[-2000:]}")
            await asyncio.sleep(0.1)
        await self.run("lpadmin", "-p", self.queue, "-E", "-v", f"cups-pdf:/{self.queue}", "-P", str(PPD))
        return self

    def printed(self) -> list[Path]:
        return sorted(self.out.glob("*.pdf"))

    def spooled(self) -> list[Path]:
        """Job files left in the scheduler's spool (c* control files and d* document files)."""
        return sorted(p for p in self.spool.iterdir() if p.is_file() and p.name[:1] in "cd")

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self._conf.unlink(missing_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)
