"""Signaling capacity: concurrent rooms on one signaling process, and how long a professional's join takes.

The signaling server runs as its own process (this script with --serve: the real app, TLS, the SQLite store,
automatic admission). This process enrols one cabin and one appointment per room, then, level by level
(100, 500, 1,000 rooms), opens for each new room a cabin WebSocket (hello with the cabin's signed proof, then
"presence") and a professional WebSocket (hello with the link's token), and keeps them all open and answering the
server's heartbeats. A join is timed from the professional's TCP connect to its "peer-joined" (TLS, hello, token
check, welcome, room state, the call's start). Two figures per level: the joins that filled the level (20 at a
time), and 200 probe joins, one at a time, of a professional leaving and re-joining while all rooms stay connected.

    python bench/signaling_capacity.py                    # 100, 500 and 1,000 rooms
    python bench/signaling_capacity.py --levels 100 2000  # other levels
    python bench/signaling_capacity.py --trace-memory     # and where the server's memory goes, at each level
    python bench/signaling_capacity.py --nodes 3 --levels 1000 5000 10000   # three nodes on PostgreSQL and Redis

With --nodes N (N >= 2), N signaling processes share one PostgreSQL and one Redis, private servers started here
(bench/signaling_cluster.py): the rooms' two ends on different nodes, join times at the node that runs the rooms
and through another node (the Redis hop), memory per room over all nodes, each node's CPU and Redis's.

With --trace-memory the server traces Python's allocations (tracemalloc: slower, and the figures above then count
its cost too) and reports at each level the traced total by file, beside its RSS: what RSS holds beyond the traced
total is native memory (OpenSSL's per-connection state, the allocator's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import signal
import ssl
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import common
import signaling_cluster

from gateway.identity import CabinIdentity
from signaling.config import ServerConfig
from signaling.links import professional_token
from signaling.models import Appointment, Cabin
from signaling.protocol import AppointmentKind, Hello, Presence, dump
from signaling.server import serve, settle_memory
from signaling.sqlite_store import SQLiteStore
from signaling.stores import open_store
from signaling.tls import ensure_development_certificate
from signaling.tokens import TokenSigner

FILL_CONCURRENCY = 20
SCRIPT = Path(__file__).resolve()


@dataclass
class Room:
    cabin: CabinIdentity
    appointment_id: str
    token: str


@dataclass
class Connection:
    ws: aiohttp.ClientWebSocketResponse
    reader: asyncio.Task[None] | None = None
    seen: dict[str, asyncio.Event] = field(default_factory=dict)

    def event(self, kind: str) -> asyncio.Event:
        return self.seen.setdefault(kind, asyncio.Event())

    async def read(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                kind = msg.json().get("type", "")
                self.event(kind).set()

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


# --- the server process -------------------------------------------------------------------------------------------


async def _serve(data: Path, port: int, db: str | None = None, redis: str | None = None) -> None:
    """One signaling process: the SQLite file in `data`, or with --nodes, a cluster's node on `db` and `redis`."""
    common.raise_open_files(20000 if redis else 8192)
    stalls = signaling_cluster.watch_stalls() if redis else None
    certs = ensure_development_certificate(data / "certs", ("127.0.0.1", "localhost"))
    signer = TokenSigner.from_pem((data / "signing-key.pem").read_bytes())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if os.environ.get(TRACE_ENV) == "1":
        tracemalloc.start(1)
        loop.add_signal_handler(signal.SIGUSR1, _memory_report)
    with open_store(db or data / "cabine.sqlite") as store:
        config = ServerConfig(
            signer=signer, store=store, public_url=f"https://127.0.0.1:{port}", auto_admit=True, redis_url=redis
        )
        async with serve(config, "127.0.0.1", port, certs.server_context()):
            settle_memory()
            print("signaling ready", flush=True)
            await stop.wait()
    if stalls is not None:
        stalls.cancel()


TRACE_ENV = "CABINE_BENCH_TRACE_MEMORY"


def _memory_report() -> None:
    """Print (lines starting with MEM) the traced Python memory by file, largest first."""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    stats = snapshot.statistics("filename")
    total = sum(stat.size for stat in stats)
    print(f"MEM traced {total / 2**20:.1f} MiB in {sum(s.count for s in stats)} blocks", flush=True)
    for stat in stats[:12]:
        where = stat.traceback[0].filename.split("site-packages/")[-1].split("/work/main/")[-1]
        print(f"MEM {stat.size / 2**20:8.1f} MiB {stat.count:9d} blocks  {where}", flush=True)


# --- the clients --------------------------------------------------------------------------------------------------


def prepare(data: Path, rooms: int) -> list[Room]:
    """Enrol `rooms` cabins with one open medical appointment each; write the server's key and database."""
    signer = TokenSigner.generate()
    (data / "signing-key.pem").write_bytes(signer.private_pem())
    now = datetime.now(UTC)
    out = []
    with SQLiteStore.open(data / "cabine.sqlite") as store:
        for i in range(rooms):
            identity = CabinIdentity.generate(f"bench-cabin-{i:05d}")
            store.add_cabin(Cabin(id=identity.cabin_id, public_key=identity.public_bytes(), enrolled_at=now))
            appointment = Appointment(
                id=Appointment.new_id(),
                kind=AppointmentKind.MEDICAL,
                cabin_id=identity.cabin_id,
                starts_at=now - timedelta(minutes=1),
                duration=timedelta(hours=2),
                professional_name="Dr Bench",
                created_at=now,
            )
            store.add_appointment(appointment)
            out.append(Room(identity, appointment.id, professional_token(signer, appointment)))
    return out


class Load:
    def __init__(self, session: aiohttp.ClientSession, base: str, tls: ssl.SSLContext) -> None:
        self.session, self.base, self.tls = session, base, tls
        self.cabins: dict[int, Connection] = {}
        self.pros: dict[int, Connection] = {}

    async def _open(self, role: str, token: str) -> Connection:
        ws = await self.session.ws_connect(f"{self.base}/ws/{role}", ssl=self.tls, autoping=True)
        conn = Connection(ws)
        conn.reader = asyncio.create_task(conn.read())
        await ws.send_str(dump(Hello(token=token)))
        return conn

    async def open_cabin(self, index: int, room: Room) -> Connection:
        conn = await self._open("cabin", room.cabin.proof(datetime.now(UTC)))
        await asyncio.wait_for(conn.event("schedule").wait(), 30)
        await conn.ws.send_str(dump(Presence(appointment_id=room.appointment_id, present=True)))
        self.cabins[index] = conn
        return conn

    async def join(self, index: int, room: Room) -> float:
        """A professional's join, timed from connect to peer-joined; returns milliseconds."""
        started = time.perf_counter()
        conn = await self._open("professional", room.token)
        await asyncio.wait_for(conn.event("peer-joined").wait(), 30)
        elapsed = (time.perf_counter() - started) * 1000
        self.pros[index] = conn
        return elapsed

    async def close(self) -> None:
        for conn in [*self.pros.values(), *self.cabins.values()]:
            with contextlib.suppress(Exception):
                await conn.close()


@contextlib.asynccontextmanager
async def server_process(data: Path, port: int, *, trace: bool = False) -> AsyncIterator[int]:
    env = common.subprocess_env() | ({TRACE_ENV: "1"} if trace else {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "--serve",
        "--data-dir",
        str(data),
        "--port",
        str(port),
        cwd=common.ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            while b"signaling ready" not in (line := await proc.stdout.readline()):
                if not line:
                    raise RuntimeError("the signaling server exited early")

        async def drain() -> None:
            assert proc.stdout is not None
            while line := await proc.stdout.readline():
                if line.startswith(b"MEM "):
                    print("  server " + line.decode().rstrip(), flush=True)

        drainer = asyncio.create_task(drain())
        yield proc.pid
        drainer.cancel()
    finally:
        await common.stop_process(proc)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    limit = common.raise_open_files(2 * max(args.levels) + 1024)
    results: dict[str, Any] = {"open_files_limit": limit, "levels": {}}
    with tempfile.TemporaryDirectory(prefix="cabine-bench-") as tmp:
        data = Path(tmp)
        print(f"enrolling {max(args.levels)} cabins and appointments...", flush=True)
        rooms = prepare(data, max(args.levels))
        certs = ensure_development_certificate(data / "certs", ("127.0.0.1", "localhost"))
        tls = ssl.create_default_context(cafile=str(certs.ca_cert))
        port = common.free_port()
        connector = aiohttp.TCPConnector(limit=0)
        async with (
            server_process(data, port, trace=args.trace_memory) as pid,
            aiohttp.ClientSession(connector=connector) as session,
        ):
            load = Load(session, f"wss://127.0.0.1:{port}", tls)
            try:
                done = 0
                for level in sorted(args.levels):
                    fill: list[float] = []
                    cpu0, t0 = common.cpu_seconds(pid), time.monotonic()
                    gate = asyncio.Semaphore(FILL_CONCURRENCY)

                    async def fill_one(i: int, fill: list[float] = fill, gate: asyncio.Semaphore = gate) -> None:
                        async with gate:
                            await load.open_cabin(i, rooms[i])
                            fill.append(await load.join(i, rooms[i]))

                    await asyncio.gather(*(fill_one(i) for i in range(done, level)))
                    fill_cpu = (common.cpu_seconds(pid) - cpu0) / max(1e-9, time.monotonic() - t0)
                    done = level
                    probes: list[float] = []
                    for _ in range(args.probes):
                        i = random.randrange(level)
                        conn = load.pros.pop(i)
                        cabin = load.cabins[i]
                        left = cabin.event("peer-left")
                        left.clear()
                        cabin.event("peer-joined").clear()
                        await conn.close()
                        await asyncio.wait_for(left.wait(), 30)
                        probes.append(await load.join(i, rooms[i]))
                    await asyncio.sleep(1)
                    cpu1, t1 = common.cpu_seconds(pid), time.monotonic()
                    await asyncio.sleep(args.idle)
                    idle_cpu = (common.cpu_seconds(pid) - cpu1) / (time.monotonic() - t1)
                    entry = {
                        "rooms": level,
                        "websockets": 2 * level,
                        "fill_join_ms": common.summarize(fill),
                        "probe_join_ms": common.summarize(probes),
                        "server_cpu_cores_while_filling": fill_cpu,
                        "server_cpu_cores_idle": idle_cpu,
                        "server_rss_mib": common.rss_kib(pid) / 1024,
                    }
                    results["levels"][str(level)] = entry
                    if args.trace_memory:
                        os.kill(pid, signal.SIGUSR1)
                    p = entry["probe_join_ms"]
                    print(
                        f"{level:5d} rooms: probe join p50 {p['p50']:.1f} ms p99 {p['p99']:.1f} ms, "
                        f"server rss {entry['server_rss_mib']:.0f} MiB",
                        flush=True,
                    )
            finally:
                await load.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, nargs="+", default=[100, 500, 1000], help="room counts")
    parser.add_argument("--probes", type=int, default=200, help="timed re-joins per level (default 200)")
    parser.add_argument("--idle", type=float, default=5, help="seconds of idle CPU measured per level")
    parser.add_argument("--trace-memory", action="store_true", help="report where the server's memory goes")
    parser.add_argument("--nodes", type=int, default=1, help="signaling processes on PostgreSQL and Redis (default 1)")
    parser.add_argument(
        "--settle", type=float, default=60, help="with --nodes: seconds between the fill and the second probes"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--last", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.nodes < 1 or any(level < 1 for level in args.levels) or args.probes < 2:
        parser.error("--nodes and --levels are at least 1, --probes at least 2")
    if args.serve:
        asyncio.run(_serve(args.data_dir, args.port, args.db, args.redis))
        return
    if args.client:
        ports = [int(p) for p in args.ports.split(",")]
        asyncio.run(signaling_cluster.worker(args.data_dir, args.first, args.last, ports))
        return
    network = common.isolate_loopback()
    print(f"network: {network}")
    if args.nodes > 1:
        _cluster_report(args, network)
        return
    results = asyncio.run(main_async(args))
    rows = []
    for level, e in results["levels"].items():
        f, p = e["fill_join_ms"], e["probe_join_ms"]
        rows.append(
            [
                level,
                e["websockets"],
                p["p50"],
                p["p99"],
                f["p50"],
                f["p99"],
                f"{e['server_cpu_cores_while_filling']:.2f}",
                f"{e['server_cpu_cores_idle']:.3f}",
                e["server_rss_mib"],
            ]
        )
    common.print_table(
        "Signaling: join latency (ms, connect to peer-joined) with N rooms connected to one process",
        ["rooms", "sockets", "join p50", "join p99", "fill p50", "fill p99", "cpu filling", "cpu idle", "rss MiB"],
        rows,
    )
    results["machine"] = common.machine_info()
    results["network"] = network
    common.write_results("signaling_capacity", results)


def _cluster_report(args: argparse.Namespace, network: str) -> None:
    results = asyncio.run(signaling_cluster.run(args))
    rows = []
    for level, e in results["levels"].items():
        d, h, f = e["probe_join_room_node_ms"], e["probe_join_through_door_ms"], e["fill_join_ms"]
        d0, h0 = e["just_filled_join_room_node_ms"], e["just_filled_join_through_door_ms"]
        rows.append(
            [
                level,
                e["websockets"],
                d["p50"],
                d["p99"],
                h["p50"],
                h["p99"],
                f"{d0['p99']:.1f} / {h0['p99']:.1f}",
                f["p50"],
                f["p99"],
                " ".join(f"{c:.2f}" for c in e["node_cpu_cores_while_filling"]),
                " ".join(f"{c:.3f}" for c in e["node_cpu_cores_idle"]),
                " ".join(f"{r:.0f}" for r in e["node_rss_mib"]),
                e["kib_per_room"],
            ]
        )
    common.print_table(
        f"Signaling on {args.nodes} nodes (PostgreSQL, Redis): join latency (ms, connect to peer-joined) at the node "
        f"that runs the rooms and through another node, {args.settle:g} s after the fill (p99 right after it: "
        "'just filled', room node / door)",
        ["rooms", "sockets", "room p50", "room p99", "door p50", "door p99", "just filled p99", "fill p50",
         "fill p99", "cpu filling", "cpu idle", "rss MiB", "KiB/room"],
        rows,
    )  # fmt: skip
    results["machine"] = common.machine_info()
    results["network"] = network
    common.write_results(f"signaling_capacity_{args.nodes}_nodes", results)


if __name__ == "__main__":
    main()
