"""`cabine serve`: the signaling server on its own, for an operator's machine."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from pathlib import Path

from signaling.store import StoreError

log = logging.getLogger("cabine.serve")


def add_serve_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("serve", help="run the signaling server (HTTPS/WSS)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8443, help="port (default 8443)")
    parser.add_argument("--data-dir", type=Path, default=Path(".cabine"), help="keys, certificates, database")
    parser.add_argument("--db", type=Path, help="SQLite database file (default DATA_DIR/cabine.sqlite)")
    parser.add_argument("--public-url", help="URL professionals reach, used in links (default https://HOST:PORT)")
    parser.add_argument("--cert", type=Path, help="TLS certificate chain (PEM); default: a development certificate")
    parser.add_argument("--key", type=Path, help="TLS private key (PEM), with --cert")
    parser.add_argument(
        "--insecure-dev-http",
        action="store_true",
        help="serve plain HTTP/WS, for local development only (browsers refuse cameras off localhost without TLS)",
    )
    parser.add_argument(
        "--ice-server", action="append", default=[], metavar="URL", help="STUN/TURN URL handed to both ends (repeat)"
    )


def _ssl_context(args: argparse.Namespace, data_dir: Path) -> ssl.SSLContext | None:
    if args.insecure_dev_http:
        if args.cert or args.key:
            raise SystemExit("cabine serve: error: --insecure-dev-http cannot be combined with --cert/--key")
        return None
    if args.cert or args.key:
        if not (args.cert and args.key):
            raise SystemExit("cabine serve: error: --cert and --key go together")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(args.cert, args.key)
        except (OSError, ssl.SSLError) as exc:
            raise SystemExit(f"cabine serve: error: cannot load the certificate: {exc}") from None
        return context
    from signaling.tls import DEFAULT_NAMES, ensure_development_certificate

    names = tuple(dict.fromkeys((*DEFAULT_NAMES, args.host)))
    return ensure_development_certificate(data_dir / "certs", names).server_context()


async def _run(args: argparse.Namespace) -> int:
    from signaling.config import ServerConfig, hash_api_key
    from signaling.protocol import IceServer
    from signaling.server import load_or_create_operator_key, load_or_create_signer, serve
    from signaling.sqlite_store import SQLiteStore

    data_dir: Path = args.data_dir
    context = _ssl_context(args, data_dir)
    scheme = "http" if context is None else "https"
    public_url = args.public_url or f"{scheme}://{args.host}:{args.port}"
    signer = load_or_create_signer(data_dir / "signing-key.pem")
    key_file = data_dir / "operator-key"
    operator_key = load_or_create_operator_key(key_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with SQLiteStore.open(args.db or data_dir / "cabine.sqlite") as store:
        config = ServerConfig(
            signer=signer,
            store=store,
            public_url=public_url,
            operator_key_hashes=(hash_api_key(operator_key),),
            ice_servers=tuple(IceServer(urls=(url,)) for url in args.ice_server),
        )
        async with serve(config, args.host, args.port, context):
            print(f"Cabine signaling on {public_url} (database {args.db or data_dir / 'cabine.sqlite'})")
            print(f"Operator API key: {key_file}", flush=True)
            if context is None:
                print("WARNING: plain HTTP, for development only.", flush=True)
            await stop.wait()
    return 0


def run_serve(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except (OSError, StoreError) as exc:
        print(f"cabine serve: error: {exc}", file=sys.stderr)
        return 1
