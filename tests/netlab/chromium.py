"""Chromium inside a namespace for Playwright: a wrapper script to pass as `executable_path`."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Final

from tests.netlab.errors import NetlabError

CHROMIUM_BINARY: Final = Path("/usr/lib/chromium/chromium")


def chromium_in(ns: str, directory: Path, *, binary: Path = CHROMIUM_BINARY) -> Path:
    """Write `<directory>/chromium-<ns>`, which execs Chromium inside `ns`; returns its path.

    Playwright drives Chromium over inherited pipes, which survive the exec; every Chromium process then lives in
    the namespace (and the lab's close() kills any that outlive the browser context).

    Raises:
        NetlabError: the Chromium binary or `ip` is missing.
    """
    if not binary.exists():
        raise NetlabError(f"no Chromium at {binary} (apt-get install chromium)")
    ip = shutil.which("ip") or "/usr/sbin/ip"
    if not Path(ip).exists():
        raise NetlabError("no `ip` command (apt-get install iproute2)")
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / f"chromium-{ns}"
    script.write_text(
        f'#!/bin/sh\nexec {shlex.quote(ip)} netns exec {shlex.quote(ns)} {shlex.quote(str(binary))} "$@"\n'
    )
    script.chmod(0o755)
    return script
