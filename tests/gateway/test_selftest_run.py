"""The whole self-test and its network checks against real servers: signaling (aiohttp's test server, a SQLite
store, enrolled cabins), coturn for STUN and TURN, BlueZ emulated by bluezoo, the real SignalingClient.

Everything listens on 127.0.0.1 on free ports. Without `turnserver` (Debian package coturn) the ICE tests are
skipped, and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import shutil
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from aioice import stun

from cabine.demo.emulated import EmulatedKind
from cabine.demo.radio import EmulatedRadio
from gateway.app import Cabin
from gateway.config import CabinConfig, DeviceAllowlist
from gateway.identity import CabinIdentity
from gateway.media.spec import SourceSpec, VideoFormat
from gateway.media.synthetic import PatternVideoTrack
from gateway.selftest import (
    SelftestPlan,
    SignalingContact,
    Timeouts,
    VideoMeter,
    VideoStats,
    render_json,
    render_text,
    run_selftest,
    standalone_plan,
)
from gateway.selftest.cabin import cabin_selftest
from gateway.selftest.ice import probe_ice, probe_url
from gateway.selftest.signaling_link import HasWelcome
from gateway.signaling_client import SignalingClient
from signaling.app import RedactingAccessLogger, create_app
from signaling.config import ServerConfig, utc_now
from signaling.models import Cabin as CabinRecord
from signaling.protocol import CheckStatus, IceServer, SelftestCheck, SelftestReport, parse
from signaling.sqlite_store import SQLiteStore
from signaling.tls import ensure_development_certificate
from signaling.tokens import TokenSigner
from tests.conftest import free_port, wait_until

MISSING = "CA:B1:0E:00:99:99"  # an allowlisted address no emulated device has
FAST = Timeouts(device=4.0, battery=2.0, signaling=5.0, ice=2.0, camera_measure=0.5)

# --- a signaling server ----------------------------------------------------------------------------------------


@dataclass
class Signaling:
    """A running signaling server and the cabins it knows (cabin-1 enrolled, cabin-off disabled)."""

    url: str
    cabins: dict[str, CabinIdentity]

    def config(self, cabin_id: str = "cabin-1", identity: CabinIdentity | None = None, **extra: Any) -> CabinConfig:
        return CabinConfig(cabin_id, self.url, identity or self.cabins[cabin_id], **extra)

    def connect(self, cabin_id: str = "cabin-1", identity: CabinIdentity | None = None) -> ConnectFn:
        config = self.config(cabin_id, identity)
        return lambda: SignalingClient(config)


ConnectFn = Callable[[], AbstractAsyncContextManager[HasWelcome]]
StartSignaling = Callable[..., Awaitable[Signaling]]


@pytest.fixture
async def start_signaling(tmp_path: Path) -> AsyncIterator[StartSignaling]:
    """Starts signaling servers: `await start_signaling(ice_servers=..., clock=...)`."""
    running: list[tuple[TestServer, SQLiteStore]] = []

    async def start(*, ice_servers: tuple[IceServer, ...] = (), clock: Callable[[], datetime] = utc_now) -> Signaling:
        store = SQLiteStore.open(tmp_path / f"signaling-{len(running)}.sqlite")
        cabins = {}
        for cabin_id in ("cabin-1", "cabin-off"):
            identity = CabinIdentity.generate(cabin_id)
            cabins[cabin_id] = identity
            store.add_cabin(CabinRecord(id=cabin_id, name=cabin_id))
            cabin = store.get_cabin(cabin_id)
            assert cabin is not None
            store.update_cabin(
                replace(
                    cabin,
                    public_key=identity.public_bytes(),
                    enrolled_at=datetime.now(UTC),
                    disabled=cabin_id == "cabin-off",
                )
            )
        config = ServerConfig(
            signer=TokenSigner.generate(), store=store, ice_servers=ice_servers, clock=clock, hello_timeout=2.0
        )
        server = TestServer(create_app(config), host="127.0.0.1")
        await server.start_server(access_log_class=RedactingAccessLogger)
        running.append((server, store))
        return Signaling(f"ws://127.0.0.1:{server.port}", cabins)

    yield start
    for server, store in reversed(running):
        await server.close()
        store.close()


# --- coturn ----------------------------------------------------------------------------------------------------

TURN_SECRET = "selftest-static-secret"


@dataclass
class Turn:
    port: int
    tls_port: int
    tls: ssl.SSLContext  # trusts the test CA that signed coturn's certificate

    def credentials(self, secret: str = TURN_SECRET) -> tuple[str, str]:
        """Time-limited credentials (coturn's --use-auth-secret): "<expiry>:<name>" and its HMAC-SHA1."""
        username = f"{int(time.time()) + 3600}:cabin-1"
        digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
        return username, base64.b64encode(digest).decode()


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def _answers_stun(port: int) -> bool:
    """Whether a STUN Binding request over UDP gets an answer (coturn opens its UDP listener last)."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(bytes(request), ("127.0.0.1", port))
            return stun.parse_message(sock.recv(2048)).transaction_id == request.transaction_id
        except (OSError, ValueError):
            return False


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[Turn]:
    """A coturn on 127.0.0.1, unprivileged, with time-limited credentials, over UDP, TCP and TLS."""
    binary = shutil.which("turnserver")
    if binary is None:
        message = "turnserver is not installed (Debian package coturn)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    port, alt, tls_port = free_port(), free_port(), free_port()
    certificate = ensure_development_certificate(tmp_path / "certs", ("127.0.0.1",))
    with (tmp_path / "coturn.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            binary, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
            f"--listening-port={port}", f"--alt-listening-port={alt}", "--no-rfc5780",
            f"--tls-listening-port={tls_port}", f"--cert={certificate.cert}", f"--pkey={certificate.key}",
            "--min-port=52000", "--max-port=52999", "--no-dtls", "--no-cli", "--allow-loopback-peers",
            "--realm=cabine.test", "--fingerprint", "--log-file=stdout", "--simple-log",
            f"--pidfile={tmp_path / 'coturn.pid'}", f"--userdb={tmp_path / 'coturn.db'}",
            "--use-auth-secret", f"--static-auth-secret={TURN_SECRET}",
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        await wait_until(
            lambda: _accepts(port) and _accepts(tls_port) and _answers_stun(port), timeout=10.0, what="coturn to listen"
        )
        yield Turn(port, tls_port, certificate.client_context())
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except TimeoutError:
            process.kill()
            await process.wait()


def dead_port() -> int:
    """A port where nothing listens, TCP or UDP."""
    return free_port()


# --- helpers ---------------------------------------------------------------------------------------------------


def by_name(report: SelftestReport) -> dict[str, SelftestCheck]:
    return {check.name: check for check in report.checks}


def plan(signaling: ConnectFn | None = None, **options: object) -> SelftestPlan:
    base: dict[str, object] = {
        "camera": SourceSpec("test"),
        "microphone": SourceSpec("test"),
        "camera_format": VideoFormat(640, 480, 30),
        "timeouts": FAST,
    }
    if signaling is not None:
        base["connect_signaling"] = signaling
    base.update(options)
    return SelftestPlan(**base)  # type: ignore[arg-type]


# --- ICE servers -----------------------------------------------------------------------------------------------


async def test_stun_and_turn_over_udp_and_tcp_answer(coturn: Turn) -> None:
    username, password = coturn.credentials()
    p = coturn.port
    stun = await probe_url(f"stun:127.0.0.1:{p}", None, None, timeout=2.0)
    udp = await probe_url(f"turn:127.0.0.1:{p}", username, password, timeout=2.0)
    tcp = await probe_url(f"turn:127.0.0.1:{p}?transport=tcp", username, password, timeout=2.0)
    bare = await probe_url(f"turn:127.0.0.1:{p}?transport=tcp", None, None, timeout=2.0)  # no credentials: STUN
    assert (stun.reachable, stun.detail.startswith("answered in ")) == (True, True), stun
    assert (udp.reachable, udp.detail.startswith("relay allocated in ")) == (True, True), udp
    assert (tcp.reachable, tcp.detail.startswith("relay allocated in ")) == (True, True), tcp
    assert (bare.reachable, bare.detail.startswith("answered in ")) == (True, True), bare


async def test_turns_and_stuns_over_tls_with_the_trusted_ca_and_without(coturn: Turn) -> None:
    username, password = coturn.credentials()
    turns = f"turns:127.0.0.1:{coturn.tls_port}"
    relay = await probe_url(turns, username, password, timeout=2.0, tls=coturn.tls)
    binding = await probe_url(f"stuns:127.0.0.1:{coturn.tls_port}", None, None, timeout=2.0, tls=coturn.tls)
    untrusted = await probe_url(turns, username, password, timeout=2.0)  # the system's trust store
    assert (relay.reachable, relay.detail.startswith("relay allocated in ")) == (True, True), relay
    assert (binding.reachable, binding.detail.startswith("answered in ")) == (True, True), binding
    assert not untrusted.reachable
    assert untrusted.detail.startswith("TLS failed (CERTIFICATE_VERIFY_FAILED")


async def test_turn_credentials_that_coturn_refuses_are_named(coturn: Turn) -> None:
    username, password = coturn.credentials(secret="not-the-secret")
    for url in (f"turn:127.0.0.1:{coturn.port}", f"turn:127.0.0.1:{coturn.port}?transport=tcp"):
        result = await probe_url(url, username, password, timeout=2.0)
        assert not result.reachable
        assert result.detail == "refused the credentials (401 Unauthorized)"
        assert password not in result.detail and username not in result.detail


async def test_a_port_where_nothing_listens_fails() -> None:
    port = dead_port()
    stun = await probe_url(f"stun:127.0.0.1:{port}", None, None, timeout=1.0)
    tcp = await probe_url(f"turn:127.0.0.1:{port}?transport=tcp", "u", "p", timeout=1.0)
    # aioice's TURN client over UDP does not hear the ICMP answer: it waits for the timeout.
    udp = await probe_url(f"turn:127.0.0.1:{port}", "u", "p", timeout=0.5)
    assert (stun.reachable, stun.detail) == (False, "connection refused (nothing listens there)")
    assert (tcp.reachable, tcp.detail) == (False, "connection refused (nothing listens there)")
    assert (udp.reachable, udp.detail) == (False, "no answer within 0.5 s")


async def test_ice_check_over_several_servers(coturn: Turn) -> None:
    username, password = coturn.credentials()
    servers = (
        IceServer(urls=(f"stun:127.0.0.1:{coturn.port}",)),
        IceServer(
            urls=(f"turn:127.0.0.1:{coturn.port}", f"turn:127.0.0.1:{dead_port()}?transport=tcp", "http://x"),
            username=username,
            credential=password,
        ),
    )
    check = await probe_ice(servers, timeout=2.0)
    assert check.status is CheckStatus.WARNING
    assert check.detail.startswith("2 of 4 reachable: ")
    assert "connection refused" in check.detail and "must start with stun:" in check.detail
    assert password not in check.detail
    assert (await probe_ice((), timeout=1.0)).detail == "none configured: host candidates only"


# --- signaling and clock ---------------------------------------------------------------------------------------


async def test_signaling_accepts_the_key_and_the_clocks_agree(start_signaling: StartSignaling) -> None:
    server = await start_signaling()
    report = await run_selftest(plan(server.connect(), camera=SourceSpec("none"), microphone=SourceSpec("none")))
    checks = by_name(report)
    assert checks["signaling"].status is CheckStatus.OK
    assert checks["signaling"].detail.startswith("key accepted, round trip ")
    assert checks["clock"].status is CheckStatus.OK, checks["clock"]
    assert checks["ice-servers"] == SelftestCheck(
        "ice-servers", CheckStatus.SKIPPED, "none configured: host candidates only", required=False
    )
    assert report.ok


@pytest.mark.parametrize(
    ("skew", "status", "side"),
    [
        (3.0, CheckStatus.WARNING, "behind"),
        (-3.0, CheckStatus.WARNING, "ahead of"),
        (8.0, CheckStatus.FAILED, "behind"),
    ],
)
async def test_a_clock_off_from_the_servers_is_flagged(
    start_signaling: StartSignaling, skew: float, status: CheckStatus, side: str
) -> None:
    server = await start_signaling(clock=lambda: datetime.now(UTC) + timedelta(seconds=skew))
    report = await run_selftest(plan(server.connect(), camera=SourceSpec("none"), microphone=SourceSpec("none")))
    clock = by_name(report)["clock"]
    assert clock.status is status
    assert clock.detail.startswith(f"cabin clock {abs(skew):.1f}"), clock
    assert f" s {side} the server's" in clock.detail
    assert report.ok is (status is not CheckStatus.FAILED)


async def test_a_cabin_clock_far_ahead_gets_its_key_refused(start_signaling: StartSignaling) -> None:
    # The server takes a proof issued more than 5 s in its future for a forgery: no welcome, so no server time.
    server = await start_signaling(clock=lambda: datetime.now(UTC) - timedelta(seconds=8))
    report = await run_selftest(plan(server.connect(), camera=SourceSpec("none"), microphone=SourceSpec("none")))
    checks = by_name(report)
    assert checks["signaling"].status is CheckStatus.FAILED
    assert checks["signaling"].detail.startswith("signaling refused this cabin: ")
    assert "issued in the future" in checks["signaling"].detail  # the server's reason, as it gave it
    assert checks["clock"] == SelftestCheck(
        "clock", CheckStatus.SKIPPED, "no welcome from signaling to compare with", required=False
    )


async def test_a_refused_key_fails_with_the_servers_reason(start_signaling: StartSignaling) -> None:
    server = await start_signaling()
    disabled = await run_selftest(plan(server.connect("cabin-off"), camera=SourceSpec("none")))
    stranger = await run_selftest(
        plan(server.connect("cabin-1", CabinIdentity.generate("cabin-1")), camera=SourceSpec("none"))
    )
    for report in (disabled, stranger):
        checks = by_name(report)
        assert checks["signaling"].status is CheckStatus.FAILED and checks["signaling"].required
        assert checks["signaling"].detail.startswith("signaling refused this cabin: ")
        assert checks["ice-servers"].status is CheckStatus.SKIPPED
        assert checks["clock"].status is CheckStatus.SKIPPED
        assert not report.ok
    assert "disabled" in by_name(disabled)["signaling"].detail
    assert by_name(disabled)["signaling"].detail != by_name(stranger)["signaling"].detail


async def test_unreachable_signaling_fails_with_the_reason() -> None:
    identity = CabinIdentity.generate("cabin-1")
    url = f"ws://127.0.0.1:{dead_port()}"
    connect: ConnectFn = lambda: SignalingClient(CabinConfig("cabin-1", url, identity))  # noqa: E731
    report = await run_selftest(plan(connect, camera=SourceSpec("none"), microphone=SourceSpec("none")))
    signaling = by_name(report)["signaling"]
    assert signaling.status is CheckStatus.FAILED
    assert signaling.detail.startswith(f"cannot reach signaling at {url}")
    assert not report.ok


# --- the whole self-test ---------------------------------------------------------------------------------------


async def test_a_whole_cabin_with_emulated_devices_and_a_missing_one(
    start_signaling: StartSignaling, coturn: Turn
) -> None:
    username, password = coturn.credentials()
    ice = IceServer(
        urls=(f"stun:127.0.0.1:{coturn.port}", f"turn:127.0.0.1:{coturn.port}?transport=tcp"),
        username=username,
        credential=password,
    )
    server = await start_signaling(ice_servers=(ice,))
    kinds = [EmulatedKind.THERMOMETER, EmulatedKind.BLOOD_PRESSURE, EmulatedKind.OXIMETER, EmulatedKind.SCALE]
    async with EmulatedRadio.of_kinds(kinds) as radio:
        allow = (*radio.addresses, MISSING)
        # What `cabine gateway selftest` runs: the plan made from the cabin's configuration.
        config = server.config(
            video=SourceSpec("test"),
            audio=SourceSpec("test"),
            devices=DeviceAllowlist.parse([a.lower() for a in allow]),
            bluetooth_adapter=radio.adapter,
        )
        started = time.monotonic()
        report = await run_selftest(standalone_plan(config, timeouts=FAST), request_id="req-42")
        elapsed = time.monotonic() - started
    # A fresh radio: in the emulation, a later scanner on the same radio may not see the devices again in time.
    async with EmulatedRadio.of_kinds(kinds) as radio:
        healthy = await run_selftest(plan(server.connect(), devices=radio.addresses, adapter=radio.adapter))
    checks = by_name(report)
    assert list(checks) == [
        "camera",
        "microphone",
        "sound",
        "bluetooth-adapter",
        *(f"device:{a}" for a in allow),
        "signaling",
        "ice-servers",
        "clock",
    ]
    statuses = {name: check.status for name, check in checks.items()}
    expected = {name: CheckStatus.OK for name in checks} | {f"device:{MISSING}": CheckStatus.FAILED}
    # The test tone's microphone has no loudspeaker path to try.
    assert statuses == expected | {"sound": CheckStatus.SKIPPED}
    assert checks["camera"].detail.endswith("fps, image not black")
    assert checks["bluetooth-adapter"].detail == "hci0 (00:00:5E:00:53:01) is powered"
    assert all(checks[f"device:{a}"].detail.endswith("connected, battery 87 %") for a in allow[:-1])
    assert checks[f"device:{MISSING}"].detail.startswith("not seen within 4 s")
    assert checks["ice-servers"].detail.startswith("2 of 2 reachable: ")
    assert not report.ok and report.request_id == "req-42"
    assert healthy.ok, render_text(healthy)

    text = render_text(report)
    assert text.splitlines()[-1] == f"NOT ready for calls: device:{MISSING} failed."
    assert f"[FAIL] device:{MISSING}" in text
    assert password not in text and password not in render_json(report)
    assert parse(render_json(report)) == report
    print(f"\nfull self-test with 4 emulated devices and a missing one: {elapsed:.2f} s\n{text}")


async def test_inside_the_running_cabin_nothing_is_opened_twice(start_signaling: StartSignaling) -> None:
    server = await start_signaling()
    async with (
        EmulatedRadio.of_kinds(["thermometer"]) as radio,
        radio.device_manager() as manager,
        server.connect()() as link,
    ):
        assert link.welcome is not None and link.round_trip is not None
        contact = SignalingContact(link.welcome, link.round_trip, datetime.now(UTC))
        await wait_until(
            lambda: all(s.battery_percent is not None for s in manager.states().values()),
            timeout=10.0,
            what="the thermometer connected",
        )
        # The call's camera, counted by the call: a meter fed by the track the call sends.
        meter = VideoMeter()
        track = PatternVideoTrack(640, 480, 30)
        for _ in range(20):
            meter.observe(await track.recv())
        track.stop()

        def in_call() -> VideoStats | None:
            return meter.stats()

        def broken_microphone_view() -> None:
            raise RuntimeError("the call's audio meter is gone")

        report = await run_selftest(
            plan(
                camera=SourceSpec("v4l2", "/dev/nonexistent-camera"),  # opening it would fail
                microphone=SourceSpec("test"),
                devices=radio.addresses,
                adapter=radio.adapter,
                live_signaling=lambda: contact,
                live_devices=manager,
                live_camera=in_call,
                live_microphone=broken_microphone_view,
            )
        )
        still_connected = manager.states()[radio.addresses[0]].connected
    checks = by_name(report)
    assert checks["camera"].status is CheckStatus.OK
    assert checks["camera"].detail.startswith("in a call: 640x480 at ")
    assert checks["microphone"] == SelftestCheck(
        "microphone", CheckStatus.FAILED, "unexpected RuntimeError: the call's audio meter is gone"
    )
    assert checks["signaling"].detail.startswith("connected, key accepted")
    assert checks["clock"].status is CheckStatus.OK
    assert checks[f"device:{radio.addresses[0]}"].status is CheckStatus.OK
    assert still_connected
    assert not report.ok  # the broken microphone view is a failed required check


async def test_a_running_cabin_not_connected_to_signaling_says_so() -> None:
    report = await run_selftest(
        plan(camera=SourceSpec("none"), microphone=SourceSpec("none"), live_signaling=lambda: None)
    )
    checks = by_name(report)
    assert checks["signaling"].detail == "the cabin is not connected to signaling right now (it keeps retrying)"
    assert checks["clock"].status is CheckStatus.SKIPPED
    assert not report.ok


async def test_a_running_cabin_answers_from_its_own_connection_and_devices(start_signaling: StartSignaling) -> None:
    server = await start_signaling()
    async with EmulatedRadio.of_kinds(["thermometer", "scale"]) as radio:
        config = server.config(
            video=SourceSpec("v4l2", "/dev/nonexistent-camera"),  # opened only for a call: never here
            audio=SourceSpec("test"),
            devices=DeviceAllowlist.parse(list(radio.addresses)),
            bluetooth_adapter=radio.adapter,
            ice_addresses=("127.0.0.1",),
        )
        async with Cabin(config, selftest=cabin_selftest, selftest_at_start=False) as cabin:
            await asyncio.wait_for(cabin.gateway.connected.wait(), 10.0)
            devices = cabin.devices
            assert devices is not None
            await wait_until(
                lambda: len(devices.states()) == 2 and all(s.connected for s in devices.states().values()),
                timeout=10.0,
                what="the cabin's devices connected",
            )
            report = await cabin.run_selftest("req-7")
            still_connected = cabin.gateway.connected.is_set()
    checks = by_name(report)
    assert report.request_id == "req-7"
    assert checks["camera"].status is CheckStatus.FAILED  # no call holds it: the self-test opens it, and says why
    assert "cannot open v4l2" in checks["camera"].detail
    assert checks["microphone"].status is CheckStatus.OK
    assert checks["signaling"].detail.startswith("connected, key accepted")
    assert checks["clock"].status is CheckStatus.OK
    assert all(checks[f"device:{a}"].status is CheckStatus.OK for a in radio.addresses)
    assert still_connected  # the cabin's own connection was not replaced by a second one
