"""`cabine gateway`: run a cabin's gateway against a signaling server, until stopped."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import CabinConfig

log = logging.getLogger("cabine.gateway")


def add_gateway_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = sub.add_parser("gateway", help="run this cabin's gateway (after `cabine cabin enroll`)")
    parser.add_argument("--server", required=True, help="signaling URL, e.g. https://visio.example.org")
    parser.add_argument("--key-file", type=Path, default=Path(".cabine/cabin.key"), help="the cabin's enrolled key")
    parser.add_argument("--ca-file", type=Path, help="CA certificate to trust for the server (default: system)")
    parser.add_argument(
        "--auto-checkin",
        action="store_true",
        help="take the citizen as present for open appointments (cabins without a kiosk screen)",
    )
    return parser


def _ws_url(server: str) -> str:
    if server.startswith("https://"):
        return "wss://" + server.removeprefix("https://")
    if server.startswith("http://"):
        return "ws://" + server.removeprefix("http://")
    return server


async def _run(config: CabinConfig) -> int:
    from gateway.cabin import CabinGateway

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with CabinGateway(config):
        print(f"Cabin {config.cabin_id}: gateway running, connecting to {config.signaling_url}", flush=True)
        await stop.wait()
    return 0


def run_gateway(args: argparse.Namespace) -> int:
    # Imported here: the operator's commands must not load the media stack.
    from gateway.config import CabinConfig
    from gateway.identity import CabinIdentity
    from gateway.media.sources import SourceSpec, VideoFormat

    identity = CabinIdentity.load(args.key_file)
    width, height = args.video_size
    config = CabinConfig(
        cabin_id=identity.cabin_id,
        signaling_url=_ws_url(args.server),
        identity=identity,
        ca_file=args.ca_file,
        video=SourceSpec.parse(args.video, audio=False),
        audio=SourceSpec.parse(args.audio, audio=True),
        video_format=VideoFormat(width, height, args.fps),
        ice_addresses=tuple(args.ice_addresses) if args.ice_addresses else None,
        auto_checkin=args.auto_checkin,
    )
    return asyncio.run(_run(config))
