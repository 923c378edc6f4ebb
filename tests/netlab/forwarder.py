"""A user-space UDP and TCP forwarder that delays what it forwards: the lab's delay and jitter (no netem here).

It listens on an address:port and forwards to a target, holding each UDP datagram and each TCP chunk for a delay
drawn from a `DelayProfile`, per direction. UDP datagrams are independent, so jitter larger than the gap between
two datagrams reorders them (as a real network does); TCP chunks leave in order (each is held at least until the
previous one has left). Every client (source address) gets its own upstream UDP socket, bound to the listening
address, so the target sees one flow per client, as through a router. Queues are bounded: beyond `udp_queue`
datagrams in flight a datagram is dropped; beyond `tcp_queue` chunks the reading side stops reading (TCP's own
flow control then slows the sender).

Run it on the loop of the namespace it must listen in (a NetnsThread); start() and every call belong to that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Self

from tests.netlab.errors import NetlabError
from tests.netlab.resource import Started

Address = tuple[str, int]

_DATAGRAM_MAX: Final = 65_535
_READS_PER_WAKEUP: Final = 64
_CHUNK: Final = 65_536
_CONNECT_TIMEOUT: Final = 5.0


class Jitter(StrEnum):
    """How the delay varies around its mean."""

    UNIFORM = "uniform"  # delay ± jitter, evenly
    NORMAL = "normal"  # a normal law: jitter is the standard deviation


class Direction(StrEnum):
    TO_TARGET = "to-target"
    TO_CLIENT = "to-client"


@dataclass(frozen=True, slots=True)
class DelayProfile:
    """One direction's delay: `delay_ms` ± `jitter_ms`, never below zero.

    Raises:
        NetlabError: a negative or non-finite value.
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter: Jitter = Jitter.UNIFORM

    def __post_init__(self) -> None:
        for name in ("delay_ms", "jitter_ms"):
            value = getattr(self, name)
            if value < 0 or not math.isfinite(value):
                raise NetlabError(f"{name} must be a finite number >= 0, not {value}")

    def sample(self, rng: random.Random) -> float:
        """One delay, in seconds."""
        if self.jitter_ms == 0:
            ms = self.delay_ms
        elif self.jitter is Jitter.NORMAL:
            ms = rng.gauss(self.delay_ms, self.jitter_ms)
        else:
            ms = self.delay_ms + rng.uniform(-self.jitter_ms, self.jitter_ms)
        return max(0.0, ms) / 1000


@dataclass(frozen=True, slots=True)
class ForwarderStats:
    """What went through so far: datagrams or chunks forwarded and dropped, per direction."""

    forwarded_to_target: int
    forwarded_to_client: int
    dropped_to_target: int
    dropped_to_client: int
    udp_clients: int
    tcp_connections: int


@dataclass(slots=True)
class _Counters:
    forwarded: dict[Direction, int] = field(default_factory=lambda: dict.fromkeys(Direction, 0))
    dropped: dict[Direction, int] = field(default_factory=lambda: dict.fromkeys(Direction, 0))
    udp_clients: int = 0
    tcp_connections: int = 0


@dataclass(slots=True)
class _UdpClient:
    sock: socket.socket
    last_seen: float


class Forwarder(Started):
    """UDP and TCP from `listen` to `target`, each direction delayed by its DelayProfile; close() is safe twice."""

    def __init__(
        self,
        listen: Address,
        target: Address,
        *,
        udp: bool = True,
        tcp: bool = True,
        to_target: DelayProfile | None = None,
        to_client: DelayProfile | None = None,
        udp_queue: int = 4096,
        tcp_queue: int = 64,
        udp_idle_timeout: float = 120.0,
        seed: int | None = None,
    ) -> None:
        if not (udp or tcp):
            raise NetlabError("a forwarder needs UDP, TCP or both")
        self.listen = listen
        self.target = target
        self._udp = udp
        self._tcp = tcp
        self._profiles: dict[Direction, DelayProfile] = {}
        self.set_profile(to_target or DelayProfile(), to_client)
        self._udp_queue = udp_queue
        self._tcp_queue = tcp_queue
        self._udp_idle = udp_idle_timeout
        self._rng = random.Random(seed)
        self._counters = _Counters()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listen_sock: socket.socket | None = None
        self._clients: dict[Address, _UdpClient] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._next_timer = 0
        self._in_flight = dict.fromkeys(Direction, 0)
        self._sweeper: asyncio.Task[None] | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closed = False

    # --- configuration and figures ------------------------------------------------------------------------------

    def set_profile(self, to_target: DelayProfile, to_client: DelayProfile | None = None) -> None:
        """Change the delays from now on (the other direction gets the same unless given)."""
        self._profiles = {Direction.TO_TARGET: to_target, Direction.TO_CLIENT: to_client or to_target}

    def profile(self, direction: Direction) -> DelayProfile:
        return self._profiles[direction]

    def stats(self) -> ForwarderStats:
        c = self._counters
        return ForwarderStats(
            forwarded_to_target=c.forwarded[Direction.TO_TARGET],
            forwarded_to_client=c.forwarded[Direction.TO_CLIENT],
            dropped_to_target=c.dropped[Direction.TO_TARGET],
            dropped_to_client=c.dropped[Direction.TO_CLIENT],
            udp_clients=c.udp_clients,
            tcp_connections=c.tcp_connections,
        )

    # --- life cycle ---------------------------------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen (UDP and/or TCP on the same address and port).

        Raises:
            NetlabError: the address cannot be bound.
        """
        self._loop = asyncio.get_running_loop()
        try:
            if self._udp:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._listen_sock = sock
                sock.setblocking(False)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(self.listen)
                self._loop.add_reader(sock, self._from_clients, sock)
                self._sweeper = self._loop.create_task(self._sweep(), name=f"forwarder-sweep-{self.listen}")
            if self._tcp:
                self._server = await asyncio.start_server(
                    self._accept, self.listen[0], self.listen[1], reuse_address=True, limit=_CHUNK
                )
        except OSError as exc:
            await self.close()
            raise NetlabError(f"the forwarder cannot listen on {self.listen}: {exc}") from exc
        return self

    async def close(self) -> None:
        """Stop listening, drop what is held, close every socket and await every task; safe twice."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = [*self._connections, *([self._sweeper] if self._sweeper is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in self._clients.values():
            self._close_udp(client.sock)
        self._clients.clear()
        if self._listen_sock is not None:
            self._close_udp(self._listen_sock)
        if self._server is not None:
            await self._server.wait_closed()

    # --- UDP ----------------------------------------------------------------------------------------------------

    def _close_udp(self, sock: socket.socket) -> None:
        if self._loop is not None and sock.fileno() >= 0:
            self._loop.remove_reader(sock)
        sock.close()

    def _from_clients(self, listen_sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(_READS_PER_WAKEUP):
            try:
                data, addr = listen_sock.recvfrom(_DATAGRAM_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error for an earlier send: nothing to forward
            client = self._clients.get(addr) or self._new_client(loop, listen_sock, addr)
            if client is None:
                self._counters.dropped[Direction.TO_TARGET] += 1
                continue
            client.last_seen = loop.time()
            self._hold(Direction.TO_TARGET, client.sock.send, data)

    def _new_client(
        self, loop: asyncio.AbstractEventLoop, listen_sock: socket.socket, addr: Address
    ) -> _UdpClient | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((self.listen[0], 0))
            sock.connect(self.target)
        except OSError:
            sock.close()
            return None
        client = _UdpClient(sock, loop.time())
        self._clients[addr] = client
        self._counters.udp_clients += 1

        def to_client(data: bytes) -> None:
            listen_sock.sendto(data, addr)

        loop.add_reader(sock, self._from_target, sock, to_client)
        return client

    def _from_target(self, sock: socket.socket, to_client: Callable[[bytes], None]) -> None:
        for _ in range(_READS_PER_WAKEUP):
            try:
                data = sock.recv(_DATAGRAM_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # "connection refused": the target's port was closed when we sent
            self._hold(Direction.TO_CLIENT, to_client, data)

    def _hold(self, direction: Direction, send: Callable[[bytes], object], data: bytes) -> None:
        """Send `data` after this direction's delay, or drop it if too many are already held."""
        loop = asyncio.get_running_loop()
        if self._in_flight[direction] >= self._udp_queue:
            self._counters.dropped[direction] += 1
            return
        self._in_flight[direction] += 1
        key = self._next_timer
        self._next_timer += 1
        due = loop.time() + self._profiles[direction].sample(self._rng)
        self._timers[key] = loop.call_at(due, self._release, key, direction, send, data)

    def _release(self, key: int, direction: Direction, send: Callable[[bytes], object], data: bytes) -> None:
        self._timers.pop(key, None)
        self._in_flight[direction] -= 1
        try:
            send(data)
        except OSError:
            self._counters.dropped[direction] += 1  # a full socket buffer or a closed client: UDP loses it
        else:
            self._counters.forwarded[direction] += 1

    async def _sweep(self) -> None:
        """Forget clients idle for longer than the idle timeout (a NAT's mapping timeout)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(self._udp_idle / 4, 0.05))
            now = loop.time()
            for addr, client in list(self._clients.items()):
                if now - client.last_seen > self._udp_idle:
                    del self._clients[addr]
                    self._close_udp(client.sock)

    # --- TCP ----------------------------------------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback (not a coroutine) so that the connection's task is ours to keep and cancel.
        if self._closed:
            writer.close()
            return
        self._counters.tcp_connections += 1
        task = asyncio.get_running_loop().create_task(self._relay(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        target_writer: asyncio.StreamWriter | None = None
        try:
            local = None if self.listen[0] in ("", "0.0.0.0") else (self.listen[0], 0)
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                target_reader, target_writer = await asyncio.open_connection(
                    self.target[0], self.target[1], local_addr=local, limit=_CHUNK
                )
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(client_reader, target_writer, Direction.TO_TARGET))
                group.create_task(self._pump(target_reader, client_writer, Direction.TO_CLIENT))
        except* (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass  # a reset or an unreachable target ends this connection only
        finally:
            for writer in (client_writer, target_writer):
                if writer is not None:
                    writer.close()
            for writer in (client_writer, target_writer):
                if writer is not None:
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Direction) -> None:
        """One direction of a TCP connection: chunks held in order, then the end of stream passed on."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(self._tcp_queue)

        async def read() -> None:
            last_due = 0.0
            while True:
                data = await reader.read(_CHUNK)
                # Never before the previous chunk: a stream keeps its order whatever the jitter.
                last_due = max(last_due, loop.time() + self._profiles[direction].sample(self._rng))
                await queue.put((last_due, data))
                if not data:
                    return

        async def write() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
                self._counters.forwarded[direction] += 1

        async with asyncio.TaskGroup() as group:
            group.create_task(read())
            group.create_task(write())
