"""The `cabine` command: one module per command group (demo, serve, gateway, operator commands, decode)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cabine.cli.demo import add_demo_command, run_demo_command
from cabine.cli.gateway import add_gateway_command, run_gateway
from cabine.cli.operator import add_operator_commands, run_operator_command
from cabine.cli.serve import add_serve_command, run_serve
from cabine.errors import CabineError
from gateway.errors import GatewayError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cabine", description="Cabine: teleconsultation gateway for public cabins.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    add_demo_command(sub)
    add_serve_command(sub)
    add_operator_commands(sub)
    add_gateway_command(sub)

    decode = sub.add_parser("decode", help="decode a captured GATT payload, e.g. cabine decode 2A1C 06...")
    decode.add_argument("characteristic", help="16-bit UUID such as 2A35, or the full 128-bit form")
    decode.add_argument("hex", nargs="+", help="the payload in hexadecimal")
    return parser


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
            return run_demo_command(args)
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
