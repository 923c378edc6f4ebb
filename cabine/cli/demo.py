"""`cabine demo`: signaling and one emulated cabin in one process, printing a doctor link."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from cabine.cli import options
from gateway.config import KNOWN_LANGUAGES

KINDS = ("medical", "bank", "energy", "public-service")


def media_arguments(parser: argparse.ArgumentParser) -> None:
    """The camera, microphone and ICE options the demo shares with benchmarks' command lines."""
    parser.add_argument(
        "--video", default="test", help="camera: test, none, v4l2:/dev/video0 or file:PATH (default: test)"
    )
    parser.add_argument(
        "--audio",
        default="test",
        help="microphone: test, room (a simulated cabin, with echo), none, alsa:DEVICE, pulse:DEVICE or file:PATH",
    )
    parser.add_argument(
        "--video-size", type=options.video_size, default=(640, 480), help="WIDTHxHEIGHT (default 640x480)"
    )
    parser.add_argument(
        "--fps", type=options.int_range(1, 60, "frames per second"), default=30, help="1 to 60 (default 30)"
    )
    parser.add_argument(
        "--ice-address",
        action="append",
        dest="ice_addresses",
        type=options.ip_address,
        metavar="IP",
        help="gather ICE host candidates only on this address (repeatable; default: all local addresses)",
    )


def add_demo_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="run signaling and one emulated cabin, and print a doctor link")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=options.port, default=8443, help="HTTPS port (default 8443)")
    demo.add_argument(
        "--public-url",
        type=options.public_url,
        help="the URL browsers reach the demo at, used in the doctor link (default https://HOST:PORT)",
    )
    demo.add_argument("--data-dir", type=Path, default=Path(".cabine"), help="where keys and certificates go")
    demo.add_argument("--kind", default="medical", choices=KINDS, help="appointment kind")
    demo.add_argument(
        "--devices",
        default="bluetooth",
        choices=["bluetooth", "direct", "none"],
        help="medical devices: emulated peripherals read through bleak (default), payloads straight to the decoders, "
        "or none",
    )
    demo.add_argument(
        "--device-period",
        type=options.positive_float("seconds", allow_zero=True, maximum=3600),
        default=10.0,
        help="seconds between spontaneous measurements (0: on request)",
    )
    demo.add_argument(
        "--kiosk-port", type=options.port_or_zero, default=8088, help="cabin screen port on 127.0.0.1 (0: no screen)"
    )
    demo.add_argument(
        "--language",
        action="append",
        dest="languages",
        choices=KNOWN_LANGUAGES,
        help="a language of the cabin screen (repeat; the first is the default; default: fr then en)",
    )
    demo.add_argument(
        "--auto-checkin", action="store_true", help="take the citizen as present without pressing start on the screen"
    )
    demo.add_argument(
        "--reading-interval",
        type=options.positive_float("seconds", maximum=3600),
        default=3.0,
        help="seconds between readings with --devices direct",
    )
    demo.add_argument(
        "--codec", choices=["vp8", "h264"], help="video codec offered first (default VP8); the other is the fallback"
    )
    demo.add_argument(
        "--printer", metavar="QUEUE", help="a CUPS queue to print on (default: a test printer writing DATA_DIR/printed)"
    )
    demo.add_argument(
        "--scanner", metavar="DEVICE", help="a SANE device to scan with, see `scanimage -L` (default: SANE's test one)"
    )
    media_arguments(demo)


def run_demo_command(args: argparse.Namespace) -> int:
    from cabine.demo.run import DemoOptions, serve_demo
    from gateway.documents.printer import CupsPrinter
    from gateway.errors import ConfigError, GatewayError
    from gateway.media.codecs import VideoCodec
    from gateway.media.spec import SourceSpec, VideoFormat
    from gateway.selftest.cabin import cabin_selftest
    from signaling.errors import SignalingError
    from signaling.protocol import AppointmentKind

    width, height = args.video_size
    try:
        video = SourceSpec.parse(args.video, audio=False)
        audio = SourceSpec.parse(args.audio, audio=True)
        video.check_available()
        audio.check_available()
        if args.printer is not None:
            CupsPrinter(args.printer)  # checks the queue's name
        if args.scanner is not None and not args.scanner.strip():
            raise ConfigError("--scanner needs a SANE device name (see `scanimage -L`)")
    except (ConfigError, GatewayError) as exc:
        print(f"cabine demo: error: {exc}", file=sys.stderr)
        return 2
    demo_options = DemoOptions(
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        data_dir=args.data_dir,
        video=video,
        audio=audio,
        video_format=VideoFormat(width, height, args.fps),
        ice_addresses=tuple(args.ice_addresses) if args.ice_addresses else None,
        reading_interval=args.reading_interval,
        devices=args.devices,
        device_period=args.device_period or None,
        kiosk_port=args.kiosk_port or None,
        languages=tuple(dict.fromkeys(args.languages)) if args.languages else KNOWN_LANGUAGES,
        auto_checkin=args.auto_checkin,
        appointment_kind=AppointmentKind(args.kind),
        video_codec=VideoCodec(args.codec) if args.codec else None,
        selftest=cabin_selftest,
        printer_queue=args.printer,
        scanner_device=args.scanner,
    )
    from gateway.allocator import limit_arenas

    limit_arenas()  # as `cabine gateway` does
    try:
        return asyncio.run(serve_demo(demo_options))
    except (OSError, SignalingError) as exc:
        print(f"cabine demo: error: {exc}", file=sys.stderr)
        return 1
