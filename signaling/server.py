"""Running the signaling app on a socket: an async context manager used by `cabine serve` and the demo.

`Listener.bind` takes the address first, before any key, certificate or database is made, so that a port already
in use changes nothing; `serve` then runs the app on the bound sockets.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import gc
import secrets
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

from aiohttp import web

from signaling.app import RedactingAccessLogger, create_app
from signaling.config import ServerConfig
from signaling.errors import SignalingError
from signaling.tls import write_private_once
from signaling.tokens import TokenSigner


class ListenError(SignalingError, OSError):
    """The address cannot be listened on; the message says which and why, e.g.
    "cannot listen on 127.0.0.1:8443: address already in use"."""


@dataclass(eq=False, slots=True)
class Listener:
    """Listening sockets bound to one host and port (the port actually bound, when 0 was asked for); closing is
    safe twice (serve's server closes them too)."""

    host: str
    port: int
    sockets: tuple[socket.socket, ...]

    @classmethod
    def bind(cls, host: str, port: int, *, backlog: int = 128) -> Listener:
        """Bind and listen on every address `host` resolves to (all interfaces for "" or 0.0.0.0/::).

        Raises:
            ListenError: the name does not resolve, or an address is in use, not local, or not allowed.
        """
        where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        try:
            infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ListenError(f"cannot listen on {where}: {_reason(exc)}") from None
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys((i[0], i[1], i[2], i[3], i[4]) for i in infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    # Each family gets its own socket, as asyncio does.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port == 0 and sockets[0] is not sock:
                    # Port 0 means "any free port": the same one on every address.
                    address = (address[0], sockets[0].getsockname()[1], *address[2:])
                sock.bind(address)
                sock.listen(backlog)
                sock.setblocking(False)
        except OSError as exc:
            for sock in sockets:
                sock.close()
            raise ListenError(f"cannot listen on {where}: {_reason(exc)}") from None
        return cls(host, sockets[0].getsockname()[1] if sockets else port, tuple(sockets))

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


# asyncio reads TLS into a buffer of 256 KiB per connection, kept for the connection's life: with two WebSockets a
# room, that is half a gigabyte for 1,000 rooms (bench/signaling_capacity.py --trace-memory). A TLS record holds
# 16 KiB at most: 32 KiB reads lose nothing, only large messages take a few more reads.
TLS_READ_BUFFER: Final = 32 * 1024


def limit_tls_buffers() -> None:
    """Make asyncio's TLS connections of this process read into 32 KiB buffers instead of 256 KiB."""
    asyncio.sslproto.SSLProtocol.max_size = min(asyncio.sslproto.SSLProtocol.max_size, TLS_READ_BUFFER)


@contextlib.asynccontextmanager
async def serve(
    config: ServerConfig,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    *,
    listener: Listener | None = None,
) -> AsyncIterator[web.AppRunner]:
    """Serve the app (TLS unless `ssl_context` is None) until the context exits, on `listener`'s sockets if given,
    else on host:port bound now.

    Raises:
        ListenError: host:port cannot be bound (in use, not local, no permission).
    """
    if ssl_context is not None:
        limit_tls_buffers()
    owned = listener is None
    bound = Listener.bind(host, port) if listener is None else listener
    try:
        runner = web.AppRunner(create_app(config), access_log_class=RedactingAccessLogger, handle_signals=False)
        await runner.setup()
        try:
            for sock in bound.sockets:
                await web.SockSite(runner, sock, ssl_context=ssl_context).start()
            yield runner
        finally:
            await runner.cleanup()
    finally:
        if owned:
            bound.close()


def settle_memory() -> None:
    """For a process that is now a server until it stops: what exists now (modules, the app) lives as long as the
    process, so the cyclic garbage collector's full collections, which hold the event loop (0.5 to 0.8 s with 7,000
    TLS WebSockets to a node, bench/signaling_capacity.py), stop looking at it. Garbage is collected first, so nothing
    dead is kept. (Young collections every 50,000 allocations instead of 700 made full collections rare but young
    ones as long as 190 ms, and the join's tail no better: the thresholds are left alone.)"""
    gc.collect()
    gc.freeze()


def load_or_create_signer(path: Path) -> TokenSigner:
    """The server's link-signing key, created on first run (mode 0600, git-ignored)."""
    if path.exists():
        return TokenSigner.from_pem(path.read_bytes())
    return TokenSigner.from_pem(write_private_once(path, TokenSigner.generate().private_pem()))


def load_or_create_operator_key(path: Path) -> str:
    """The operator's API key, created on first run (mode 0600): the CLI reads the same file."""
    if path.exists():
        return path.read_text().strip()
    return write_private_once(path, secrets.token_urlsafe(32).encode() + b"\n").decode().strip()
