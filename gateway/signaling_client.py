"""The cabin's WebSocket connection to signaling, speaking signaling.protocol."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Final

import aiohttp

from gateway.config import CabinConfig
from gateway.errors import GatewayError
from gateway.lifecycle import AsyncResource
from signaling.protocol import Error, Hello, Message, Ping, Pong, ProtocolError, Welcome, dump, parse

log = logging.getLogger("cabine.gateway.signaling")

# Every network wait is bounded: reaching the server and being welcomed, and each send. Receiving is bounded by the
# WebSocket heartbeat (a ping every HEARTBEAT s; no pong within half of it closes the connection).
CONNECT_TIMEOUT: Final = 15.0
# A TCP connection that is not up within this is tried again afresh: after a cut, a new SYN gets through at once,
# where the kernel's own retries would back off (1 s, 3 s, 7 s...).
SOCKET_CONNECT_TIMEOUT: Final = 3.0
SEND_TIMEOUT: Final = 10.0
HEARTBEAT: Final = 15.0


# permessage-deflate with a 1 KiB window: a heartbeat repeats the one before it, so it travels in tens of bytes
# instead of hundreds (a cabin on a metered 4G link), for a few KiB of zlib state per connection on the server.
COMPRESS_WINDOW_BITS: Final = 10


class SignalingUnavailable(GatewayError, ConnectionError):
    """Signaling could not be reached, or closed the connection."""


class SignalingRefused(GatewayError, PermissionError):
    """Signaling refused the cabin's credential: retrying will not help until the configuration changes."""


class SignalingClient(AsyncResource):
    """One authenticated connection; an async context manager. Reconnection is the caller's loop."""

    def __init__(self, config: CabinConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.welcome: Welcome | None = None
        # Seconds from our hello to the server's welcome, and when (Unix time) the welcome arrived: with the
        # welcome's server_time they give the clock offset to the server.
        self.round_trip: float | None = None
        self.welcomed_at: float | None = None
        self._pings: dict[int, asyncio.Future[float]] = {}
        self._next_ping = 1

    def _ssl(self) -> ssl.SSLContext | bool:
        if self._config.ca_file is not None:
            return ssl.create_default_context(cafile=str(self._config.ca_file))
        return True

    async def __aenter__(self) -> SignalingClient:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self._connect()
        except TimeoutError:
            await self.close()
            raise SignalingUnavailable(
                f"no welcome from signaling at {self._config.signaling_url} within {CONNECT_TIMEOUT:g} s"
            ) from None
        except BaseException:
            await self.close()
            raise
        return self

    async def _connect(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_connect=SOCKET_CONNECT_TIMEOUT))
        try:
            self._ws = await self._session.ws_connect(
                self._config.ws_url(),
                ssl=self._ssl(),
                heartbeat=HEARTBEAT,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                compress=COMPRESS_WINDOW_BITS,
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise SignalingUnavailable(f"cannot reach signaling at {self._config.signaling_url}: {exc}") from exc
        sent = time.monotonic()
        await self.send(Hello(token=self._config.identity.proof(datetime.now(UTC))))
        first = await self._receive()
        self.round_trip = time.monotonic() - sent
        self.welcomed_at = time.time()
        if isinstance(first, Error):
            raise SignalingRefused(f"signaling refused this cabin: {first.message} ({first.code})")
        if not isinstance(first, Welcome):
            raise SignalingUnavailable(f"unexpected first message {first.type!r} from signaling")
        self.welcome = first

    async def send(self, message: Message) -> None:
        if self._ws is None or self._ws.closed:
            raise SignalingUnavailable("not connected to signaling")
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await self._ws.send_str(dump(message))
        except TimeoutError:
            raise SignalingUnavailable(f"signaling did not take a message within {SEND_TIMEOUT:g} s") from None
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise SignalingUnavailable(f"lost signaling while sending: {exc}") from exc

    async def _receive(self) -> Message:
        if self._ws is None:
            raise SignalingUnavailable("not connected to signaling")
        while True:
            msg = await self._ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    message = parse(msg.data)
                except ProtocolError as exc:
                    log.warning("cabin %s: ignored a bad message from signaling: %s", self._config.cabin_id, exc)
                    continue
                if isinstance(message, Pong):
                    waiter = self._pings.pop(message.id, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(time.monotonic())
                    continue
                return message
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                code = self._ws.close_code
                raise SignalingUnavailable(f"signaling closed the connection (code {code})")
            if msg.type is aiohttp.WSMsgType.ERROR:
                raise SignalingUnavailable(f"signaling connection error: {self._ws.exception()}")

    async def probe(self, timeout: float) -> float:
        """Round trip of a ping to signaling, in seconds (answered while `messages()` is being read).

        Raises:
            SignalingUnavailable: no answer within `timeout` (the connection is then closed: it is dead or too slow
                to be trusted), or not connected.
        """
        ident = self._next_ping
        self._next_ping += 1
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pings[ident] = waiter
        sent = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                await self.send(Ping(id=ident))
                answered = await waiter
        except TimeoutError:
            log.warning(
                "cabin %s: no answer from signaling within %.1f s; reconnecting", self._config.cabin_id, timeout
            )
            await self.abort()
            raise SignalingUnavailable(f"signaling did not answer a ping within {timeout:g} s") from None
        finally:
            self._pings.pop(ident, None)
        return answered - sent

    async def abort(self) -> None:
        """Drop the connection without a closing handshake (over a dead link it would only wait)."""
        ws = self._ws
        if ws is not None and not ws.closed:
            # The transport is closed at once; `receive()` in the message loop then ends with CLOSED.
            connection = ws._response.connection
            if connection is not None and connection.transport is not None:
                connection.transport.abort()
            else:
                await ws.close()

    async def messages(self) -> AsyncIterator[Message]:
        """Messages until the connection ends (then SignalingUnavailable)."""
        while True:
            yield await self._receive()

    async def close(self) -> None:
        ws, session = self._ws, self._session
        self._ws = self._session = None
        if ws is not None and not ws.closed:
            await ws.close()
        if session is not None:
            await session.close()
