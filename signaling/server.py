"""Running the signaling app on a socket: an async context manager used by `cabine serve` and the demo."""

from __future__ import annotations

import contextlib
import secrets
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from signaling.app import RedactingAccessLogger, create_app
from signaling.config import ServerConfig
from signaling.tls import write_private
from signaling.tokens import TokenSigner


@contextlib.asynccontextmanager
async def serve(
    config: ServerConfig, host: str, port: int, ssl_context: ssl.SSLContext | None
) -> AsyncIterator[web.AppRunner]:
    """Listen on host:port (TLS unless `ssl_context` is None) until the context exits.

    Raises:
        OSError: the address cannot be bound (in use, not local, no permission).
    """
    runner = web.AppRunner(create_app(config), access_log_class=RedactingAccessLogger, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        yield runner
    finally:
        await runner.cleanup()


def load_or_create_signer(path: Path) -> TokenSigner:
    """The server's link-signing key, created on first run (mode 0600, git-ignored)."""
    if path.exists():
        return TokenSigner.from_pem(path.read_bytes())
    signer = TokenSigner.generate()
    write_private(path, signer.private_pem())
    return signer


def load_or_create_operator_key(path: Path) -> str:
    """The operator's API key, created on first run (mode 0600): the CLI reads the same file."""
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(32)
    write_private(path, key.encode() + b"\n")
    return key
