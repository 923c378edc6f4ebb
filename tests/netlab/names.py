"""Namespace names that carry their creator's pid, and the cleaner of names whose creator is dead.

A name is `<prefix><pid>x<token>-<role>`, e.g. `cnl4242x9f3a-cabin-router`: unique per run (pid and a random
token), and a later run can tell a leftover (its pid no longer exists) from a parallel run's namespace.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.netlab.inns import netns_list, run_sync

PREFIX: Final = "cnl"


@dataclass(frozen=True, slots=True)
class LabName:
    """The parts of one of our namespace names."""

    prefix: str
    pid: int
    token: str
    role: str

    def __str__(self) -> str:
        return f"{self.prefix}{self.pid}x{self.token}-{self.role}"


def new_token() -> str:
    """A short random token that tells apart two labs of one process."""
    return secrets.token_hex(3)


def lab_name(role: str, *, token: str, prefix: str = PREFIX, pid: int | None = None) -> str:
    """The namespace name of `role` in the lab `token` of this process."""
    return str(LabName(prefix, os.getpid() if pid is None else pid, token, role))


def parse_name(name: str, *, prefix: str = PREFIX) -> LabName | None:
    """The parts of `name`, or None if it is not one of ours."""
    match = re.fullmatch(rf"{re.escape(prefix)}(\d+)x([0-9a-f]+)-([a-z][a-z-]*)", name)
    if match is None:
        return None
    return LabName(prefix, int(match[1]), match[2], match[3])


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the command name, which is in parentheses and may itself hold any character.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def kill_namespace_processes(ns: str) -> list[int]:
    """SIGKILL every process inside `ns` (a namespace is only gone once nothing runs in it); returns their pids."""
    out = run_sync(["ip", "netns", "pids", ns], check=False)
    pids = [int(word) for word in out.split() if word.isdigit() and int(word) != os.getpid()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def delete_namespace(ns: str) -> None:
    """Kill what runs in `ns`, then delete it (its veth ends and tun devices go with it); safe if already gone."""
    kill_namespace_processes(ns)
    run_sync(["ip", "netns", "delete", ns], check=False)


def clean_leftovers(*, prefix: str = PREFIX) -> list[str]:
    """Delete namespaces with our prefix whose creator pid is dead; returns the names deleted."""
    removed = []
    for name in netns_list():
        parsed = parse_name(name, prefix=prefix)
        if parsed is not None and not pid_alive(parsed.pid):
            delete_namespace(name)
            removed.append(name)
    return removed
