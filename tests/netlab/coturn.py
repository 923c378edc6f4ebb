"""A real coturn in a namespace (the lab's core), with time-limited credentials (the "TURN REST API" convention).

It listens on TURN_IP: UDP and TCP on 3478, TLS on 443 (a throwaway self-signed certificate; coturn also accepts
plain TCP TURN on that port, telling the two apart by the first bytes), relays from a small port range on the same
address, and takes only credentials made with the shared secret. Loopback peers stay forbidden.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import socket
import time
from pathlib import Path
from typing import Final, Self

from aioice import stun

from signaling.tls import CertificatePaths, ensure_development_certificate
from tests.netlab.addresses import SIDES, TURN_IP, TURN_PORT, TURN_RELAY_PORTS, TURN_TLS_PORT
from tests.netlab.errors import NetlabError
from tests.netlab.inns import NetnsThread, NsProcess, spawn
from tests.netlab.resource import Started

_START_TIMEOUT: Final = 10.0
_PROBE_TIMEOUT: Final = 0.3


def credentials(secret: str, name: str, ttl: int) -> tuple[str, str]:
    """(username, password) valid for `ttl` seconds: username "<unix-expiry>:<name>", password
    base64(HMAC-SHA1(secret, username))."""
    username = f"{int(time.time()) + ttl}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


async def _stun_binding(address: tuple[str, int]) -> bool:
    """Whether a STUN Binding request over UDP is answered within _PROBE_TIMEOUT."""
    loop = asyncio.get_running_loop()
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.connect(address)
            await loop.sock_sendall(sock, bytes(request))
            async with asyncio.timeout(_PROBE_TIMEOUT):
                while True:
                    answer = stun.parse_message(await loop.sock_recv(sock, 2048))
                    if answer.transaction_id == request.transaction_id:
                        return answer.message_class == stun.Class.RESPONSE
        except (OSError, TimeoutError, ValueError):
            return False


async def _tcp_accepts(address: tuple[str, int]) -> bool:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            _, writer = await asyncio.open_connection(*address)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _answers(ip: str, port: int, tls_port: int) -> bool:
    udp, tcp, tls = await asyncio.gather(
        _stun_binding((ip, port)), _tcp_accepts((ip, port)), _tcp_accepts((ip, tls_port))
    )
    return udp and tcp and tls


class Coturn(Started):
    """coturn running in namespace `ns`; `async with Coturn(ns, tmp_path, secret=...) as turn:`.

    Raises (on start):
        NetlabError: coturn exited, or did not answer on UDP, TCP and TLS within the start timeout.
    """

    def __init__(
        self,
        ns: str,
        workdir: Path,
        *,
        secret: str,
        realm: str = "netlab.test",
        ip: str = TURN_IP,
        port: int = TURN_PORT,
        tls_port: int = TURN_TLS_PORT,
        relay_ports: tuple[int, int] = TURN_RELAY_PORTS,
        start_timeout: float = _START_TIMEOUT,
    ) -> None:
        self.ns = ns
        self.workdir = workdir
        self.realm = realm
        self.ip = ip
        self.port = port
        self.tls_port = tls_port
        self.relay_ports = relay_ports
        self._secret = secret
        self._start_timeout = start_timeout
        self._process: NsProcess | None = None
        self._closed = False

    def argv(self, certificate: CertificatePaths) -> list[str]:
        """coturn's command line (the secret is on it: never log it)."""
        return [
            "turnserver",
            "-n",  # no configuration file: everything is here
            f"--listening-ip={self.ip}",
            f"--relay-ip={self.ip}",
            f"--listening-port={self.port}",
            f"--tls-listening-port={self.tls_port}",
            f"--cert={certificate.cert}",
            f"--pkey={certificate.key}",
            "--no-dtls",
            "--no-rfc5780",
            f"--min-port={self.relay_ports[0]}",
            f"--max-port={self.relay_ports[1]}",
            f"--realm={self.realm}",
            "--use-auth-secret",
            f"--static-auth-secret={self._secret}",
            "--no-cli",
            "--fingerprint",
            "--no-multicast-peers",
            "--log-file=stdout",
            "--simple-log",
            f"--pidfile={self.workdir / 'turnserver.pid'}",
            f"--userdb={self.workdir / 'turndb.sqlite'}",
        ]

    def credentials(self, name: str, ttl: int = 3600) -> tuple[str, str]:
        """Valid (username, password) for this server."""
        return credentials(self._secret, name, ttl)

    def urls(self, host: str | None = None) -> list[str]:
        """TURN URLs for UDP, TCP, TLS (`host`: another address in front of it, e.g. a delay forwarder)."""
        where = host or self.ip
        return [
            f"turn:{where}:{self.port}?transport=udp",
            f"turn:{where}:{self.tls_port}?transport=tcp",
            f"turns:{where}:{self.tls_port}?transport=tcp",
        ]

    @property
    def certificate(self) -> Path:
        """The authority's PEM file that signed coturn's certificate (a CA file for a client that verifies TLS)."""
        return self.workdir / "certs" / "ca.crt"

    @property
    def process(self) -> NsProcess:
        """Its process.

        Raises:
            NetlabError: not started.
        """
        if self._process is None:
            raise NetlabError("coturn is not started")
        return self._process

    def log_text(self) -> str:
        return self._process.log_text() if self._process is not None else ""

    async def start(self) -> Self:
        """Start coturn and wait until it answers a STUN Binding over UDP and accepts TCP on both ports.

        Raises:
            NetlabError: it exited or did not answer in time (its log is in the message).
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The delay forwarders' addresses too: a TLS client sent through one checks the name it dialled.
        certificate = ensure_development_certificate(
            self.workdir / "certs", (self.ip, *(a.delay_ip for a in SIDES.values()))
        )
        self._process = await spawn(self.ns, self.argv(certificate), log_path=self.workdir / "turnserver.log")
        try:
            async with NetnsThread(self.ns, name="coturn-probe") as prober:
                deadline = time.monotonic() + self._start_timeout
                while not await prober.run(_answers(self.ip, self.port, self.tls_port)):
                    if self._process.returncode is not None:
                        raise NetlabError(f"coturn exited ({self._process.returncode}):\n{self._tail()}")
                    if time.monotonic() > deadline:
                        raise NetlabError(f"coturn did not answer within {self._start_timeout:g} s:\n{self._tail()}")
                    await asyncio.sleep(0.05)
        except BaseException:
            await self.close()
            raise
        return self

    def _tail(self) -> str:
        return "\n".join(self.log_text().splitlines()[-20:])

    async def close(self) -> None:
        """Stop coturn (SIGTERM, then SIGKILL); safe twice."""
        if self._closed:
            return
        self._closed = True
        if self._process is not None:
            await self._process.terminate(timeout=2.0)
