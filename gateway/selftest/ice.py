"""The ICE servers check: each STUN/TURN server the Welcome names answers, and a TURN server takes the credentials.

A STUN Binding request (aioice's STUN messages) over UDP, or over TCP or TLS as the URL says; for a TURN URL with
credentials, a real allocation instead (aioice's TURN client), released at once: a TURN server that refuses the
credentials otherwise goes unnoticed until a call fails to connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aioice import stun
from aioice.turn import create_turn_endpoint

from gateway.selftest.report import failed, ok, skipped, warning
from signaling.protocol import IceServer, IceUrl, ProtocolError, SelftestCheck

NAME: Final = "ice-servers"
_FIRST_RTO: Final = 0.5  # RFC 8489's initial retransmission timeout for STUN over UDP
_RELEASE_TIMEOUT: Final = 2.0
_HEADER: Final = 20


@dataclass(frozen=True, slots=True)
class IceResult:
    """One server URL's outcome; `detail` never holds a credential."""

    url: str
    reachable: bool
    detail: str


def ice_check(results: Sequence[IceResult], *, required: bool = True) -> SelftestCheck:
    """The verdict on every URL: ok if all answer, a warning if some do, failed if none does."""
    if not results:
        return skipped(NAME, "none configured: host candidates only")
    good = sum(r.reachable for r in results)
    listed = "; ".join(f"{r.url} {r.detail}" for r in results)
    summary = f"{good} of {len(results)} reachable: {listed}"
    if good == len(results):
        return ok(NAME, summary, required=required)
    if good:
        return warning(NAME, summary, required=required)
    return failed(NAME, summary, required=required)


class _StunDatagram(asyncio.DatagramProtocol):
    """Waits for the answer to one STUN transaction on a connected UDP socket."""

    def __init__(self, transaction_id: bytes) -> None:
        self._id = transaction_id
        self.answer: asyncio.Future[stun.Message] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        if message.transaction_id == self._id and not self.answer.done():
            self.answer.set_result(message)

    def error_received(self, exc: Exception) -> None:
        # An ICMP "port unreachable" arrives here on a connected socket: nothing listens there.
        if not self.answer.done():
            self.answer.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("socket closed"))


def _binding_request() -> stun.Message:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.add_fingerprint()
    return request


def _answered(request: stun.Message, answer: stun.Message) -> None:
    """Raises: stun.TransactionFailed: the server answered with an error."""
    if answer.message_class != stun.Class.RESPONSE:
        raise stun.TransactionFailed(answer)


async def _binding_udp(url: IceUrl) -> None:
    """A Binding request over UDP, retransmitted with doubling delays until answered (the caller's timeout)."""
    request = _binding_request()
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _StunDatagram(request.transaction_id), remote_addr=(url.host, url.port)
    )
    try:
        delay = _FIRST_RTO
        while True:
            transport.sendto(bytes(request))
            try:
                async with asyncio.timeout(delay):
                    answer = await asyncio.shield(protocol.answer)
                break
            except TimeoutError:
                delay *= 2
        _answered(request, answer)
    finally:
        transport.close()
        if not protocol.answer.done():
            protocol.answer.cancel()


async def _binding_stream(url: IceUrl, tls: ssl.SSLContext | None) -> None:
    """A Binding request over TCP, or TLS for stuns:/turns:."""
    request = _binding_request()
    context = (tls or ssl.create_default_context()) if url.secure else None
    reader, writer = await asyncio.open_connection(url.host, url.port, ssl=context)
    try:
        writer.write(bytes(request))
        await writer.drain()
        # STUN over a stream: each message is its 20-byte header and the body length it announces.
        header = await reader.readexactly(_HEADER)
        (length,) = struct.unpack("!H", header[2:4])
        answer = stun.parse_message(header + await reader.readexactly(length))
        if answer.transaction_id != request.transaction_id:
            raise ConnectionError("the server answered another request")
        _answered(request, answer)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class _Released(asyncio.DatagramProtocol):
    """Learns when the TURN allocation is given back and its socket closed."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _allocate(url: IceUrl, username: str, credential: str, tls: ssl.SSLContext | None) -> _Released:
    """A TURN allocation with the credentials (the relay a call would use); the caller releases it."""
    context: ssl.SSLContext | None = (tls or ssl.create_default_context()) if url.secure else None
    transport, released = await create_turn_endpoint(
        _Released, (url.host, url.port), username, credential, ssl=context, transport=url.transport
    )
    transport.close()  # deletes the allocation (a Refresh with lifetime 0), then closes the socket
    return released


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _failure(exc: BaseException) -> str:
    """Why a server did not answer, in a few words."""
    if isinstance(exc, stun.TransactionFailed):
        code = exc.response.attributes.get("ERROR-CODE")
        if code is not None and code[0] in (401, 403, 431, 437, 438, 441):
            return f"refused the credentials ({code[0]} {code[1]})"
        return f"refused ({code[0]} {code[1]})" if code is not None else "answered with an error"
    if isinstance(exc, stun.TransactionTimeout):
        return "no answer"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "closed the connection without answering"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return f"unexpected {type(exc).__name__}: {exc}"


async def probe_url(
    url: str, username: str | None, credential: str | None, *, timeout: float, tls: ssl.SSLContext | None = None
) -> IceResult:
    """Whether one server URL answers within `timeout` seconds (never raises but for cancellation)."""
    try:
        parsed = IceUrl.parse(url)
    except ProtocolError as exc:
        return IceResult(url, False, str(exc))
    turn = parsed.scheme.startswith("turn") and username is not None and credential is not None
    started = time.monotonic()
    released: _Released | None = None
    try:
        async with asyncio.timeout(timeout):
            if turn and username is not None and credential is not None:
                released = await _allocate(parsed, username, credential, tls)
            elif parsed.transport == "udp":
                await _binding_udp(parsed)
            else:
                await _binding_stream(parsed, tls)
    except TimeoutError:
        return IceResult(url, False, f"no answer within {timeout:g} s")
    except Exception as exc:  # every way a server can fail to answer becomes its sentence
        return IceResult(url, False, _failure(exc))
    elapsed = time.monotonic() - started
    if released is not None:
        # Wait for the allocation to be given back, so that nothing is left running; the verdict is already known.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_RELEASE_TIMEOUT):
                await released.closed
        return IceResult(url, True, f"relay allocated in {_ms(elapsed)}")
    return IceResult(url, True, f"answered in {_ms(elapsed)}")


async def probe_ice(
    servers: Sequence[IceServer], *, timeout: float = 3.0, tls: ssl.SSLContext | None = None, required: bool = True
) -> SelftestCheck:
    """The ICE servers check: every URL of every server, concurrently."""
    probes = [
        probe_url(url, server.username, server.credential, timeout=timeout, tls=tls)
        for server in servers
        for url in server.urls
    ]
    return ice_check(await asyncio.gather(*probes), required=required)
