"""The several-node half of bench/signaling_capacity.py (`--nodes N`): N signaling processes on one PostgreSQL and
one Redis (private servers started here), the rooms' clients in worker processes, the timed joins here.

Each room's cabin connects to one node and its professional to the next one, round robin, as a load balancer that
spreads connections would place them: most rooms have their two ends on different nodes. The clients connect to
the nodes directly (TLS): HAProxy in front would need two descriptors per connection, and this machine allows
20,000 per process (tests/test_cluster_failover.py runs HAProxy).

Probe joins alternate between a professional who reaches the node that runs the rooms and one who reaches a door:
the difference is what the hop through Redis adds to a join.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import common
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.identity import CabinIdentity
from signaling.links import professional_token
from signaling.models import Appointment, Cabin
from signaling.postgres_store import PostgresStore
from signaling.protocol import AppointmentKind, Hello, Presence, dump
from signaling.tls import ensure_development_certificate
from signaling.tokens import TokenSigner

Process = asyncio.subprocess.Process
SCRIPT = Path(__file__).resolve().parent / "signaling_capacity.py"
# Rooms each worker process holds: two descriptors each, under the 20,000 a process may open here.
WORKER_ROOMS = 4000
FILL_CONCURRENCY = 20
PROBE_ROOMS = 20


@dataclass(frozen=True)
class RoomSpec:
    index: int
    cabin_id: str
    seed: str  # the cabin key's 32 bytes, hex (a temporary directory's, for this run only)
    appointment_id: str
    token: str

    def identity(self) -> CabinIdentity:
        return CabinIdentity(self.cabin_id, Ed25519PrivateKey.from_private_bytes(bytes.fromhex(self.seed)))


def prepare(data: Path, db: str, count: int) -> list[RoomSpec]:
    """Enrol `count` cabins with one open medical appointment each (in one transaction per thousand)."""
    signer = TokenSigner.generate()
    (data / "signing-key.pem").write_bytes(signer.private_pem())
    now = datetime.now(UTC)
    rooms: list[RoomSpec] = []
    with PostgresStore.open(db) as store:
        for i in range(count):
            seed = hashlib.sha256(f"bench-{i}".encode()).hexdigest()
            spec_id = f"bench-cabin-{i:05d}"
            key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
            identity = CabinIdentity(spec_id, key)
            store.add_cabin(Cabin(id=spec_id, public_key=identity.public_bytes(), enrolled_at=now))
            appointment = Appointment(
                id=Appointment.new_id(),
                kind=AppointmentKind.MEDICAL,
                cabin_id=spec_id,
                starts_at=now - timedelta(minutes=1),
                duration=timedelta(hours=2),
                professional_name="Dr Bench",
                created_at=now,
            )
            store.add_appointment(appointment)
            rooms.append(RoomSpec(i, spec_id, seed, appointment.id, professional_token(signer, appointment)))
    (data / "rooms.jsonl").write_text("\n".join(json.dumps(r.__dict__) for r in rooms) + "\n")
    return rooms


def load_rooms(data: Path) -> list[RoomSpec]:
    return [RoomSpec(**json.loads(line)) for line in (data / "rooms.jsonl").read_text().splitlines() if line]


# --- one node (served by signaling_capacity.py's _serve) ---------------------------------------------------------


def watch_stalls() -> asyncio.Task[None]:
    """Report what holds this node's event loop longest (each line starts with STALL): garbage collections and the
    periodic housekeeping, every 10 s, to explain a join's tail latency."""
    import gc

    from signaling.hub import Hub

    pauses: dict[str, list[float]] = {"gc0": [], "gc1": [], "gc2": [], "housekeeping": []}
    started: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[f"gc{info['generation']}"].append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(on_gc)
    housekeeping = Hub.housekeeping

    async def timed(self: Hub) -> None:
        t0 = time.perf_counter()
        try:
            await housekeeping(self)
        finally:
            pauses["housekeeping"].append((time.perf_counter() - t0) * 1000)

    Hub.housekeeping = timed  # type: ignore[method-assign]

    async def report() -> None:
        while True:
            await asyncio.sleep(10)
            if os.environ.get("CABINE_BENCH_OBJECTS") == "1":
                from collections import Counter

                kinds = Counter(type(o).__qualname__ for o in gc.get_objects())
                top = ", ".join(f"{k} {v}" for k, v in kinds.most_common(14))
                print(f"STALL objects {sum(kinds.values())}: {top}", flush=True)
            said = [f"{k} n={len(v)} max={max(v):.1f}ms" for k, v in pauses.items() if v]
            if said:
                print("STALL " + ", ".join(said), flush=True)
            for v in pauses.values():
                v.clear()

    return asyncio.get_running_loop().create_task(report())


# --- clients ---------------------------------------------------------------------------------------------------------


class Client:
    """One WebSocket that records which message types it saw."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: dict[str, asyncio.Event] = {}
        self.reader = asyncio.create_task(self._read())

    def event(self, kind: str) -> asyncio.Event:
        return self.seen.setdefault(kind, asyncio.Event())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.event(msg.json().get("type", "")).set()

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


async def connect(session: aiohttp.ClientSession, tls: ssl.SSLContext, port: int, role: str, token: str) -> Client:
    ws = await session.ws_connect(f"wss://127.0.0.1:{port}/ws/{role}", ssl=tls, autoping=True)
    client = Client(ws)
    await ws.send_str(dump(Hello(token=token)))
    return client


async def open_cabin(session: aiohttp.ClientSession, tls: ssl.SSLContext, port: int, room: RoomSpec) -> Client:
    cabin = await connect(session, tls, port, "cabin", room.identity().proof(datetime.now(UTC)))
    await asyncio.wait_for(cabin.event("schedule").wait(), 60)
    await cabin.ws.send_str(dump(Presence(appointment_id=room.appointment_id, present=True)))
    return cabin


async def join(session: aiohttp.ClientSession, tls: ssl.SSLContext, port: int, room: RoomSpec) -> tuple[Client, float]:
    """A professional's join, from TCP connect to peer-joined: (their connection, milliseconds)."""
    started = time.perf_counter()
    pro = await connect(session, tls, port, "professional", room.token)
    await asyncio.wait_for(pro.event("peer-joined").wait(), 60)
    return pro, (time.perf_counter() - started) * 1000


async def worker(data: Path, first: int, last: int, ports: Sequence[int]) -> None:
    """Fill rooms [first, last): print FILLED and the join times, hold them until stdin closes."""
    common.raise_open_files(20000)
    rooms = load_rooms(data)[first:last]
    tls = ssl.create_default_context(cafile=str(data / "certs" / "ca.crt"))
    held: list[Client] = []
    joins: list[float] = []
    gate = asyncio.Semaphore(FILL_CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def fill(room: RoomSpec) -> None:
            async with gate:
                held.append(await open_cabin(session, tls, ports[room.index % len(ports)], room))
                pro, ms = await join(session, tls, ports[(room.index + 1) % len(ports)], room)
                held.append(pro)
                joins.append(ms)

        await asyncio.gather(*(fill(room) for room in rooms))
        print("FILLED " + json.dumps(joins), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for client in held:
            with contextlib.suppress(Exception):
                await client.close()


# --- the coordinator -------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def child(
    *args: str, ready: bytes, timeout: float = 600
) -> AsyncIterator[tuple[asyncio.subprocess.Process, bytes]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), *args, cwd=common.ROOT, env=common.subprocess_env(), limit=2**24,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    said: list[bytes] = []
    drainer: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(timeout):
            while not (line := await proc.stdout.readline()).startswith(ready):
                said.append(line)
                if not line:
                    tail = b"".join(said[-40:]).decode(errors="replace")
                    raise RuntimeError(f"{' '.join(args[:2])} exited early:\n{tail}")

        async def drain() -> None:
            # A child that logs must never block on a full pipe; what it says is shown, prefixed.
            assert proc.stdout is not None
            name = f"{args[0].lstrip('-')} {proc.pid}"
            while line := await proc.stdout.readline():
                print(f"  [{name}] {line.decode(errors='replace').rstrip()}"[:300], flush=True)

        drainer = asyncio.create_task(drain())
        yield proc, line
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 60 if args[0] == "--client" else 0.1)
        await common.stop_process(proc)
        if drainer is not None:
            drainer.cancel()


async def https_json(session: aiohttp.ClientSession, tls: ssl.SSLContext, port: int, path: str) -> tuple[int, Any]:
    async with session.get(f"https://127.0.0.1:{port}{path}", ssl=tls) as response:
        return response.status, await response.json()


async def run(args: Any) -> dict[str, Any]:
    from tests.postgres import PrivatePostgres
    from tests.redis_server import PrivateRedis

    common.raise_open_files(4096)
    results: dict[str, Any] = {"nodes": args.nodes, "levels": {}}
    levels = sorted(args.levels)
    with tempfile.TemporaryDirectory(prefix="cabine-bench-") as tmp, PrivatePostgres() as pg, PrivateRedis() as rds:
        data = Path(tmp)
        db = pg.database()
        total = levels[-1] + PROBE_ROOMS
        print(f"enrolling {total} cabins and appointments in PostgreSQL...", flush=True)
        rooms = prepare(data, db, total)
        probe_rooms = rooms[-PROBE_ROOMS:]
        certs = ensure_development_certificate(data / "certs", ("127.0.0.1", "localhost"))
        tls = ssl.create_default_context(cafile=str(certs.ca_cert))
        ports = [common.free_port() for _ in range(args.nodes)]
        async with contextlib.AsyncExitStack() as stack:
            nodes = []
            for port in ports:
                proc, _ = await stack.enter_async_context(
                    child("--serve", "--data-dir", str(data), "--port", str(port), "--db", db, "--redis",
                          rds.url, ready=b"signaling ready", timeout=60)
                )  # fmt: skip
                nodes.append(proc.pid)
            session = await stack.enter_async_context(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
            room_port = None
            async with asyncio.timeout(30):
                # Ready, as a load balancer sees it: every node knows which one runs the rooms.
                while room_port is None or not all(
                    [(await https_json(session, tls, port, "/readyz"))[0] == 200 for port in ports]
                ):
                    for port in ports:
                        if (await https_json(session, tls, port, "/room-node"))[0] == 200:
                            room_port = port
                    await asyncio.sleep(0.2)
            doors = [p for p in ports if p != room_port]
            redis_pid = _pid_on_port(rds.port)
            # The probe rooms' cabins, held here, each on a door.
            probe_cabins = [await open_cabin(session, tls, doors[i % len(doors)], r) for i, r in enumerate(probe_rooms)]
            base_rss = sum(common.rss_kib(pid) for pid in nodes)
            pros: dict[int, Client] = {}
            done = 0
            for level in levels:
                cpu0, t0 = [common.cpu_seconds(pid) for pid in nodes], time.monotonic()
                redis_cpu0 = common.cpu_seconds(redis_pid) if redis_pid else 0.0
                fill: list[float] = []
                for first in range(done, level, WORKER_ROOMS):
                    last = min(level, first + WORKER_ROOMS)
                    _, line = await stack.enter_async_context(
                        child("--client", "--data-dir", str(data), "--first", str(first), "--last", str(last),
                              "--ports", ",".join(map(str, ports)), ready=b"FILLED ")
                    )  # fmt: skip
                    fill += json.loads(line.split(b" ", 1)[1])
                    print(f"  {last} rooms filled", flush=True)
                elapsed = time.monotonic() - t0
                fill_cpu = [(common.cpu_seconds(pid) - c) / elapsed for pid, c in zip(nodes, cpu0, strict=True)]
                redis_fill_cpu = ((common.cpu_seconds(redis_pid) - redis_cpu0) / elapsed) if redis_pid else None
                done = level

                async def probe_round() -> tuple[list[float], list[float]]:
                    """Timed re-joins of the probe rooms, alternately at the room node and through a door."""
                    direct: list[float] = []
                    hop: list[float] = []
                    for k in range(args.probes):
                        i = random.randrange(PROBE_ROOMS)
                        room, cabin = probe_rooms[i], probe_cabins[i]
                        if i in pros:
                            left = cabin.event("peer-left")
                            left.clear()
                            await pros.pop(i).close()
                            await asyncio.wait_for(left.wait(), 30)
                        via_door = k % 2 == 1
                        port = doors[k % len(doors)] if via_door else room_port
                        pros[i], ms = await join(session, tls, port, room)
                        (hop if via_door else direct).append(ms)
                    return direct, hop

                # Right after thousands of connections arrived, each node's collector still works through them
                # (full collections of up to a second); a minute later, the rooms are as they stay all day.
                first_direct, first_hop = await probe_round()
                await asyncio.sleep(1)
                cpu1, t1 = [common.cpu_seconds(pid) for pid in nodes], time.monotonic()
                await asyncio.sleep(args.idle)
                idle = [
                    (common.cpu_seconds(pid) - c) / (time.monotonic() - t1) for pid, c in zip(nodes, cpu1, strict=True)
                ]
                await asyncio.sleep(max(0.0, args.settle - args.idle))
                direct, hop = await probe_round()
                rss = [common.rss_kib(pid) / 1024 for pid in nodes]
                rooms_now = level + PROBE_ROOMS
                entry = {
                    "rooms": rooms_now,
                    "websockets": 2 * level + PROBE_ROOMS + len(pros),
                    "fill_join_ms": common.summarize(fill),
                    "probe_join_ms": common.summarize(direct + hop),
                    "probe_join_room_node_ms": common.summarize(direct),
                    "probe_join_through_door_ms": common.summarize(hop),
                    "just_filled_join_room_node_ms": common.summarize(first_direct),
                    "just_filled_join_through_door_ms": common.summarize(first_hop),
                    "settle_s": args.settle,
                    "node_cpu_cores_while_filling": fill_cpu,
                    "redis_cpu_cores_while_filling": redis_fill_cpu,
                    "node_cpu_cores_idle": idle,
                    "node_rss_mib": rss,
                    "room_node": ports.index(room_port),
                    "kib_per_room": (sum(rss) * 1024 - base_rss) / max(1, level),
                    "redis_rss_mib": common.rss_kib(redis_pid) / 1024 if redis_pid else None,
                }
                results["levels"][str(rooms_now)] = entry
                d, h = entry["probe_join_room_node_ms"], entry["probe_join_through_door_ms"]
                print(
                    f"{rooms_now:6d} rooms on {args.nodes} nodes: join p50/p99 {d['p50']:.1f}/{d['p99']:.1f} ms at the "
                    f"room node, {h['p50']:.1f}/{h['p99']:.1f} ms through a door; "
                    f"{entry['kib_per_room']:.0f} KiB per room; rss {' + '.join(f'{r:.0f}' for r in rss)} MiB",
                    flush=True,
                )
            for client in [*pros.values(), *probe_cabins]:
                with contextlib.suppress(Exception):
                    await client.close()
    return results


def _pid_on_port(port: int) -> int | None:
    return common.find_process(f"redis-server 127.0.0.1:{port}")
