"""Capped exponential backoff with full jitter. Django-free.

"Full jitter" from the AWS Architecture Blog ("Exponential Backoff And Jitter", 2015):
sleep = random.uniform(0, min(cap, base * 2**attempt)). Spreading retries over the whole
window keeps many clients from retrying in lockstep after a shared outage.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

# 2**64 * any sane base is far beyond any cap; stop the exponent there so it never overflows.
_MAX_EXPONENT = 64


class Backoff:
    """Delays for successive retries: each drawn from [0, min(cap, base * 2**attempt)]."""

    def __init__(
        self, base: float, cap: float, *, rand: Callable[[float, float], float] = random.uniform
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, not base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rand = rand  # injectable, so tests are deterministic

    def __repr__(self) -> str:
        return f"<Backoff base={self.base} cap={self.cap} attempt={self.attempt}>"

    def ceiling(self) -> float:
        """Return the upper bound of the next delay."""
        return min(self.cap, self.base * 2 ** min(self.attempt, _MAX_EXPONENT))

    def next(self) -> float:
        """Return the delay before the next retry and count the attempt."""
        delay = self._rand(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from `base`, after a success."""
        self.attempt = 0

    async def sleep(self) -> float:
        """Sleep for the next delay; return how long."""
        delay = self.next()
        await asyncio.sleep(delay)
        return delay
