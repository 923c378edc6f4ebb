"""What supervision costs a cabin's link: the heartbeat's size as JSON and on the wire, and its period.

A real signaling server (the app on loopback, SQLite) and a real cabin gateway (`gateway.app.Cabin`, test camera and
microphone, no call) run in this process; a byte-counting TCP forwarder sits between them, so the figures are what
the cabin's WebSocket carries (TLS left aside: plain ws:// on loopback), permessage-deflate included when both ends
negotiate it (aiohttp's default). The run lasts --seconds; the cabin's other traffic in that time (its ping to
measure the round trip, the WebSocket keep-alive, the schedule) is counted too, as the link carries it.

    python bench/heartbeat.py               # 120 s
    python bench/heartbeat.py --seconds 600
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from gateway.app import Cabin
from gateway.config import CabinConfig
from gateway.ice import LOOPBACK, host_addresses
from gateway.identity import CabinIdentity
from gateway.media.spec import SourceSpec
from signaling.app import create_app
from signaling.config import ServerConfig
from signaling.keys import HUB
from signaling.models import Cabin as CabinRecord
from signaling.protocol import dump
from signaling.sqlite_store import SQLiteStore
from signaling.tokens import TokenSigner


@dataclass
class Counted:
    up: int = 0  # cabin -> signaling
    down: int = 0


async def forwarder(target_port: int, counted: Counted) -> asyncio.Server:
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if upstream:
                    counted.up += len(data)
                else:
                    counted.down += len(data)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(reader, server_writer, True), pipe(server_reader, writer, False))

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def run(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, host_addresses(LOOPBACK):
        store = SQLiteStore.open(Path(tmp) / "signaling.sqlite")
        identity = CabinIdentity.generate("bench-cabin")
        store.add_cabin(CabinRecord(id="bench-cabin", name="bench"))
        record = store.get_cabin("bench-cabin")
        assert record is not None
        store.update_cabin(replace(record, public_key=identity.public_bytes(), enrolled_at=datetime.now(UTC)))
        app = create_app(ServerConfig(signer=TokenSigner.generate(), store=store))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        counted = Counted()
        proxy = await forwarder(port, counted)
        proxy_port = proxy.sockets[0].getsockname()[1]
        config = CabinConfig(
            cabin_id="bench-cabin",
            signaling_url=f"ws://127.0.0.1:{proxy_port}",
            identity=identity,
            video=SourceSpec("test"),
            audio=SourceSpec("test"),
            ice_addresses=LOOPBACK,
        )
        hub = app[HUB]
        async with Cabin(config, selftest_at_start=False) as cabin:
            await asyncio.wait_for(cabin.gateway.connected.wait(), timeout=10)
            await asyncio.sleep(1.0)  # the connection's opening (hello, welcome, schedule) is not the steady cost
            start_up, start_down, start_beats = counted.up, counted.down, hub.fleet.heartbeats
            arrivals: list[float] = []
            last = hub.fleet.latest("bench-cabin")
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                await asyncio.sleep(0.05)
                latest = hub.fleet.latest("bench-cabin")
                if latest is not last and latest is not None:
                    arrivals.append(time.monotonic())
                    last = latest
            elapsed = time.monotonic() - t0
            up, down = counted.up - start_up, counted.down - start_down
            beats = hub.fleet.heartbeats - start_beats
            sample = cabin.gateway.heartbeats.last
        proxy.close()
        await runner.cleanup()
        store.close()
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    size = len(dump(sample)) if sample is not None else 0
    print(f"run: {elapsed:.0f} s, no call, test camera and microphone, no Bluetooth device")
    print(f"heartbeats: {beats:.0f} ({beats / elapsed * 60:.1f} per minute)")
    if gaps:
        print(f"period: median {statistics.median(gaps):.2f} s, min {min(gaps):.2f} s, max {max(gaps):.2f} s")
    print(f"one heartbeat as JSON: {size} bytes")
    print(f"on the wire, cabin -> signaling: {up} bytes ({up / max(beats, 1):.0f} per heartbeat, all traffic)")
    print(f"on the wire, signaling -> cabin: {down} bytes")
    print(f"per day at this rate: {(up + down) / elapsed * 86400 / 1e6:.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    if args.seconds <= 0:
        sys.exit("--seconds must be > 0")
    asyncio.run(run(args.seconds))


if __name__ == "__main__":
    main()
