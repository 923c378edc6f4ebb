"""A token bucket; pure, the clock is passed in."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    capacity: float
    refill_per_second: float
    _tokens: float = field(init=False)
    _last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._tokens = self.capacity

    def take(self, now: float) -> bool:
        """Spend one token at monotonic time `now`; False when the bucket is empty."""
        if self._last is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.refill_per_second)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
