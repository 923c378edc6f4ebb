"""The `cabine` command: demo, gateway, decode."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cabine.cli.gateway import add_gateway_command, run_gateway
from cabine.cli.operator import add_operator_commands, run_operator_command
from cabine.cli.serve import add_serve_command, run_serve
from cabine.errors import CabineError
from gateway.errors import GatewayError


def _video_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    try:
        size = int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return size


def _media_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", default="test", help="camera: test, none or v4l2:/dev/video0 (default: test)")
    parser.add_argument("--audio", default="test", help="microphone: test, none, alsa:DEVICE or pulse:DEVICE")
    parser.add_argument("--video-size", type=_video_size, default=(640, 480), help="WIDTHxHEIGHT (default 640x480)")
    parser.add_argument("--fps", type=int, default=30, help="frames per second (default 30)")
    parser.add_argument(
        "--ice-address",
        action="append",
        dest="ice_addresses",
        metavar="IP",
        help="gather ICE host candidates only on this address (repeatable; default: all local addresses)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cabine", description="Cabine: teleconsultation gateway for public cabins.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run signaling and one emulated cabin, and print a doctor link")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8443, help="HTTPS port (default 8443)")
    demo.add_argument("--data-dir", type=Path, default=Path(".cabine"), help="where keys and certificates go")
    demo.add_argument(
        "--kind",
        default="medical",
        choices=["medical", "bank", "energy", "public-service"],
        help="appointment kind",
    )
    demo.add_argument(
        "--devices",
        default="bluetooth",
        choices=["bluetooth", "direct", "none"],
        help="medical devices: emulated peripherals read through bleak (default), payloads straight to the decoders, "
        "or none",
    )
    demo.add_argument(
        "--device-period",
        type=float,
        default=10.0,
        help="seconds between spontaneous measurements (0: on request)",
    )
    demo.add_argument("--kiosk-port", type=int, default=8088, help="cabin screen port on 127.0.0.1 (0: no screen)")
    demo.add_argument(
        "--auto-checkin", action="store_true", help="take the citizen as present without pressing start on the screen"
    )
    demo.add_argument(
        "--reading-interval", type=float, default=3.0, help="seconds between readings with --devices direct"
    )
    demo.add_argument("--codec", choices=["vp8", "h264"], help="offer only this video codec (default: VP8, then H264)")
    _media_arguments(demo)

    add_serve_command(sub)
    add_operator_commands(sub)
    _media_arguments(add_gateway_command(sub))

    decode = sub.add_parser("decode", help="decode a captured GATT payload, e.g. cabine decode 2A1C 06...")
    decode.add_argument("characteristic", help="16-bit UUID such as 2A35, or the full 128-bit form")
    decode.add_argument("hex", nargs="+", help="the payload in hexadecimal")
    return parser


def _demo(args: argparse.Namespace) -> int:
    from cabine.demo.run import DemoOptions, serve_demo
    from gateway.media.sources import SourceSpec, VideoFormat
    from gateway.session import VideoCodec
    from signaling.protocol import AppointmentKind

    width, height = args.video_size
    options = DemoOptions(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        video=SourceSpec.parse(args.video, audio=False),
        audio=SourceSpec.parse(args.audio, audio=True),
        video_format=VideoFormat(width, height, args.fps),
        ice_addresses=tuple(args.ice_addresses) if args.ice_addresses else None,
        reading_interval=args.reading_interval,
        devices=args.devices,
        device_period=args.device_period or None,
        kiosk_port=args.kiosk_port or None,
        auto_checkin=args.auto_checkin,
        appointment_kind=AppointmentKind(args.kind),
        video_codec=VideoCodec(args.codec) if args.codec else None,
    )
    try:
        return asyncio.run(serve_demo(options))
    except OSError as exc:
        print(f"cabine demo: error: cannot start: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["decode"]:
        from cabine.cli import decode as decode_cli

        return decode_cli.run(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if args.command != "demo" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # bleak warns that it cannot ask bluetoothctl for BlueZ's version, which the emulation does not have.
    logging.getLogger("bleak").setLevel(logging.ERROR if not args.verbose else logging.DEBUG)
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "gateway":
            return run_gateway(args)
        if args.command in ("appointment", "cabin", "certs"):
            return run_operator_command(args)
    except (CabineError, GatewayError) as exc:
        print(f"cabine {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return 2
