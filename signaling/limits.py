"""How many refused attempts each address made lately (wrong links, forged proofs, wrong enrollment codes), to turn
away an address that keeps guessing. Pure: the clock is passed in.

One node counts in its memory; several nodes count in Redis (signaling/cluster.py), so that guessing through every
node of a cluster counts once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

# Addresses remembered at most: an attacker with many addresses cannot grow the server's memory.
MAX_ADDRESSES = 10_000


@dataclass(slots=True)
class RefusalWindow:
    """Refusals per address in fixed windows of `window` seconds."""

    window: float = 60.0
    _counts: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict)

    def add(self, address: str, now: float) -> int:
        """Count one refusal for `address`; how many in its current window."""
        start, count = self._counts.pop(address, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        self._counts[address] = (start, count + 1)
        while len(self._counts) > MAX_ADDRESSES:
            self._counts.popitem(last=False)
        return count + 1

    def count(self, address: str, now: float) -> int:
        start, count = self._counts.get(address, (now, 0))
        return 0 if now - start >= self.window else count
