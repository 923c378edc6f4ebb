"""A private PostgreSQL server for the tests: Debian's binaries, a cluster made by initdb in a temporary directory,
listening on a Unix socket there only (no TCP), trust authentication, stopped and removed after.

As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root) and dies with the test process
(`setpriv --pdeathsig KILL`). Each test gets a database of its own: `server.database()` returns its URL.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.conftest import unavailable

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def postgres_bin() -> Path | None:
    return next((d for d in BIN_DIRS if (d / "postgres").exists() and (d / "initdb").exists()), None)


class PrivatePostgres:
    """`with PrivatePostgres() as server:` a cluster at `server.socket_dir`, superuser `cabine`, no password."""

    def __init__(self) -> None:
        found = postgres_bin()
        if found is None:
            unavailable("PostgreSQL is not installed (Debian package postgresql; .ci/run installs it)")
        assert found is not None
        self.bin = found
        self.root = Path(tempfile.mkdtemp(prefix="cabine-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.port = 5432
        self._proc: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []

    def _user_prefix(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        return ["setpriv", "--reuid", "postgres", "--regid", "postgres", "--init-groups", "--pdeathsig", "KILL", "--"]

    def __enter__(self) -> Self:
        self._as = self._user_prefix()
        self.socket_dir.mkdir(parents=True)
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
        subprocess.run(
            [*self._as, str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "cabine", "--no-sync",
             "-E", "UTF8", "--locale=C"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self._proc = subprocess.Popen(
            [*self._as, str(self.bin / "postgres"), "-D", str(self.data), "-k", str(self.socket_dir),
             "-c", "listen_addresses=", "-p", str(self.port), "-c", "fsync=off", "-c", "max_connections=100"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", str(self.socket_dir), "-p", str(self.port), "-U", "cabine"],
                capture_output=True,
                timeout=10,
            )
            if ready.returncode == 0:
                return self
            if self._proc.poll() is not None or time.monotonic() > deadline:
                error = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                self.close()
                raise RuntimeError(f"PostgreSQL did not start: {error[-2000:]}")
            time.sleep(0.1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://cabine@/{database}?host={self.socket_dir}&port={self.port}"

    def database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = "cabine_" + secrets.token_hex(6)
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
