"""The one retry policy of the cabin: exponential backoff with jitter, for every loop that reconnects.

Pure: no I/O, no clock. Jitter spreads the retries of many cabins after a server restart, so they do not all
come back in the same second.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from gateway.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between attempts: `initial` seconds, times `factor` per failure, at most `maximum`, +/- `jitter`."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    # A fraction of the delay: 0.2 draws each delay from [0.8, 1.2] times the nominal one.
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial) and self.initial > 0):
            raise ConfigError(f"backoff initial delay must be > 0 seconds, got {self.initial!r}")
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise ConfigError(f"backoff factor must be >= 1, got {self.factor!r}")
        if not (math.isfinite(self.maximum) and self.maximum >= self.initial):
            raise ConfigError(f"backoff maximum must be >= the initial delay {self.initial}, got {self.maximum!r}")
        if not (math.isfinite(self.jitter) and 0 <= self.jitter < 1):
            raise ConfigError(f"backoff jitter must be in [0, 1), got {self.jitter!r}")

    def delay(self, failures: int) -> float:
        """The nominal delay before the next attempt after `failures` consecutive failures (0 for the first retry)."""
        if failures <= 0:
            return self.initial
        # Compare exponents, not powers, so a long outage cannot overflow the float.
        if math.log(self.maximum / self.initial) <= failures * math.log(self.factor):
            return self.maximum
        return min(self.maximum, self.initial * self.factor**failures)

    def jittered(self, failures: int, rng: random.Random | None = None) -> float:
        """`delay(failures)` spread by the jitter."""
        spread = self.jitter * (2 * (rng or random).random() - 1)
        return self.delay(failures) * (1 + spread)
