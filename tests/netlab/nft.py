"""The routers' nftables rulesets (pure text builders), and libnftables driven inside a namespace.

Every router has one table, `inet netlab`, whose forward hook jumps to two chains kept empty until needed:
`cut` (one `drop` rule while the link is cut) and `loss` (random UDP loss), then applies the firewall if any.
The NAT is a masquerade on the WAN interface: `random` maps each new flow (each destination) to a new source port,
which is what a 4G operator's symmetric NAT does.
"""

from __future__ import annotations

import contextlib
import ctypes
from enum import StrEnum
from typing import Final, Self

from tests.netlab.addresses import LAN_DEV as LAN
from tests.netlab.addresses import WAN_DEV as WAN
from tests.netlab.errors import NetlabError
from tests.netlab.inns import NetnsThread

TABLE: Final = "netlab"
FIREWALL_TCP_PORT: Final = 443
_LOSS_SCALE: Final = 10_000  # loss in hundredths of a percent
_NFT_CTX_DEFAULT: Final = 0


class Nat(StrEnum):
    """How a router maps its LAN's flows onto its WAN address."""

    SYMMETRIC = "symmetric"  # a new source port per flow: STUN alone cannot connect through it
    PLAIN = "plain"  # source ports kept where free (a home router)


def router_ruleset(*, nat: Nat, firewall: bool) -> str:
    """The whole ruleset of a router: NAT on the WAN, the cut and loss chains, and the firewall if asked.

    The firewall lets out of the LAN only TCP to port 443 (and its replies); every UDP packet (DNS included) and
    everything else is dropped, as in a hospital that allows nothing but HTTPS.
    """
    masquerade = "masquerade random" if nat is Nat.SYMMETRIC else "masquerade"
    if firewall:
        policy = f"""
        ct state established,related accept
        iifname "{LAN}" meta l4proto udp counter drop
        iifname "{LAN}" oifname "{WAN}" tcp dport {FIREWALL_TCP_PORT} ct state new counter accept
        counter drop"""
    else:
        policy = ""
    return f"""table inet {TABLE} {{
    chain cut {{
    }}
    chain loss {{
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        jump cut
        jump loss{policy}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "{WAN}" {masquerade}
    }}
}}
"""


def cut_commands(on: bool) -> str:
    """Cut (drop every forwarded packet, both ways) or restore the link; idempotent."""
    commands = f"flush chain inet {TABLE} cut\n"
    if on:
        commands += f"add rule inet {TABLE} cut counter drop\n"
    return commands


def loss_commands(loss_pct: float | None) -> str:
    """Drop `loss_pct` % of the forwarded UDP packets, both ways, at random (None or 0: no loss).

    Raises:
        NetlabError: the percentage is outside [0, 100].
    """
    commands = f"flush chain inet {TABLE} loss\n"
    if loss_pct is None or loss_pct == 0:
        return commands
    if not 0 < loss_pct <= 100:
        raise NetlabError(f"loss_pct must be within [0, 100], not {loss_pct}")
    threshold = round(loss_pct * _LOSS_SCALE / 100)
    commands += (
        f"add rule inet {TABLE} loss meta l4proto udp numgen random mod {_LOSS_SCALE} < {threshold} counter drop\n"
    )
    return commands


class Nftables:
    """libnftables (nft's own library) inside one namespace, driven from a NetnsThread there.

    No process per command: a change is one netlink transaction, well under a millisecond, where `ip netns exec
    NS nft ...` costs 10-50 ms of process start-up on a busy machine. close() is safe twice.

    Raises (on open):
        NetlabError: libnftables is missing (it comes with nftables) or its context cannot be made.
    """

    def __init__(self, thread: NetnsThread) -> None:
        self._thread = thread
        self._lib: ctypes.CDLL | None = None
        self._ctx: int | None = None

    async def open(self) -> Self:
        self._lib = _libnftables()
        self._ctx = await self._thread.run(self._new_context(self._lib))
        return self

    @staticmethod
    async def _new_context(lib: ctypes.CDLL) -> int:
        # Made on the namespace's thread: its netlink socket belongs to that namespace.
        ctx = lib.nft_ctx_new(_NFT_CTX_DEFAULT)
        if not ctx:
            raise NetlabError("libnftables could not make a context")
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        return int(ctx)

    async def run(self, commands: str) -> str:
        """Apply nft commands (a ruleset, or `add`/`flush`/`list` lines) as one transaction; returns nft's output.

        Raises:
            NetlabError: nft refused them (its message), or the context is closed.
        """
        if self._lib is None or self._ctx is None:
            raise NetlabError("nftables context is closed")
        return await self._thread.run(self._run(self._lib, self._ctx, commands))

    @staticmethod
    async def _run(lib: ctypes.CDLL, ctx: int, commands: str) -> str:
        if lib.nft_run_cmd_from_buffer(ctx, commands.encode()) != 0:
            error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace").strip()
            raise NetlabError(f"nft refused: {error or 'no message'}")
        return (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")

    async def close(self) -> None:
        lib, ctx = self._lib, self._ctx
        self._lib = self._ctx = None
        if lib is not None and ctx is not None:
            with contextlib.suppress(NetlabError):
                await self._thread.run(self._free(lib, ctx))

    @staticmethod
    async def _free(lib: ctypes.CDLL, ctx: int) -> None:
        lib.nft_ctx_free(ctx)


def _libnftables() -> ctypes.CDLL:
    """Raises: NetlabError: the library is not installed."""
    try:
        lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
    except OSError as exc:
        raise NetlabError("libnftables is missing (apt-get install nftables)") from exc
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    return lib
