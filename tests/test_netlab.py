"""The network laboratory itself: NAT, firewall, coturn across both, link cuts, shaping, Chromium in a namespace.

Every server runs inside the lab's core namespace on a NetnsThread; every client inside the cabin's or the doctor's.
Ports inside a fresh namespace are free by construction, so the fixed ports below never clash with anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast

import pytest
from aiohttp import web
from aioice import stun
from aioice.turn import create_turn_endpoint

from tests.conftest import free_port
from tests.netlab import (
    CABIN_IP,
    CABIN_PUBLIC_IP,
    DOCTOR_IP,
    DOCTOR_PUBLIC_IP,
    SIGNALING_IP,
    TURN_IP,
    TURN_PORT,
    TURN_TLS_PORT,
    Coturn,
    DelayProfile,
    Forwarder,
    Jitter,
    Lab,
    LinkProfile,
    NetlabError,
    NetnsThread,
    Role,
    Side,
    chromium_in,
    clean_leftovers,
    credentials,
    run,
    spawn,
)
from tests.netlab.inns import in_ns, netns_list
from tests.netlab.names import PREFIX, lab_name, parse_name, pid_alive
from tests.netlab.nft import loss_commands

pytestmark = pytest.mark.timeout(60)

Address = tuple[str, int]
SECRET: Final = "netlab-test-secret"
UDP_PORT: Final = 5000
OTHER_TCP_PORT: Final = 8080
ANSWER_TIMEOUT: Final = 1.0
ROOT = Path(__file__).resolve().parent.parent


def _missing(what: str) -> None:
    """Skip locally, fail under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"the network laboratory needs {what} in CI")
    pytest.skip(f"the network laboratory needs {what}")


@pytest.fixture(autouse=True)
def _lab_prerequisites() -> None:
    if os.geteuid() != 0:
        _missing("root (network namespaces)")
    for program in ("ip", "nft", "tc", "setpriv"):
        if shutil.which(program) is None:
            _missing(f"`{program}` (apt-get install iproute2 nftables util-linux)")


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> None:
    """Await `check()` every 20 ms until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def _need_coturn() -> None:
    if shutil.which("turnserver") is None:
        _missing("`turnserver` (apt-get install coturn)")


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with Lab(tmp_path) as built:
        yield built


# --- little servers and clients, run on a namespace's thread ------------------------------------------------------


@dataclass
class Datagram:
    data: bytes
    source: Address
    at: float


class UdpServer(asyncio.DatagramProtocol):
    """Records every datagram (payload, source, arrival time) and echoes it back if asked."""

    def __init__(self, *, echo: bool, arrived: asyncio.Event) -> None:
        self.echo = echo
        self.seen: list[Datagram] = []
        self.arrived = arrived
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.seen.append(Datagram(data, (addr[0], addr[1]), time.monotonic()))
        self.arrived.set()
        if self.echo and self.transport is not None:
            self.transport.sendto(data, addr)


@dataclass
class UdpServers:
    """A few UdpServers sharing one "a datagram arrived" event."""

    servers: list[UdpServer] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def seen(self) -> list[Datagram]:
        return sorted((d for s in self.servers for d in s.seen), key=lambda d: d.at)

    async def wait_count(self, count: int, timeout: float) -> list[Datagram]:
        async with asyncio.timeout(timeout):
            while len(self.seen) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.seen

    async def close(self) -> None:
        for server in self.servers:
            if server.transport is not None:
                server.transport.close()


async def udp_servers(addresses: list[Address], *, echo: bool = False) -> UdpServers:
    loop = asyncio.get_running_loop()
    group = UdpServers()
    for address in addresses:
        _, protocol = await loop.create_datagram_endpoint(
            lambda: UdpServer(echo=echo, arrived=group.arrived), local_addr=address
        )
        group.servers.append(protocol)
    return group


class UdpClient:
    """A UDP socket on a namespace's loop that sends to any address and collects the answers."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def open(cls, bind: Address = ("0.0.0.0", 0)) -> UdpClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(bind)
        return cls(sock)

    async def send(self, data: bytes, address: Address) -> None:
        await asyncio.get_running_loop().sock_sendto(self.sock, data, address)

    async def receive(self, timeout: float) -> bytes | None:
        """One datagram, or None if none arrives within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                data, _ = await asyncio.get_running_loop().sock_recvfrom(self.sock, 65535)
        except TimeoutError:
            return None
        return data

    async def close(self) -> None:
        self.sock.close()


async def tcp_servers(addresses: list[Address]) -> list[asyncio.Server]:
    """TCP servers that echo whatever they receive until the client closes its side."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
        except OSError:
            pass
        finally:
            writer.close()

    return [await asyncio.start_server(echo, host, port) for host, port in addresses]


async def close_servers(servers: list[asyncio.Server]) -> None:
    for server in servers:
        server.close()
        await server.wait_closed()


async def tcp_connects(address: Address, timeout: float) -> bool:
    """Whether a TCP connection opens and a byte goes there and back within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(*address)
            try:
                writer.write(b"x")
                await writer.drain()
                return await reader.readexactly(1) == b"x"
            finally:
                writer.close()
    except TimeoutError:
        return False


# --- the topology ---------------------------------------------------------------------------------------------


async def test_namespaces_are_wired_as_drawn(lab: Lab) -> None:
    routes = await run(["ip", "-n", lab.ns(Role.CORE), "-4", "route", "show"])
    assert "default dev dead" in routes
    assert "198.51.100.0/24 dev to-cabin" in routes and "198.51.101.0/24 dev to-doctor" in routes
    assert len(routes.strip().splitlines()) == 3, routes
    for role in Role:
        assert "lo: <LOOPBACK,UP" in await run(["ip", "-n", lab.ns(role), "link", "show", "lo"])
        assert parse_name(lab.ns(role)) is not None
    assert CABIN_IP in await run(["ip", "-n", lab.ns(Role.CABIN), "-4", "-br", "addr"])
    assert "default via 192.168.1.1" in await run(["ip", "-n", lab.ns(Role.CABIN), "route"])
    assert DOCTOR_IP in await run(["ip", "-n", lab.ns(Role.DOCTOR), "-4", "-br", "addr"])
    assert "default via 10.10.0.1" in await run(["ip", "-n", lab.ns(Role.DOCTOR), "route"])
    ruleset = await run(in_ns(lab.ns(Role.CABIN_ROUTER), ["nft", "list", "ruleset"]))
    assert "masquerade random" in ruleset


async def test_threads_make_their_sockets_in_their_namespace(lab: Lab) -> None:
    async def bound(address: Address) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(address)
            return int(sock.getsockname()[1])

    async def listening(port: int) -> str:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((CABIN_IP, port))
            sock.listen()
            return await run(["ss", "-Htln"])  # run from the thread: the subprocess is in its namespace too

    async with lab.thread(Role.CABIN) as cabin, lab.thread(Role.DOCTOR) as doctor:
        assert await cabin.run(bound((CABIN_IP, 0))) > 0
        with pytest.raises(OSError, match="Cannot assign requested address"):
            await doctor.run(bound((CABIN_IP, 0)))
        with pytest.raises(OSError, match="Cannot assign requested address"):
            await bound((CABIN_IP, 0))  # the test's own loop is in the root namespace
        assert f"{CABIN_IP}:7777" in await cabin.run(listening(7777))
    with pytest.raises(NetlabError, match="not running"):
        await cabin.run(bound((CABIN_IP, 0)))
    with pytest.raises(NetlabError, match="no network namespace"):
        await NetnsThread("cnl-no-such-namespace").start()


async def test_spawn_runs_in_the_namespace_and_logs(lab: Lab, tmp_path: Path) -> None:
    process = await spawn(lab.ns(Role.DOCTOR), ["ip", "-4", "-br", "addr"], log_path=tmp_path / "ip.log")
    async with asyncio.timeout(5):
        assert await process.wait() == 0
    assert DOCTOR_IP in process.log_text()
    sleeper = await lab.spawn(Role.CABIN, ["sleep", "60"], name="sleeper")
    # spawn() returns once the process is inside the namespace.
    assert str(sleeper.pid) in (await run(["ip", "netns", "pids", lab.ns(Role.CABIN)])).split()
    assert await sleeper.terminate() == -signal.SIGTERM
    assert await sleeper.terminate() == -signal.SIGTERM  # safe twice


async def test_a_spawned_process_dies_with_its_parent(lab: Lab, tmp_path: Path) -> None:
    script = (
        "import asyncio, pathlib, sys\n"
        "from tests.netlab.inns import spawn\n"
        "async def main():\n"
        "    p = await spawn(sys.argv[1], ['sleep', '60'], log_path=pathlib.Path(sys.argv[2]))\n"
        "    print(p.pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        lab.ns(Role.CABIN),
        str(tmp_path / "orphan.log"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert parent.stdout is not None
        child = int(await asyncio.wait_for(parent.stdout.readline(), 15))
        assert pid_alive(child)
    finally:
        parent.kill()
        await parent.wait()

    async def orphan_gone() -> bool:
        return not pid_alive(child)

    await eventually(orphan_gone, timeout=5, what="the spawned process to die with its killed parent")


async def test_close_removes_everything_even_after_a_failure(tmp_path: Path) -> None:
    built = Lab(tmp_path)
    sleepers = []

    async def fail_inside() -> None:
        async with built as lab:
            sleepers.append(await lab.spawn(Role.CORE, ["sleep", "60"], name="sleeper"))
            assert set(lab.namespaces) <= set(netns_list())
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside()
    assert not set(built.namespaces) & set(netns_list())
    assert sleepers[0].returncode is not None
    assert not pid_alive(sleepers[0].pid)
    # The tun dead end went with core, rather than falling back to the root namespace.
    with pytest.raises(NetlabError, match="does not exist"):
        await run(["ip", "link", "show", "dead"])
    await built.close()  # safe twice


def test_leftovers_of_dead_processes_are_removed() -> None:
    dead_pid = 4_194_000  # above any pid this machine hands out (pid_max is 4194304 at most)
    while os.path.exists(f"/proc/{dead_pid}"):
        dead_pid -= 1
    leftover = lab_name("core", token="abc123", pid=dead_pid)
    ours = lab_name("core", token="def456")
    for name in (leftover, ours):
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        removed = clean_leftovers()
        assert leftover in removed and leftover not in netns_list()
        assert ours in netns_list()  # this process is alive: not a leftover
    finally:
        for name in (leftover, ours):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    assert parse_name(ours) is not None and parse_name("other-ns") is None
    assert ours.startswith(PREFIX)


# --- 1. NAT ---------------------------------------------------------------------------------------------------------


async def test_the_cabin_router_is_a_symmetric_nat_and_the_doctor_router_is_not(tmp_path: Path) -> None:
    destinations = [(SIGNALING_IP, UDP_PORT), (TURN_IP, UDP_PORT + 1)]
    async with (
        Lab(tmp_path, doctor_firewall=False) as lab,
        lab.thread(Role.CORE) as core,
        lab.thread(Role.CABIN) as cabin,
        lab.thread(Role.DOCTOR) as doctor,
    ):
        servers = await core.run(udp_servers(destinations))
        sources: dict[Role, list[Address]] = {}
        for role, thread in ((Role.CABIN, cabin), (Role.DOCTOR, doctor)):
            client = await thread.run(UdpClient.open())
            for destination in destinations:
                await thread.run(client.send(role.value.encode(), destination))
            seen = await core.run(servers.wait_count(2 * (len(sources) + 1), timeout=2))
            sources[role] = [d.source for d in seen if d.data == role.value.encode()]
            await thread.run(client.close())
        await core.run(servers.close())
    cabin_sources, doctor_sources = sources[Role.CABIN], sources[Role.DOCTOR]
    assert {ip for ip, _ in cabin_sources} == {CABIN_PUBLIC_IP}
    assert cabin_sources[0][1] != cabin_sources[1][1], "one cabin socket, two destinations: two public ports"
    assert {ip for ip, _ in doctor_sources} == {DOCTOR_PUBLIC_IP}
    assert doctor_sources[0][1] == doctor_sources[1][1], "a plain masquerade keeps one mapping per socket"


# --- 2. firewall ----------------------------------------------------------------------------------------------------


async def test_the_hospital_firewall_lets_out_only_tcp_443(lab: Lab) -> None:
    async with lab.thread(Role.CORE) as core, lab.thread(Role.DOCTOR) as doctor, lab.thread(Role.CABIN) as cabin:
        udp = await core.run(udp_servers([(SIGNALING_IP, UDP_PORT), (SIGNALING_IP, 53)], echo=True))
        tcp = await core.run(tcp_servers([(SIGNALING_IP, 443), (SIGNALING_IP, OTHER_TCP_PORT)]))
        try:
            doctor_udp = await doctor.run(UdpClient.open())
            for port in (UDP_PORT, 53):  # DNS is no exception
                await doctor.run(doctor_udp.send(b"ping", (SIGNALING_IP, port)))
            assert await doctor.run(doctor_udp.receive(ANSWER_TIMEOUT)) is None
            assert udp.seen == []
            await doctor.run(doctor_udp.close())

            assert await doctor.run(tcp_connects((SIGNALING_IP, 443), ANSWER_TIMEOUT))
            assert not await doctor.run(tcp_connects((SIGNALING_IP, OTHER_TCP_PORT), ANSWER_TIMEOUT))

            # The same servers answer the cabin: the doctor's silence is the firewall's doing.
            cabin_udp = await cabin.run(UdpClient.open())
            await cabin.run(cabin_udp.send(b"ping", (SIGNALING_IP, UDP_PORT)))
            assert await cabin.run(cabin_udp.receive(ANSWER_TIMEOUT)) == b"ping"
            await cabin.run(cabin_udp.close())
            assert await cabin.run(tcp_connects((SIGNALING_IP, OTHER_TCP_PORT), ANSWER_TIMEOUT))
        finally:
            await core.run(udp.close())
            await core.run(close_servers(tcp))


# --- 3. coturn ------------------------------------------------------------------------------------------------------


class Relayed(asyncio.DatagramProtocol):
    """The application side of a TURN allocation: what peers sent through the relay."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self.closed = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, (addr[0], addr[1])))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass
class Allocation:
    transport: object
    protocol: Relayed
    relayed: Address
    mapped: Address


async def allocate(
    server: Address,
    username: str,
    password: str,
    *,
    transport: str,
    tls: ssl.SSLContext | None = None,
    timeout: float = 5.0,
) -> Allocation:
    async with asyncio.timeout(timeout):
        turn, protocol = await create_turn_endpoint(Relayed, server, username, password, ssl=tls, transport=transport)
    return Allocation(turn, protocol, turn.get_extra_info("sockname"), turn.get_extra_info("related_address"))


async def exchange(allocation: Allocation, data: bytes, peer: Address) -> bytes | None:
    """Send `data` to `peer` through the relay; return what arrives from it within 0.2 s."""
    allocation.transport.sendto(data, peer)  # type: ignore[attr-defined]
    try:
        async with asyncio.timeout(0.2):
            received, _ = await allocation.protocol.received.get()
    except TimeoutError:
        return None
    return received


async def send_through(allocation: Allocation, data: bytes, peer: Address) -> None:
    allocation.transport.sendto(data, peer)  # type: ignore[attr-defined]


async def release(allocation: Allocation) -> None:
    allocation.transport.close()  # type: ignore[attr-defined]
    async with asyncio.timeout(3):
        await allocation.protocol.closed


async def refused_code(server: Address, username: str, password: str, transport: str) -> int | None:
    try:
        allocation = await allocate(server, username, password, transport=transport)
    except stun.TransactionFailed as exc:
        return int(exc.response.attributes["ERROR-CODE"][0])
    await release(allocation)
    return None


async def test_coturn_relays_between_the_nat_and_the_firewall(lab: Lab, tmp_path: Path) -> None:
    _need_coturn()
    async with (
        Coturn(lab.ns(Role.CORE), tmp_path / "turn", secret=SECRET) as turn,
        lab.thread(Role.CABIN) as cabin,
        lab.thread(Role.DOCTOR) as doctor,
    ):
        user, password = credentials(SECRET, "cabin", 600)
        cabin_alloc = await cabin.run(allocate((TURN_IP, TURN_PORT), user, password, transport="udp"))
        assert cabin_alloc.relayed[0] == TURN_IP and cabin_alloc.mapped[0] == CABIN_PUBLIC_IP

        user, password = turn.credentials("doctor", 600)
        # The doctor reaches TURN only over TCP 443: plain TCP, and TLS checked against the throwaway certificate.
        doctor_alloc = await doctor.run(allocate((TURN_IP, TURN_TLS_PORT), user, password, transport="tcp"))
        assert doctor_alloc.relayed[0] == TURN_IP and doctor_alloc.mapped[0] == DOCTOR_PUBLIC_IP
        tls = ssl.create_default_context(cafile=str(turn.certificate))
        tls_alloc = await doctor.run(allocate((TURN_IP, TURN_TLS_PORT), user, password, transport="tcp", tls=tls))
        assert tls_alloc.relayed[0] == TURN_IP
        await doctor.run(release(tls_alloc))
        with pytest.raises(TimeoutError):  # UDP TURN cannot get through the hospital's firewall
            await doctor.run(allocate((TURN_IP, TURN_PORT), user, password, transport="udp", timeout=1.5))

        # A peer at a private address (a host candidate) is unreachable, not fatal: coturn's route to it ends in
        # core's dead end, and the allocation stays usable for what follows (without that route coturn tears the
        # allocation down; the doctor's TCP stream carries this send before any of the exchange below).
        await doctor.run(send_through(doctor_alloc, b"to-a-host-candidate", (CABIN_IP, UDP_PORT)))
        # Data goes from the cabin's relay to the doctor's and back (each side's first sends set up permissions).
        got_doctor: bytes | None = None
        got_cabin: bytes | None = None
        deadline = time.monotonic() + 5
        while got_doctor is None or got_cabin is None:
            assert time.monotonic() < deadline, "no data relayed between the two allocations"
            got_cabin = got_cabin or await cabin.run(exchange(cabin_alloc, b"from-cabin", doctor_alloc.relayed))
            got_doctor = got_doctor or await doctor.run(exchange(doctor_alloc, b"from-doctor", cabin_alloc.relayed))
        assert got_cabin == b"from-doctor" and got_doctor == b"from-cabin"
        await cabin.run(release(cabin_alloc))
        await doctor.run(release(doctor_alloc))

        wrong_user, wrong_password = credentials("not-the-secret", "cabin", 600)
        assert await cabin.run(refused_code((TURN_IP, TURN_PORT), wrong_user, wrong_password, "udp")) == 401
        assert await doctor.run(refused_code((TURN_IP, TURN_TLS_PORT), wrong_user, wrong_password, "tcp")) == 401
        expired_user, expired_password = credentials(SECRET, "cabin", -60)
        assert await cabin.run(refused_code((TURN_IP, TURN_PORT), expired_user, expired_password, "udp")) == 401
        assert "netlab-test-secret" not in turn.log_text()

        # Through each side's delay forwarder: coturn sees the forwarder, and an allocation (two round trips:
        # the 401 challenge, then the authenticated request) takes at least four one-way delays.
        await lab.shape(Side.CABIN, delay_ms=30)
        started = time.monotonic()
        delayed = await cabin.run(allocate((lab.delay_ip(Side.CABIN), TURN_PORT), user, password, transport="udp"))
        elapsed = time.monotonic() - started
        assert delayed.relayed[0] == TURN_IP and delayed.mapped[0] == lab.delay_ip(Side.CABIN)
        assert elapsed >= 4 * 0.030, f"an allocation through a 30 ms forwarder took {elapsed * 1000:.0f} ms"
        await cabin.run(release(delayed))
        delayed = await doctor.run(
            allocate((lab.delay_ip(Side.DOCTOR), TURN_TLS_PORT), user, password, transport="tcp", tls=tls)
        )
        assert delayed.mapped[0] == lab.delay_ip(Side.DOCTOR)
        await doctor.run(release(delayed))


# --- 4. cut ---------------------------------------------------------------------------------------------------------


async def test_cut_stops_the_cabin_link_and_restores_it(lab: Lab) -> None:
    target = (SIGNALING_IP, UDP_PORT)
    async with lab.thread(Role.CORE) as core, lab.thread(Role.CABIN) as cabin:
        servers = await core.run(udp_servers([target], echo=True))
        client = await cabin.run(UdpClient.open())
        try:
            await cabin.run(client.send(b"before", target))
            assert await cabin.run(client.receive(ANSWER_TIMEOUT)) == b"before"

            cut_s = await lab.cut(True)
            assert lab.is_cut()
            for i in range(5):
                await cabin.run(client.send(f"during-{i}".encode(), target))
            assert await cabin.run(client.receive(ANSWER_TIMEOUT)) is None
            assert [d.data for d in servers.servers[0].seen] == [b"before"]

            restore_s = await lab.cut(False)
            await cabin.run(client.send(b"after", target))
            assert await cabin.run(client.receive(ANSWER_TIMEOUT)) == b"after"
            assert servers.servers[0].seen[-1].source == servers.servers[0].seen[0].source  # the same NAT mapping
            print(f"\ncut flip: {cut_s * 1000:.1f} ms, restore flip: {restore_s * 1000:.1f} ms")
        finally:
            await cabin.run(client.close())
            await core.run(servers.close())


# --- 5. shaping: the delay forwarder, loss, rate --------------------------------------------------------------------


async def send_stamped(client: UdpClient, target: Address, count: int, gap: float) -> list[float]:
    """`count` datagrams `gap` seconds apart, each carrying its number; returns the send times."""
    sent = []
    for i in range(count):
        sent.append(time.monotonic())
        await client.send(i.to_bytes(4, "big") + b"x" * 100, target)
        await asyncio.sleep(gap)
    return sent


async def collect_echoes(client: UdpClient, count: int, quiet: float) -> list[tuple[int, float]]:
    """The echoes' numbers and arrival times, until `count` arrived or none for `quiet` seconds."""
    got: list[tuple[int, float]] = []
    while len(got) < count and (data := await client.receive(quiet)) is not None:
        got.append((int.from_bytes(data[:4], "big"), time.monotonic()))
    return got


async def tcp_round_trip(address: Address, payload: bytes) -> tuple[bytes, float]:
    """Send `payload` to an echo server and read it all back; returns what came back and the first byte's delay."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(*address)

    async def send() -> None:
        for offset in range(0, len(payload), 8192):
            writer.write(payload[offset : offset + 8192])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    try:
        first = await reader.readexactly(1)
        first_byte = time.monotonic() - started
        rest = await reader.read()
        await sender
    finally:
        writer.close()
    return first + rest, first_byte


async def test_the_delay_forwarder_holds_each_datagram_and_keeps_tcp_in_order(lab: Lab) -> None:
    delay_ms, jitter_ms = 40.0, 10.0
    profile = await lab.shape(Side.CABIN, delay_ms=delay_ms, jitter_ms=jitter_ms)
    assert profile == LinkProfile(delay_ms=delay_ms, jitter_ms=jitter_ms)
    forwarder_udp = (lab.delay_ip(Side.CABIN), TURN_PORT)
    count = 200
    async with lab.thread(Role.CORE) as core, lab.thread(Role.CABIN) as cabin:
        # Stand-ins for TURN behind the forwarder: a UDP echo on 3478, a TCP echo on 443.
        servers = await core.run(udp_servers([(TURN_IP, TURN_PORT)], echo=True))
        tcp = await core.run(tcp_servers([(TURN_IP, TURN_TLS_PORT)]))
        client = await cabin.run(UdpClient.open())
        try:
            echoes_task = asyncio.ensure_future(cabin.run(collect_echoes(client, count, quiet=1.0)))
            sent = await cabin.run(send_stamped(client, forwarder_udp, count, gap=0.005))
            echoes = await echoes_task
            arrivals = await core.run(servers.wait_count(count, timeout=2))
            payload = os.urandom(1_000_000)
            echoed, first_byte = await cabin.run(tcp_round_trip((lab.delay_ip(Side.CABIN), TURN_TLS_PORT), payload))
        finally:
            await cabin.run(client.close())
            await core.run(servers.close())
            await core.run(close_servers(tcp))

    numbers = [int.from_bytes(d.data[:4], "big") for d in arrivals]
    one_way = [(d.at - sent[n]) * 1000 for n, d in zip(numbers, arrivals, strict=True)]
    assert {d.source[0] for d in arrivals} == {lab.delay_ip(Side.CABIN)}  # TURN sees the forwarder
    median = statistics.median(one_way)
    assert 0.8 * delay_ms <= median <= 1.5 * delay_ms, f"median one-way {median:.1f} ms"
    assert min(one_way) >= delay_ms - jitter_ms - 1, f"min one-way {min(one_way):.1f} ms"
    assert max(one_way) <= delay_ms + jitter_ms + 50, f"max one-way {max(one_way):.1f} ms"
    reordered = sum(1 for a, b in itertools.pairwise(numbers) if b < a)
    assert reordered > 0, "jitter of ±10 ms over 5 ms gaps must reorder some datagrams"
    assert len(echoes) == count
    round_trip = [(at - sent[n]) * 1000 for n, at in echoes]
    rtt_median = statistics.median(round_trip)
    assert 0.8 * 2 * delay_ms <= rtt_median <= 1.5 * 2 * delay_ms, f"median round trip {rtt_median:.1f} ms"
    assert echoed == payload, "the TCP stream came back altered or out of order"
    assert first_byte >= 2 * (delay_ms - jitter_ms) / 1000
    print(
        f"\nforwarder {delay_ms:g}±{jitter_ms:g} ms: one-way median {median:.1f} ms, "
        f"p5 {statistics.quantiles(one_way, n=20)[0]:.1f}, p95 {statistics.quantiles(one_way, n=20)[-1]:.1f}, "
        f"min {min(one_way):.1f}, max {max(one_way):.1f}; round trip median {rtt_median:.1f} ms; "
        f"{reordered} of {count} reordered; TCP 1 MB echoed intact, first byte after {first_byte * 1000:.0f} ms"
    )


async def test_shape_applies_loss_and_rate_and_clears_them(lab: Lab) -> None:
    router, core_ns = lab.ns(Role.CABIN_ROUTER), lab.ns(Role.CORE)
    target = (SIGNALING_IP, UDP_PORT)
    async with lab.thread(Role.CORE) as core, lab.thread(Role.CABIN) as cabin:
        servers = await core.run(udp_servers([target]))
        tcp = await core.run(tcp_servers([(SIGNALING_IP, 443)]))
        client = await cabin.run(UdpClient.open())
        try:
            await lab.shape(Side.CABIN, loss_pct=50)
            await cabin.run(send_stamped(client, target, 400, gap=0))
            with contextlib.suppress(TimeoutError):
                await core.run(servers.wait_count(400, timeout=0.5))
            delivered = len(servers.seen)
            assert 120 <= delivered <= 280, f"{delivered} of 400 delivered with 50 % loss"

            rate_kbit = 8000
            await lab.shape(Side.CABIN, rate_kbit=rate_kbit)
            assert "tbf" in await run(["tc", "-n", router, "qdisc", "show", "dev", "wan"])
            assert "tbf" in await run(["tc", "-n", core_ns, "qdisc", "show", "dev", "to-cabin"])
            payload = os.urandom(500_000)
            started = time.monotonic()
            echoed, _ = await cabin.run(tcp_round_trip((SIGNALING_IP, 443), payload))
            elapsed = time.monotonic() - started
            assert echoed == payload
            kbit_s = len(payload) * 8 / 1000 / elapsed
            assert kbit_s <= 1.3 * rate_kbit, f"{kbit_s:.0f} kbit/s through an {rate_kbit} kbit/s link"
            print(f"\nrate {rate_kbit} kbit/s: TCP echo of 500 kB at {kbit_s:.0f} kbit/s each way")

            # An ADSL line: a narrow uplink, a wide downlink.
            await lab.shape(Side.CABIN, rate_kbit=600, down_rate_kbit=8000)
            assert "rate 600Kbit" in await run(["tc", "-n", router, "qdisc", "show", "dev", "wan"])
            assert "rate 8Mbit" in await run(["tc", "-n", core_ns, "qdisc", "show", "dev", "to-cabin"])

            await lab.shape(Side.CABIN)
            assert "tbf" not in await run(["tc", "-n", router, "qdisc", "show", "dev", "wan"])
            assert "tbf" not in await run(["tc", "-n", core_ns, "qdisc", "show", "dev", "to-cabin"])
            assert "numgen" not in await run(in_ns(router, ["nft", "list", "chain", "inet", "netlab", "loss"]))
        finally:
            await cabin.run(client.close())
            await core.run(servers.close())
            await core.run(close_servers(tcp))
    with pytest.raises(NetlabError, match="loss_pct"):
        await lab.shape(Side.CABIN, loss_pct=150)


async def test_the_forwarder_bounds_its_queue_and_closes_everything(port: int) -> None:
    """On loopback in the test's own loop: a UDP burst beyond the queue is dropped; close() ends open connections."""
    upstream = await udp_servers([("127.0.0.1", port)])
    (echo,) = await tcp_servers([("127.0.0.1", port)])
    before = asyncio.all_tasks()
    forwarder = Forwarder(
        ("127.0.0.1", free_port()), ("127.0.0.1", port), to_target=DelayProfile(delay_ms=200), udp_queue=5
    )
    await forwarder.start()
    client = await UdpClient.open(("127.0.0.1", 0))
    try:
        for i in range(20):
            await client.send(bytes([i]), forwarder.listen)
        seen = await upstream.wait_count(5, timeout=2)
        assert [d.data for d in seen] == [bytes([i]) for i in range(5)]
        stats = forwarder.stats()
        assert stats.forwarded_to_target == 5 and stats.dropped_to_target == 15 and stats.udp_clients == 1

        forwarder.set_profile(DelayProfile())
        reader, writer = await asyncio.open_connection(*forwarder.listen)
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.readexactly(5), 2) == b"hello"
        await client.send(b"held", forwarder.listen)  # no delay now, but maybe still in flight at close
        await forwarder.close()
        await forwarder.close()  # safe twice
        assert await asyncio.wait_for(reader.read(), 2) == b""  # the open connection was ended
        writer.close()
        assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()
    finally:
        await client.close()
        await forwarder.close()
        await upstream.close()
        await close_servers([echo])


def test_link_and_delay_values_refuse_nonsense() -> None:
    with pytest.raises(NetlabError, match="delay_ms"):
        DelayProfile(delay_ms=-1)
    with pytest.raises(NetlabError, match="rate_kbit"):
        LinkProfile(rate_kbit=0)
    with pytest.raises(NetlabError, match="jitter_ms"):
        LinkProfile(jitter_ms=float("nan"))
    rng = random.Random(1)
    uniform = [DelayProfile(40, 10).sample(rng) for _ in range(1000)]
    assert min(uniform) >= 0.030 and max(uniform) <= 0.050
    normal = [DelayProfile(5, 10, Jitter.NORMAL).sample(rng) for _ in range(1000)]
    assert min(normal) == 0.0  # never negative
    assert "mod 10000 < 250 " in loss_commands(2.5)
    assert "numgen" not in loss_commands(None)


# --- 6. Chromium in the doctor's namespace --------------------------------------------------------------------------


async def serve_page(address: Address) -> web.AppRunner:
    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text=f"<!doctype html><title>netlab</title><p id=who>{request.remote}</p>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, *address).start()
    return runner


async def test_chromium_in_the_doctor_namespace_loads_signaling_through_the_firewall(lab: Lab, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    from tests.browser import CHROMIUM_FLAGS, chromium_path

    chromium_path()  # skip (or fail in CI) without Chromium
    flags = [flag for flag in CHROMIUM_FLAGS if flag != "--allow-loopback-in-peer-connection"]
    executable = chromium_in(lab.ns(Role.DOCTOR), tmp_path)
    async with lab.thread(Role.CORE) as core:
        runner = await core.run(serve_page((SIGNALING_IP, 443)))
        try:
            async with async_playwright() as pw:
                context = await pw.chromium.launch_persistent_context(
                    str(tmp_path / "profile"), executable_path=str(executable), headless=True, args=flags
                )
                try:
                    pids = (await run(["ip", "netns", "pids", lab.ns(Role.DOCTOR)])).split()
                    assert pids, "Chromium is not running in the doctor's namespace"
                    page = await context.new_page()
                    await page.goto(f"http://{SIGNALING_IP}:443/", timeout=10_000)
                    # The server saw the doctor router's public address: the page crossed the NAT and the firewall.
                    assert await page.locator("#who").inner_text() == DOCTOR_PUBLIC_IP
                finally:
                    await context.close()
        finally:
            await core.run(runner.cleanup())
