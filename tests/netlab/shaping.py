"""A link's shape (rate, loss, delay, jitter) as a value, and the tc commands for its rate (pure).

This kernel has no netem: the rate is a token bucket (`tbf`) on each end's egress, the loss is nftables on the
router (see nft.py), and the delay and jitter are a user-space hop (see forwarder.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from tests.netlab.errors import NetlabError
from tests.netlab.forwarder import DelayProfile, Jitter

_MIN_BURST_BYTES: Final = 4_000  # above one full-size frame, or tbf never lets it through
_BURST_MS: Final = 10  # the burst holds this much time at the rate


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """How one side's link is shaped; None means untouched (full speed, no loss, no added delay).

    `delay_ms` and `jitter_ms` are one-way, added in each direction (`jitter` says how: uniform, or normal with
    `jitter_ms` as standard deviation); `queue_ms` is how long a packet may wait in the rate limiter's queue before
    it is dropped (the link's buffer).

    Raises:
        NetlabError: a value is negative or not finite, or a loss above 100 %.
    """

    rate_kbit: int | None = None
    loss_pct: float | None = None
    delay_ms: float | None = None
    jitter_ms: float | None = None
    queue_ms: int = 50
    jitter: Jitter = Jitter.UNIFORM
    # Toward the side, when it differs from `rate_kbit` (an ADSL line); None: the same as `rate_kbit`.
    down_rate_kbit: int | None = None

    def __post_init__(self) -> None:
        for field in ("rate_kbit", "down_rate_kbit"):
            value = getattr(self, field)
            if value is not None and value <= 0:
                raise NetlabError(f"{field} must be positive, not {value}")
        if self.loss_pct is not None and not 0 <= self.loss_pct <= 100:
            raise NetlabError(f"loss_pct must be within [0, 100], not {self.loss_pct}")
        for field in ("delay_ms", "jitter_ms"):
            value = getattr(self, field)
            if value is not None and (value < 0 or not math.isfinite(value)):
                raise NetlabError(f"{field} must be a finite number >= 0, not {value}")
        if self.queue_ms <= 0:
            raise NetlabError(f"queue_ms must be positive, not {self.queue_ms}")

    @property
    def down_kbit(self) -> int | None:
        """The rate toward the side."""
        return self.rate_kbit if self.down_rate_kbit is None else self.down_rate_kbit

    @property
    def delay(self) -> DelayProfile:
        """The delay forwarder's profile for this shape (zero when no delay is asked)."""
        return DelayProfile(self.delay_ms or 0.0, self.jitter_ms or 0.0, self.jitter)


def burst_bytes(rate_kbit: int) -> int:
    """The token bucket's size: `_BURST_MS` at the rate, never below one full-size frame."""
    return max(_MIN_BURST_BYTES, rate_kbit * 1000 // 8 * _BURST_MS // 1000)


def rate_argv(ns: str, dev: str, rate_kbit: int, *, queue_ms: int) -> list[str]:
    """tc: limit `dev`'s egress (in namespace `ns`) to `rate_kbit`, queueing at most `queue_ms` (replaces any root
    qdisc)."""
    return [
        "tc",
        "-n",
        ns,
        "qdisc",
        "replace",
        "dev",
        dev,
        "root",
        "tbf",
        "rate",
        f"{rate_kbit}kbit",
        "burst",
        str(burst_bytes(rate_kbit)),
        "latency",
        f"{queue_ms}ms",
    ]


def clear_rate_argv(ns: str, dev: str) -> list[str]:
    """tc: remove `dev`'s root qdisc (in namespace `ns`), back to the default."""
    return ["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"]
