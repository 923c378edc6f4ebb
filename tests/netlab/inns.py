"""Running things inside a network namespace: commands, long-lived processes, and an asyncio loop on a thread.

- `run(argv)` / `run_sync(argv)`: a short command (ip, nft, tc), its stdout, or NetlabError with its stderr.
- `spawn(ns, argv, log_path=...)`: a long-lived process started through `ip netns exec NS`, killed by the kernel
  if this process dies (`setpriv --pdeathsig KILL`), its stdout and stderr in a log file.
- `NetnsThread(ns)`: a thread that has entered the namespace (setns) and runs its own asyncio loop; every socket,
  thread or subprocess made on it lives in that namespace. `await thread.run(coro)` runs a coroutine there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

from tests.netlab.errors import NetlabError
from tests.netlab.resource import Started

T = TypeVar("T")

NETNS_DIR: Final = Path("/run/netns")
_CLONE_NEWNET: Final = 0x40000000
_RUN_TIMEOUT: Final = 10.0
_STOP_TIMEOUT: Final = 5.0
_ENTER_TIMEOUT: Final = 5.0


def _failed(argv: Sequence[str], returncode: int, stderr: bytes) -> NetlabError:
    message = stderr.decode(errors="replace").strip() or "no message"
    return NetlabError(f"`{' '.join(argv)}` failed ({returncode}): {message}")


async def run(argv: Sequence[str], *, stdin: str | None = None, timeout: float = _RUN_TIMEOUT) -> str:
    """Run a short command to completion; returns its stdout.

    Raises:
        NetlabError: it exited with a non-zero status, or did not finish within `timeout` seconds.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    except BaseException as exc:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if isinstance(exc, TimeoutError):
            raise NetlabError(f"`{' '.join(argv)}` did not finish within {timeout:g} s") from exc
        raise
    if proc.returncode:
        raise _failed(argv, proc.returncode, err)
    return out.decode()


def run_sync(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run a short command, blocking (for cleanup paths that a cancellation must not interrupt).

    Raises:
        NetlabError: with `check`, it exited with a non-zero status.
    """
    done = subprocess.run(
        list(argv),
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        timeout=_RUN_TIMEOUT,
        check=False,
    )
    if check and done.returncode:
        raise _failed(argv, done.returncode, done.stderr)
    return done.stdout.decode()


def netns_list() -> list[str]:
    """The names of the named network namespaces (`ip netns list`)."""
    try:
        return sorted(entry.name for entry in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def in_ns(ns: str, argv: Sequence[str]) -> list[str]:
    """`argv` as run inside namespace `ns`."""
    return ["ip", "netns", "exec", ns, *argv]


class NsProcess:
    """A process running inside a namespace, with its log; `terminate()` and `kill()` are safe twice."""

    def __init__(self, ns: str, argv: Sequence[str], log_path: Path, proc: asyncio.subprocess.Process) -> None:
        self.ns = ns
        self.argv = tuple(argv)
        self.log_path = log_path
        self._proc = proc

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def log_text(self) -> str:
        """Everything it wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def wait(self) -> int:
        return await self._proc.wait()

    async def terminate(self, timeout: float = _STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL if it is still there after `timeout` seconds; returns its exit status."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    return await asyncio.shield(self._proc.wait())
            except TimeoutError:
                pass
        return await self.kill()

    async def kill(self) -> int:
        """SIGKILL; returns its exit status."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        return await self._proc.wait()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.terminate()


async def spawn(
    ns: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> NsProcess:
    """Start `argv` inside namespace `ns`, stdout and stderr to `log_path`.

    The kernel kills it (SIGKILL) when the thread that spawned it dies, so spawn from the loop that outlives it
    (the test's own loop); `ip netns exec` execs the command in place, so the pid is the command's own. Returns
    once it is inside the namespace (its death signal is armed by then), or has already exited.

    Raises:
        NetlabError: the namespace does not exist, or the process did not enter it in time.
    """
    if not (NETNS_DIR / ns).exists():
        raise NetlabError(f"no network namespace {ns!r}")
    full = ["setpriv", "--pdeathsig", "KILL", "--", *in_ns(ns, argv)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *full,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            # Its own session: a Ctrl-C in the terminal reaches the test, whose cleanup then stops it in order.
            start_new_session=True,
        )
    process = NsProcess(ns, argv, log_path, proc)
    try:
        await _entered(proc, ns)
    except BaseException:
        await process.kill()
        raise
    return process


def _netns_id(path: Path) -> tuple[int, int] | None:
    """The identity of the namespace that `path` (a /run/netns entry or a /proc/PID/ns/net link) refers to."""
    try:
        found = path.stat()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return found.st_dev, found.st_ino


async def _entered(proc: asyncio.subprocess.Process, ns: str) -> None:
    """Wait until `proc` runs inside `ns` (setpriv has armed the death signal, `ip` has switched), or has exited.

    Without this wait a parent killed in the first milliseconds would leave the child behind, and
    `ip netns pids` would not list it yet.

    Raises:
        NetlabError: still outside the namespace after _ENTER_TIMEOUT seconds.
    """
    target = _netns_id(NETNS_DIR / ns)
    deadline = time.monotonic() + _ENTER_TIMEOUT
    while proc.returncode is None:
        current = _netns_id(Path(f"/proc/{proc.pid}/ns/net"))
        if current is None or current == target:
            return  # inside, or exited (a zombie has no namespaces left)
        if time.monotonic() > deadline:
            raise NetlabError(f"process {proc.pid} did not enter namespace {ns!r} within {_ENTER_TIMEOUT:g} s")
        await asyncio.sleep(0.002)


def _enter_netns(ns: str) -> None:
    """Move the calling thread into namespace `ns` (threads of one process may sit in different ones).

    Raises:
        NetlabError: the namespace does not exist or setns refused.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        fd = os.open(NETNS_DIR / ns, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NetlabError(f"no network namespace {ns!r}") from exc
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise NetlabError(f"setns into {ns!r} failed: {os.strerror(errno)}")
    finally:
        os.close(fd)


class NetnsThread(Started):
    """A thread inside network namespace `ns` running its own asyncio loop.

    `async with NetnsThread(ns) as thread: result = await thread.run(coro)`. Sockets, executor threads and
    subprocesses made on it are in `ns`. Objects made on its loop (transports, servers) belong to that loop: use
    them only from coroutines run there. Closing cancels what still runs there, stops the loop and joins the thread.
    """

    def __init__(self, ns: str, *, name: str | None = None) -> None:
        self.ns = ns
        self._name = name or f"netns-{ns}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready: concurrent.futures.Future[asyncio.AbstractEventLoop] = concurrent.futures.Future()
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The thread's loop.

        Raises:
            NetlabError: the thread is not running.
        """
        if self._loop is None or self._closed:
            raise NetlabError(f"the thread in {self.ns!r} is not running")
        return self._loop

    def _main(self) -> None:
        try:
            _enter_netns(self.ns)
            loop = asyncio.new_event_loop()
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        asyncio.set_event_loop(loop)
        self._ready.set_result(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def start(self) -> Self:
        """Start the thread and wait until its loop runs inside the namespace.

        Raises:
            NetlabError: the namespace does not exist or could not be entered.
        """
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        self._loop = await asyncio.wrap_future(self._ready)
        return self

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the thread's loop and return its result; cancelling the caller cancels it there.

        Raises:
            NetlabError: the thread is not running.
        """
        try:
            loop = self.loop
        except NetlabError:
            coro.close()
            raise
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()

    async def close(self) -> None:
        """Cancel and await what still runs on the loop, stop it, join the thread; safe twice."""
        if self._closed or self._thread is None or self._loop is None:
            self._closed = True
            return
        loop = self._loop
        try:
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._shutdown(), loop)))
        finally:
            self._closed = True
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(_STOP_TIMEOUT)
