"""A network laboratory in Linux network namespaces: a cabin behind a 4G NAT, a doctor behind a hospital firewall.

Needs root, `ip` (iproute2), `nft` (nftables), `tc`, `setpriv` (util-linux); `turnserver` (coturn) for Coturn.
No netem in this kernel: loss is nftables on the routers, rate is tbf, delay and jitter a user-space forwarder.

```
  cabin ns                  cabin-router ns                         core ns ("the internet")
  192.168.1.10/24 ── eth0 ── lan 192.168.1.1/24                      lo: SIGNALING_IP 203.0.113.10  (signaling :443)
  default via .1            wan 198.51.100.2/24 ── to-cabin 198.51.100.1/24      TURN_IP 203.0.113.20 (coturn
                            NAT: masquerade random (symmetric)                       UDP+TCP 3478, TLS+TCP 443,
                            chains: cut, loss; tbf on wan                            relays 49152-49251)
                                                                     lo: 203.0.113.21 cabin's delay forwarder ┐ to
  doctor ns                 doctor-router ns                             203.0.113.22 doctor's delay forwarder┘ TURN
  10.10.0.10/24 ─── eth0 ── lan 10.10.0.1/24                         tbf on to-cabin / to-doctor
  default via .1            wan 198.51.101.2/24 ── to-doctor 198.51.101.1/24
                            NAT: masquerade; firewall (default on):  default route -> tun "dead" (a dead end: coturn
                            from the LAN only TCP to port 443 leaves;  needs a route to every peer it relays to,
                            every UDP packet (DNS too) is dropped       private host candidates included)
```

Namespace names are `cnl<pid>x<token>-<role>` (`lab.ns(Role.CABIN)`); IPv6 is off in all of them; every `lo` is
up; core forwards between the two access networks. A later run deletes namespaces left by a dead process.

Use:
```
async with Lab(tmp_path, doctor_firewall=True) as lab:
    async with Coturn(lab.ns(Role.CORE), tmp_path / "turn", secret=SECRET) as turn:
        async with lab.thread(Role.CORE) as core:            # an asyncio loop inside core
            runner = await core.run(start_signaling(SIGNALING_IP, 443))
            ...
        browser_path = chromium_in(lab.ns(Role.DOCTOR), tmp_path)   # Playwright's executable_path
        await lab.cut(True); await lab.cut(False)            # the cabin's 4G link goes and comes back
        await lab.shape(Side.CABIN, rate_kbit=2000, loss_pct=2, delay_ms=40, jitter_ms=10)
        # delay/jitter apply to what goes through lab.delay_ip(Side.CABIN): give the cabin turn.urls(that address)
```
"""

from tests.netlab.addresses import (
    CABIN_IP,
    CABIN_PUBLIC_IP,
    DOCTOR_IP,
    DOCTOR_PUBLIC_IP,
    SIDES,
    SIGNALING_IP,
    SIGNALING_PORT,
    TURN_IP,
    TURN_PORT,
    TURN_RELAY_PORTS,
    TURN_TLS_PORT,
    Role,
    Side,
)
from tests.netlab.chromium import chromium_in
from tests.netlab.coturn import Coturn, credentials
from tests.netlab.errors import NetlabError
from tests.netlab.forwarder import DelayProfile, Forwarder, ForwarderStats, Jitter
from tests.netlab.inns import NetnsThread, NsProcess, run, spawn
from tests.netlab.names import clean_leftovers
from tests.netlab.nft import Nat
from tests.netlab.shaping import LinkProfile
from tests.netlab.topology import Lab

__all__ = [
    "CABIN_IP",
    "CABIN_PUBLIC_IP",
    "DOCTOR_IP",
    "DOCTOR_PUBLIC_IP",
    "SIDES",
    "SIGNALING_IP",
    "SIGNALING_PORT",
    "TURN_IP",
    "TURN_PORT",
    "TURN_RELAY_PORTS",
    "TURN_TLS_PORT",
    "Coturn",
    "DelayProfile",
    "Forwarder",
    "ForwarderStats",
    "Jitter",
    "Lab",
    "LinkProfile",
    "Nat",
    "NetlabError",
    "NetnsThread",
    "NsProcess",
    "Role",
    "Side",
    "chromium_in",
    "clean_leftovers",
    "credentials",
    "run",
    "spawn",
]
