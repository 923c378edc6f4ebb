"""`cabine gateway`: run a cabin from its configuration file, test it, or print its configuration.

    cabine gateway [--config FILE] [options]            run the cabin until stopped (SIGTERM, SIGINT, SIGHUP)
    cabine gateway selftest [--json] [options]          check the cabin once; exit 0 if a call can work, else 1
    cabine gateway config [options]                     print the effective configuration

The configuration is /etc/cabine/cabin.toml (or $CABINE_CONFIG, or --config FILE); every key can be overridden with
`--set section.key=value`, and the common ones have their own options below.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cabine.cli import options

if TYPE_CHECKING:
    from gateway.config import CabinConfig, CabinSettings

log = logging.getLogger("cabine.gateway")

# Exit codes: 1 the cabin could not run (or a self-test failed), 2 its configuration is wrong.
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _cabin_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: an option not given leaves the file's value (and the parent parser's, for `gateway ACTION`).
    s = argparse.SUPPRESS
    parser.add_argument(
        "--config", type=Path, default=s, help="the configuration file (default /etc/cabine/cabin.toml)"
    )
    parser.add_argument(
        "--set",
        action="append",
        dest="overrides",
        metavar="SECTION.KEY=VALUE",
        default=s,
        help="override one key of the file, e.g. --set camera.fps=15 (repeatable)",
    )
    parser.add_argument("--server", default=s, help="[signaling.server] the signaling URL, https://...")
    parser.add_argument("--ca-file", default=s, help="[signaling.ca_file] CA certificate to trust for the server")
    parser.add_argument("--key-file", default=s, help="[signaling.key_file] the cabin's key (cabine cabin enroll)")
    parser.add_argument("--video", default=s, help="[camera.source] test, none, v4l2:/dev/video0 or file:PATH")
    parser.add_argument("--video-size", type=options.video_size, default=s, help="[camera.width/height] WxH")
    parser.add_argument("--fps", type=options.int_range(1, 60, "frames per second"), default=s, help="[camera.fps]")
    parser.add_argument("--codec", choices=["vp8", "h264"], default=s, help="[camera.codec] video codec offered first")
    parser.add_argument("--audio", default=s, help="[microphone.source] test, none, alsa:DEV, pulse:DEV or file:PATH")
    parser.add_argument(
        "--device",
        action="append",
        dest="devices",
        default=s,
        metavar="ADDRESS|SERVICE",
        help="[devices.allow] a medical device's Bluetooth address, or a service name such as blood-pressure "
        "(repeatable; replaces the file's list)",
    )
    parser.add_argument("--adapter", default=s, help="[devices.adapter] BlueZ adapter, e.g. hci0")
    parser.add_argument(
        "--screen-port", type=options.port_or_zero, default=s, help="[screen.port] cabin screen port (0: none)"
    )
    parser.add_argument(
        "--language",
        action="append",
        dest="languages",
        default=s,
        help="[screen.languages] a language of the cabin screen (repeatable; the first is the default)",
    )
    parser.add_argument(
        "--ice-address",
        action="append",
        dest="ice_addresses",
        type=options.ip_address,
        default=s,
        metavar="IP",
        help="[ice.addresses] gather ICE host candidates only on this address (repeatable)",
    )
    parser.add_argument(
        "--relay-only",
        action="store_true",
        default=s,
        help="[ice.relay_only] calls go through the TURN relay only",
    )
    parser.add_argument(
        "--auto-checkin",
        action="store_true",
        default=s,
        help="[calls.auto_checkin] take the citizen as present for open appointments (cabins without a screen)",
    )


def add_gateway_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    _cabin_options(common)
    parser = sub.add_parser(
        "gateway",
        parents=[common],
        help="run this cabin (after `cabine cabin enroll`); `selftest` checks it, `config` shows its configuration",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="gateway_action", metavar="ACTION")
    actions.add_parser("run", parents=[common], help="run the cabin until stopped (the default)")
    selftest = actions.add_parser("selftest", parents=[common], help="check the cabin once and say what works")
    selftest.add_argument("--json", action="store_true", help="print the report as JSON")
    actions.add_parser("config", parents=[common], help="print the effective configuration (TOML)")


def overrides(args: argparse.Namespace) -> list[tuple[str, str, object]]:
    """The command line as (section, key, value) overrides of the file.

    Raises:
        ConfigError: a --set that is not section.key=value.
    """
    from gateway.config import parse_override

    found: list[tuple[str, str, object]] = [parse_override(text) for text in getattr(args, "overrides", [])]
    flags: dict[str, tuple[str, str]] = {
        "server": ("signaling", "server"),
        "ca_file": ("signaling", "ca_file"),
        "key_file": ("signaling", "key_file"),
        "video": ("camera", "source"),
        "fps": ("camera", "fps"),
        "codec": ("camera", "codec"),
        "audio": ("microphone", "source"),
        "devices": ("devices", "allow"),
        "adapter": ("devices", "adapter"),
        "screen_port": ("screen", "port"),
        "languages": ("screen", "languages"),
        "ice_addresses": ("ice", "addresses"),
        "auto_checkin": ("calls", "auto_checkin"),
        "relay_only": ("ice", "relay_only"),
    }
    for dest, (section, key) in flags.items():
        if hasattr(args, dest):
            found.append((section, key, getattr(args, dest)))
    if hasattr(args, "video_size"):
        width, height = args.video_size
        found += [("camera", "width", width), ("camera", "height", height)]
    return found


def load(args: argparse.Namespace, *, require_server: bool = True) -> CabinSettings:
    """The settings from the file and the command line. Raises: ConfigError."""
    from gateway.config import default_config_file, load_settings

    path: Path | None = getattr(args, "config", None) or default_config_file()
    return load_settings(path, overrides(args), require_server=require_server)


def run_gateway(args: argparse.Namespace) -> int:
    # Imported here: the operator's commands must not load the media stack.
    from gateway.config import CabinConfig, check_resources
    from gateway.errors import ConfigError
    from gateway.identity import CabinIdentity

    action = args.gateway_action or "run"
    try:
        settings = load(args, require_server=action != "config")
    except ConfigError as exc:
        return _error(f"{exc}", EXIT_CONFIG)
    if action == "config":
        print(settings.to_toml(), end="")
        return 0
    try:
        check_resources(settings)
    except ConfigError as exc:
        if action != "run":
            return _error(str(exc), EXIT_CONFIG)
        # A cabin PC may boot with its camera unplugged: it runs, shows the "camera unavailable" card in calls and
        # alerts the operator, rather than staying offline until someone drives to the town hall.
        print(f"cabine gateway: warning: {exc}; starting anyway (the operator is alerted)", file=sys.stderr)
    try:
        identity = CabinIdentity.load(settings.signaling.key_file)
        config = CabinConfig.from_settings(settings, identity)
    except ConfigError as exc:
        return _error(f"{exc} (enroll this cabin first: cabine cabin enroll --help)", EXIT_CONFIG)
    if action == "selftest":
        return asyncio.run(_selftest(config, settings, as_json=args.json))
    from gateway.allocator import limit_arenas

    limit_arenas()  # before any thread allocates: months of calls without the allocator's creep
    try:
        return asyncio.run(_run(config, settings))
    except OSError as exc:
        return _error(f"cannot start: {exc}", EXIT_FAILED)


def _error(message: str, code: int) -> int:
    print(f"cabine gateway: error: {message}", file=sys.stderr)
    return code


async def _run(config: CabinConfig, settings: CabinSettings) -> int:
    from gateway.app import Cabin
    from gateway.selftest.cabin import cabin_selftest

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    async with Cabin(config, screen=settings.screen, selftest=cabin_selftest) as cabin:
        screen = f"; cabin screen on {cabin.kiosk.url}" if cabin.kiosk is not None else ""
        print(f"Cabin {config.cabin_id}: running, connecting to {settings.signaling.server}{screen}", flush=True)
        await stop.wait()
        print(f"Cabin {config.cabin_id}: stopping", flush=True)
    return 0


async def _selftest(config: CabinConfig, settings: CabinSettings, *, as_json: bool) -> int:
    from gateway.selftest import render_json, render_text
    from gateway.selftest.cabin import standalone_selftest

    report = await standalone_selftest(config)
    print((render_json(report) if as_json else render_text(report)).rstrip("\n"), flush=True)
    return 0 if report.ok else EXIT_FAILED
