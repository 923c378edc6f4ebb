"""Running one of the programs paper goes through (lp, lpstat, cancel, pdftoppm, scanimage): bytes in on its
standard input, bytes out on its standard output, nothing on disk; a time limit, an output limit, and the program
killed (and waited for) when either is passed or its caller is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.errors import GatewayError


class ProgramMissing(GatewayError, FileNotFoundError):
    """The program is not installed."""


class ProgramTimeout(GatewayError, TimeoutError):
    """The program did not finish in time (it was killed)."""


class ProgramOutputTooLarge(GatewayError, ValueError):
    """The program wrote more than allowed (it was killed)."""


@dataclass(frozen=True, slots=True)
class Finished:
    returncode: int
    stdout: bytes = field(repr=False)
    stderr: bytes


async def run_program(
    argv: list[str],
    *,
    stdin: bytes | None = None,
    timeout: float,
    env: Mapping[str, str] | None = None,
    max_stdout: int | None = None,
) -> Finished:
    """Run `argv` to its end (stdout and stderr kept apart).

    Raises:
        ProgramMissing, ProgramTimeout, ProgramOutputTooLarge.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env} if env is not None else None,
        )
    except FileNotFoundError:
        raise ProgramMissing(f"{argv[0]} is not installed") from None
    try:
        async with asyncio.timeout(timeout):
            out, err = await _collect(proc, stdin, max_stdout)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        if isinstance(exc, TimeoutError):
            raise ProgramTimeout(f"{argv[0]} did not finish within {timeout:g} s") from None
        raise
    assert proc.returncode is not None
    return Finished(proc.returncode, out, err)


async def _collect(
    proc: asyncio.subprocess.Process, stdin: bytes | None, max_stdout: int | None
) -> tuple[bytes, bytes]:
    assert proc.stdout is not None and proc.stderr is not None

    async def feed() -> None:
        if stdin is None or proc.stdin is None:
            return
        proc.stdin.write(stdin)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await proc.stdin.drain()
        proc.stdin.close()

    feeder = asyncio.ensure_future(feed())
    errors = asyncio.ensure_future(proc.stderr.read())
    try:
        chunks: list[bytes] = []
        size = 0
        while chunk := await proc.stdout.read(1 << 20):
            size += len(chunk)
            if max_stdout is not None and size > max_stdout:
                raise ProgramOutputTooLarge(f"more than {max_stdout >> 20} MB of output")
            chunks.append(chunk)
        await feeder
        err = await errors
        await proc.wait()
    finally:
        for task in (feeder, errors):
            task.cancel()
    return b"".join(chunks), err
