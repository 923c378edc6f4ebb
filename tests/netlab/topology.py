"""The laboratory: five network namespaces wired as a cabin behind a 4G NAT, a doctor behind a hospital firewall,
and "the internet" between them (see the package docstring for the picture)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, Final, Self

from tests.netlab import nft
from tests.netlab.addresses import (
    DEAD_END_DEV,
    HOST_DEV,
    LAN_DEV,
    SIDES,
    SIGNALING_IP,
    TURN_IP,
    TURN_PORT,
    TURN_TLS_PORT,
    WAN_DEV,
    Role,
    Side,
)
from tests.netlab.errors import NetlabError
from tests.netlab.forwarder import DelayProfile, Forwarder, Jitter
from tests.netlab.inns import NetnsThread, NsProcess, in_ns, run, spawn
from tests.netlab.names import PREFIX, clean_leftovers, delete_namespace, lab_name, new_token
from tests.netlab.resource import Started
from tests.netlab.shaping import LinkProfile, clear_rate_argv, rate_argv

_SYSCTLS_ALL: Final = (
    # No IPv6 anywhere: link-local addresses would add candidates and routes that the picture does not have.
    "net.ipv6.conf.all.disable_ipv6=1",
    "net.ipv6.conf.default.disable_ipv6=1",
)
_SYSCTLS_FORWARDING: Final = ("net.ipv4.ip_forward=1",)
_ROUTING_ROLES: Final = frozenset({Role.CORE, Role.CABIN_ROUTER, Role.DOCTOR_ROUTER})
# What the delay forwarders carry: TURN over UDP and TCP on 3478, TLS (or TCP) on 443.
_DELAYED_PORTS: Final = ((TURN_PORT, True, True), (TURN_TLS_PORT, False, True))


class Lab(Started):
    """The namespaces, links, NAT and firewall; `async with Lab(tmp_path) as lab:`.

    Everything it made (namespaces and their devices, processes in them, its forwarders and threads) is gone after
    close(), which is safe twice and also runs when setup fails half-way. Namespace names are `lab.ns(Role.X)`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        doctor_firewall: bool = True,
        cabin_nat: nft.Nat = nft.Nat.SYMMETRIC,
        prefix: str = PREFIX,
    ) -> None:
        self.workdir = workdir
        self.doctor_firewall = doctor_firewall
        self.cabin_nat = cabin_nat
        self.token = new_token()
        self._prefix = prefix
        self._names = {role: lab_name(role, token=self.token, prefix=prefix) for role in Role}
        self._created: list[str] = []
        self._processes: list[NsProcess] = []
        self._core: NetnsThread | None = None
        self._threads: list[NetnsThread] = []
        self._nft: dict[Side, nft.Nftables] = {}
        self._forwarders: dict[Side, list[Forwarder]] = {}
        self._profiles: dict[Side, LinkProfile] = {side: LinkProfile() for side in Side}
        self._cut: dict[Side, bool] = dict.fromkeys(Side, False)
        self._closed = False

    def ns(self, role: Role) -> str:
        """The namespace name of `role` in this lab."""
        return self._names[role]

    @property
    def namespaces(self) -> list[str]:
        return [self._names[role] for role in Role]

    def thread(self, role: Role) -> NetnsThread:
        """A new thread in `role`'s namespace, for the caller to start and close (`async with`)."""
        return NetnsThread(self.ns(role))

    def delay_ip(self, side: Side) -> str:
        """Where `side` reaches TURN through its delay forwarder (same ports as TURN_IP)."""
        return SIDES[side].delay_ip

    # --- building -----------------------------------------------------------------------------------------------

    async def start(self) -> Self:
        """Build the whole topology.

        Raises:
            NetlabError: a command refused (its stderr in the message); what was built is removed.
        """
        clean_leftovers(prefix=self._prefix)
        try:
            await self._build()
        except BaseException:
            await self.close()
            raise
        return self

    async def _ip_batch(self, role: Role, commands: Sequence[str]) -> None:
        await run(["ip", "-n", self.ns(role), "-batch", "-"], stdin="".join(f"{c}\n" for c in commands))

    async def _sysctl(self, role: Role, settings: Sequence[str]) -> None:
        await run(in_ns(self.ns(role), ["sysctl", "-q", "-w", *settings]))

    async def _build(self) -> None:
        for role in Role:
            await run(["ip", "netns", "add", self.ns(role)])
            self._created.append(self.ns(role))
        await asyncio.gather(
            *(
                self._sysctl(role, [*_SYSCTLS_ALL, *(_SYSCTLS_FORWARDING if role in _ROUTING_ROLES else ())])
                for role in Role
            )
        )
        # core: the public services on its loopback, one veth per access network, the tun dead end as default.
        core = [
            "link set lo up",
            f"addr add {SIGNALING_IP}/32 dev lo",
            f"addr add {TURN_IP}/32 dev lo",
            f"tuntap add dev {DEAD_END_DEV} mode tun",
            f"link set {DEAD_END_DEV} up",
            f"route add default dev {DEAD_END_DEV}",
        ]
        for a in SIDES.values():
            router = self.ns(a.router)
            core += [
                f"addr add {a.delay_ip}/32 dev lo",
                f"link add {a.core_dev} type veth peer name {WAN_DEV} netns {router}",
                f"addr add {a.core_wan_ip}/{a.wan_prefix} dev {a.core_dev}",
                f"link set {a.core_dev} up",
            ]
        await self._ip_batch(Role.CORE, core)
        await asyncio.gather(*(self._build_side(side) for side in Side))
        await asyncio.gather(*(self._build_host(side) for side in Side))
        rulesets = {
            Side.CABIN: nft.router_ruleset(nat=self.cabin_nat, firewall=False),
            Side.DOCTOR: nft.router_ruleset(nat=nft.Nat.PLAIN, firewall=self.doctor_firewall),
        }
        for side, ruleset in rulesets.items():
            router_thread = await self._thread(SIDES[side].router)
            self._nft[side] = await nft.Nftables(router_thread).open()
            await self._nft[side].run(ruleset)
        self._core = await self._thread(Role.CORE)
        await self._core.run(self._start_forwarders())

    async def _thread(self, role: Role) -> NetnsThread:
        thread = NetnsThread(self.ns(role), name=f"netlab-{role}")
        self._threads.append(thread)
        return await thread.start()

    async def _build_side(self, side: Side) -> None:
        a = SIDES[side]
        await self._ip_batch(
            a.router,
            [
                "link set lo up",
                f"addr add {a.router_wan_ip}/{a.wan_prefix} dev {WAN_DEV}",
                f"link set {WAN_DEV} up",
                f"route add default via {a.core_wan_ip}",
                f"link add {LAN_DEV} type veth peer name {HOST_DEV} netns {self.ns(a.host)}",
                f"addr add {a.router_lan_ip}/{a.lan_prefix} dev {LAN_DEV}",
                f"link set {LAN_DEV} up",
            ],
        )

    async def _build_host(self, side: Side) -> None:
        a = SIDES[side]
        await self._ip_batch(
            a.host,
            [
                "link set lo up",
                f"addr add {a.host_ip}/{a.lan_prefix} dev {HOST_DEV}",
                f"link set {HOST_DEV} up",
                f"route add default via {a.router_lan_ip}",
            ],
        )

    async def _start_forwarders(self) -> None:
        """On core's thread: each side's delay forwarders in front of TURN, passing through until shaped."""
        for side, a in SIDES.items():
            forwarders = self._forwarders.setdefault(side, [])
            for port, udp, tcp in _DELAYED_PORTS:
                forwarders.append(await Forwarder((a.delay_ip, port), (TURN_IP, port), udp=udp, tcp=tcp).start())

    # --- running things -----------------------------------------------------------------------------------------

    async def spawn(self, role: Role, argv: Sequence[str], *, name: str) -> NsProcess:
        """A process in `role`'s namespace, logging to `<workdir>/<name>.log`, stopped by close()."""
        process = await spawn(self.ns(role), argv, log_path=self.workdir / f"{name}.log")
        self._processes.append(process)
        return process

    # --- link events --------------------------------------------------------------------------------------------

    async def cut(self, on: bool, *, side: Side = Side.CABIN) -> float:
        """Cut (`True`) or restore (`False`) `side`'s access link: its router forwards nothing, either way.

        Conntrack entries survive a cut, so after it the NAT maps each flow as before (a radio outage, not a new
        public address). Returns the seconds the flip took (until nft returned).

        Raises:
            NetlabError: nft refused.
        """
        started = time.perf_counter()
        await self._nftables(side).run(nft.cut_commands(on))
        self._cut[side] = on
        return time.perf_counter() - started

    def is_cut(self, side: Side = Side.CABIN) -> bool:
        return self._cut[side]

    async def shape(
        self,
        side: Side,
        *,
        rate_kbit: int | None = None,
        down_rate_kbit: int | None = None,
        loss_pct: float | None = None,
        delay_ms: float | None = None,
        jitter_ms: float | None = None,
        jitter: Jitter = Jitter.UNIFORM,
        queue_ms: int = 50,
    ) -> LinkProfile:
        """Give `side`'s link this shape, replacing the whole previous one: an aspect left None is off (full rate,
        no loss, no added delay); `lab.shape(side)` alone restores the plain link.

        - rate: tbf on the router's WAN egress and on core's egress toward the router (both directions;
          `down_rate_kbit`, toward the side, if it differs, as on an ADSL line);
        - loss: random loss of forwarded UDP packets on the router, both directions;
        - delay, jitter (one-way, each direction): applied by the side's forwarder in front of TURN, i.e. only to
          traffic sent to `lab.delay_ip(side)`; a client given that address as its TURN server sees the delay
          on its whole path through the relay.

        Raises:
            NetlabError: a value out of range, or tc or nft refused.
        """
        profile = LinkProfile(rate_kbit, loss_pct, delay_ms, jitter_ms, queue_ms, jitter, down_rate_kbit)
        a = SIDES[side]
        previous = self._profiles[side]
        ends = (
            (a.router, WAN_DEV, profile.rate_kbit, previous.rate_kbit),
            (Role.CORE, a.core_dev, profile.down_kbit, previous.down_kbit),
        )
        for role, dev, rate, before in ends:
            if rate is not None:
                await run(rate_argv(self.ns(role), dev, rate, queue_ms=queue_ms))
            elif before is not None:
                await run(clear_rate_argv(self.ns(role), dev))
        await self._nftables(side).run(nft.loss_commands(profile.loss_pct))
        await self._on_core(self._set_delay(side, profile.delay))
        self._profiles[side] = profile
        return profile

    def profile(self, side: Side) -> LinkProfile:
        return self._profiles[side]

    async def router_table(self, side: Side) -> str:
        """`side`'s router table as nft lists it, with its counters (for a failed test's message)."""
        return await self._nftables(side).run(f"list table inet {nft.TABLE}")

    def _nftables(self, side: Side) -> nft.Nftables:
        if side not in self._nft:
            raise NetlabError("the lab is not started")
        return self._nft[side]

    async def _set_delay(self, side: Side, delay: DelayProfile) -> None:
        for forwarder in self._forwarders.get(side, []):
            forwarder.set_profile(delay)

    async def _on_core(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._core is None:
            coro.close()
            raise NetlabError("the lab is not started")
        await self._core.run(coro)

    # --- teardown -----------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the forwarders, the processes and the thread, then delete every namespace; safe twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._core is not None:
                with contextlib.suppress(NetlabError):
                    await self._core.run(self._close_forwarders())
            for nftables in self._nft.values():
                await nftables.close()
            for thread in self._threads:
                await thread.close()
            for process in self._processes:
                await process.terminate(timeout=1.0)
        finally:
            # Blocking on purpose: a second Ctrl-C (a cancellation) must not leave a namespace behind.
            for name in reversed(self._created):
                delete_namespace(name)

    async def _close_forwarders(self) -> None:
        for forwarders in self._forwarders.values():
            for forwarder in forwarders:
                await forwarder.close()
