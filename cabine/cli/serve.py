"""`cabine serve`: the signaling server on its own, for an operator's machine.

Every option is checked before anything changes, then the address is bound; only then are the database, the keys
and a development certificate made. A port in use, a wrong certificate or a missing directory leaves everything as
it was.

Three ways to listen: HTTPS/WSS with --cert/--key (production, or a proxy that speaks TLS to signaling); HTTPS
with a development certificate (no option); plain HTTP with --behind-proxy, on loopback only, for a reverse proxy
on the same machine that terminates TLS (docs/nginx.md). --insecure-dev-http is plain HTTP for local development.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import ssl
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cabine.cli import options
from cabine.errors import UsageError
from signaling.forwarding import Network
from signaling.store import StoreError
from signaling.stores import check_store, describe, is_postgres, open_store
from signaling.turn import TurnConfigError, TurnSettings
from signaling.webhooks import EVENT_TYPES, WebhookError, WebhookTarget

if TYPE_CHECKING:
    from signaling.server import Listener

log = logging.getLogger("cabine.serve")


def add_serve_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("serve", help="run the signaling server (HTTPS/WSS)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=options.port, default=8443, help="port, 1 to 65535 (default 8443)")
    parser.add_argument("--data-dir", type=Path, default=Path(".cabine"), help="keys, certificates, database")
    parser.add_argument(
        "--db",
        help="an SQLite database file (default DATA_DIR/cabine.sqlite), or a PostgreSQL URL "
        "(postgresql://user:password@host:5432/cabine; the password may also come from ~/.pgpass or PGPASSWORD)",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="run as one node of several sharing this Redis (redis://host:6379/0), behind a load balancer; needs a "
        "PostgreSQL --db and the same signing key for every node (docs/cluster.md)",
    )
    parser.add_argument(
        "--public-url",
        type=options.public_url,
        help="URL professionals reach, used in links (default https://HOST:PORT)",
    )
    parser.add_argument("--cert", type=Path, help="TLS certificate chain (PEM); default: a development certificate")
    parser.add_argument("--key", type=Path, help="TLS private key (PEM), with --cert")
    parser.add_argument(
        "--insecure-dev-http",
        action="store_true",
        help="serve plain HTTP/WS, for local development only (browsers refuse cameras off localhost without TLS)",
    )
    parser.add_argument(
        "--behind-proxy",
        action="store_true",
        help="serve plain HTTP on a loopback address to a reverse proxy on this machine that terminates TLS "
        "(needs --trusted-proxy and an https --public-url; see docs/nginx.md)",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        type=options.ip_network,
        metavar="CIDR",
        help="a reverse proxy whose X-Forwarded-For is believed, e.g. 127.0.0.1 or 10.0.0.0/24 (repeat)",
    )
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        type=options.ice_url,
        metavar="URL",
        help="STUN URL (or TURN URL with fixed credentials in the URL's server) handed to both ends (repeat)",
    )
    parser.add_argument(
        "--turn-url",
        action="append",
        default=[],
        type=options.ice_url,
        metavar="URL",
        help="TURN URL handed to both ends with short-lived credentials (needs --turn-secret-file; repeat, e.g. "
        "turn:turn.example.org:3478, turn:turn.example.org:3478?transport=tcp, turns:turn.example.org:443)",
    )
    parser.add_argument(
        "--turn-secret-file",
        type=options.existing_file,
        metavar="FILE",
        help="file holding coturn's static-auth-secret (use-auth-secret), at least 16 characters",
    )
    parser.add_argument(
        "--turn-ttl",
        type=options.int_range(1, 24 * 60, "--turn-ttl"),
        default=60,
        metavar="MINUTES",
        help="least lifetime of a TURN credential, 1 to 1440 (default 60); it always covers the appointment",
    )
    parser.add_argument(
        "--relay-only",
        action="store_true",
        help="both ends use TURN relays only, never a direct path (needs --turn-url)",
    )
    parser.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="URL",
        help="POST appointment events and cabin alerts to this URL, signed (needs --webhook-secret-file; repeat)",
    )
    parser.add_argument(
        "--webhook-secret-file",
        type=options.existing_file,
        metavar="FILE",
        help="file holding the webhooks' shared secret (at least 16 characters); receivers check each signature",
    )
    parser.add_argument(
        "--webhook-event",
        action="append",
        default=[],
        metavar="TYPE",
        help="send only these event types (repeat; default all): " + ", ".join(sorted(EVENT_TYPES)),
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """What `cabine serve` will do, every option checked; nothing is changed yet."""

    host: str
    port: int
    data_dir: Path
    db: str | Path
    public_url: str
    tls: ssl.SSLContext | None  # None: plain HTTP, or the development certificate when `development_tls`
    development_tls: bool
    behind_proxy: bool
    trusted_proxies: tuple[Network, ...]
    ice_servers: tuple[str, ...]
    turn: TurnSettings | None
    relay_only: bool
    webhooks: tuple[WebhookTarget, ...]
    redis: str | None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _certificate(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context from --cert and --key.

    Raises:
        UsageError: a file cannot be read, is not PEM, or the key does not match the certificate.
    """
    for path, option in ((cert, "--cert"), (key, "--key")):
        try:
            path.read_bytes()
        except OSError as exc:
            raise UsageError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise UsageError(f"--key {key} is not the private key of --cert {cert}") from None
        raise UsageError(
            f"cannot load --cert {cert} with --key {key}: expected a PEM certificate chain and its private key"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot load --cert {cert} with --key {key}: {exc.strerror or exc}") from None
    return context


def _check_data_dir(path: Path) -> None:
    """The data directory exists and is writable, or can be created.

    Raises:
        UsageError: it is a file, or it (or its nearest existing parent) is not a writable directory.
    """
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"--data-dir {path} is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"--data-dir {path} is not writable")
        return
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--data-dir {path} cannot be created: {parent} is not a writable directory")


def _plan(args: argparse.Namespace) -> _Plan:
    """Check every option together, changing nothing.

    Raises:
        UsageError: an option, or a combination of options, is wrong; the message says which and why.
    """
    plain = args.insecure_dev_http or args.behind_proxy
    if args.insecure_dev_http and args.behind_proxy:
        raise UsageError("--insecure-dev-http and --behind-proxy cannot be combined: --behind-proxy is for production")
    if plain and (args.cert or args.key):
        flag = "--behind-proxy" if args.behind_proxy else "--insecure-dev-http"
        raise UsageError(f"{flag} serves plain HTTP: it cannot be combined with --cert/--key")
    if bool(args.cert) != bool(args.key):
        raise UsageError("--cert and --key go together")
    trusted = tuple(ipaddress.ip_network(text) for text in args.trusted_proxy)
    if args.behind_proxy:
        if not _is_loopback(args.host):
            raise UsageError(
                f"--behind-proxy listens on loopback only (127.0.0.1 or ::1), not --host {args.host}: "
                "a proxy on another machine reaches signaling over TLS (--cert/--key)"
            )
        if not args.public_url or not args.public_url.startswith("https://"):
            raise UsageError(
                "--behind-proxy needs --public-url with the https:// address the proxy serves, "
                "e.g. --public-url https://visio.example.org"
            )
        if not trusted:
            raise UsageError(
                "--behind-proxy needs --trusted-proxy with the proxy's address (e.g. --trusted-proxy 127.0.0.1): "
                "otherwise every client would look like the proxy"
            )
    tls = _certificate(args.cert, args.key) if args.cert else None
    turn = _turn(args)
    data_dir: Path = args.data_dir
    _check_data_dir(data_dir)
    db: str | Path = args.db if is_postgres(args.db or "") else Path(args.db) if args.db else data_dir / "cabine.sqlite"
    if args.db is not None or data_dir.exists():
        try:
            check_store(db)
        except StoreError as exc:
            raise UsageError(str(exc)) from None
    if args.redis is not None:
        _check_redis(args.redis, db)
    scheme = "http" if plain else "https"
    return _Plan(
        host=args.host,
        port=args.port,
        data_dir=data_dir,
        db=db,
        public_url=args.public_url or f"{scheme}://{_url_host(args.host)}:{args.port}",
        tls=tls,
        development_tls=not plain and tls is None,
        behind_proxy=args.behind_proxy,
        trusted_proxies=trusted,
        ice_servers=tuple(args.ice_server),
        turn=turn,
        relay_only=args.relay_only,
        webhooks=_webhooks(args),
        redis=args.redis,
    )


def _check_redis(url: str, db: str | Path) -> None:
    """Raises: UsageError: not a Redis URL, Redis unreachable, or a database the other nodes cannot share."""
    from signaling.cluster import ClusterError, check_redis, redacted

    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise UsageError(f"--redis {redacted(url)}: expected redis://HOST:PORT/DB, rediss://… or unix://PATH")
    if not is_postgres(str(db)):
        raise UsageError(
            "--redis runs several nodes on one database: it needs --db postgresql://… (SQLite is one process's)"
        )
    try:
        asyncio.run(check_redis(url))
    except ClusterError as exc:
        raise UsageError(str(exc)) from None


def _webhooks(args: argparse.Namespace) -> tuple[WebhookTarget, ...]:
    """Raises: UsageError: webhook options that do not go together, a bad URL, event or secret."""
    if bool(args.webhook) != bool(args.webhook_secret_file):
        raise UsageError("--webhook and --webhook-secret-file go together")
    if args.webhook_event and not args.webhook:
        raise UsageError("--webhook-event needs --webhook")
    if not args.webhook:
        return ()
    try:
        secret = args.webhook_secret_file.read_text(encoding="utf-8").strip().encode()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--webhook-secret-file {args.webhook_secret_file}: cannot read it: {exc}") from None
    try:
        return tuple(WebhookTarget(url, secret, frozenset(args.webhook_event)) for url in args.webhook)
    except WebhookError as exc:
        raise UsageError(f"--webhook: {exc}") from None


def _turn(args: argparse.Namespace) -> TurnSettings | None:
    """Raises: UsageError: TURN options that do not go together, or an unusable secret file."""
    if args.relay_only and not args.turn_url:
        raise UsageError("--relay-only needs --turn-url (and --turn-secret-file): without a relay nothing connects")
    if bool(args.turn_url) != bool(args.turn_secret_file):
        raise UsageError("--turn-url and --turn-secret-file go together")
    if not args.turn_url:
        return None
    for url in args.turn_url:
        if not url.startswith("turn"):
            raise UsageError(f"--turn-url {url}: must start with turn: or turns: (STUN URLs go in --ice-server)")
    try:
        secret = args.turn_secret_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--turn-secret-file {args.turn_secret_file}: cannot read it: {exc}") from None
    try:
        return TurnSettings(urls=tuple(args.turn_url), secret=secret, ttl=timedelta(minutes=args.turn_ttl))
    except TurnConfigError as exc:
        raise UsageError(f"--turn-secret-file {args.turn_secret_file}: {exc}") from None


def _development_context(plan: _Plan) -> ssl.SSLContext:
    from signaling.tls import DEFAULT_NAMES, ensure_development_certificate

    names = tuple(dict.fromkeys((*DEFAULT_NAMES, plan.host)))
    return ensure_development_certificate(plan.data_dir / "certs", names).server_context()


async def _run(plan: _Plan, listener: Listener) -> int:
    from signaling.config import ServerConfig, hash_api_key
    from signaling.protocol import IcePolicy, IceServer
    from signaling.server import load_or_create_operator_key, load_or_create_signer, serve, settle_memory

    # The address is ours: from here on, making files is safe.
    plan.data_dir.mkdir(parents=True, exist_ok=True)
    with open_store(plan.db) as store:
        signer = load_or_create_signer(plan.data_dir / "signing-key.pem")
        key_file = plan.data_dir / "operator-key"
        operator_key = load_or_create_operator_key(key_file)
        context = _development_context(plan) if plan.development_tls else plan.tls
        config = ServerConfig(
            signer=signer,
            store=store,
            public_url=plan.public_url,
            operator_key_hashes=(hash_api_key(operator_key),),
            ice_servers=tuple(IceServer(urls=(url,)) for url in plan.ice_servers),
            turn=plan.turn,
            ice_policy=IcePolicy.RELAY if plan.relay_only else IcePolicy.ALL,
            trusted_proxies=plan.trusted_proxies,
            webhooks=plan.webhooks,
            redis_url=plan.redis,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with serve(config, plan.host, plan.port, context, listener=listener):
            settle_memory()
            print(f"Cabine signaling on {plan.public_url} (database {describe(plan.db)})")
            if plan.redis is not None:
                from signaling.cluster import redacted

                print(f"One node of a cluster on Redis {redacted(plan.redis)}")
            if plan.behind_proxy:
                proxies = ", ".join(str(n) for n in plan.trusted_proxies)
                print(f"Plain HTTP on http://{_url_host(plan.host)}:{plan.port} for the reverse proxy ({proxies})")
            elif context is None:
                print("WARNING: plain HTTP, for development only.")
            print(f"Operator API key: {key_file}", flush=True)
            await stop.wait()
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Check every option, take the address, then start; errors are one line (exit 2 for options, 1 otherwise).

    Raises:
        UsageError: an option is wrong (the caller prints it and exits with 2).
    """
    from signaling.server import Listener, ListenError

    plan = _plan(args)
    try:
        with Listener.bind(plan.host, plan.port) as listener:
            return asyncio.run(_run(plan, listener))
    except (ListenError, StoreError, OSError) as exc:
        print(f"cabine serve: error: {exc}", file=sys.stderr)
        return 1
