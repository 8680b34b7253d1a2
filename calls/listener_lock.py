"""The single-instance lock of a PBX's AMI listener, on redis-py's `Lock`. Django-free.

The active instance holds the lock and renews it every ttl / 3; a standby polls for it at
the same pace and takes over once it expires (after a crash) or is released. redis-py's
Lock renews and releases with Lua scripts that check the token first, so neither can touch
a lock a standby took over during a stall: two listeners would count every call twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, LockNotOwnedError, RedisError

logger = logging.getLogger(__name__)


class ListenerLock:
    """Hold `name` as `owner` while active; wait as a standby otherwise."""

    def __init__(self, r: aioredis.Redis, name: str, owner: str, ttl: float, label: str) -> None:
        self.redis = r
        self.name = name
        self.owner = owner  # the token: readable, so a standby can say who is active
        self.ttl = ttl
        self.label = label  # for log lines: "AMI <pbx>"
        # thread_local off: the token is the instance's, whichever thread the loop runs in.
        self._lock = Lock(r, name, timeout=ttl, blocking=False, thread_local=False)

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this instance holds the lock (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if await self._lock.acquire(token=self.owner):
                    return True
                if not announced:
                    logger.info("%s: standby; %s holds the listener lock", self.label, await self.holder())
                    announced = True
            except RedisError as exc:
                logger.warning("%s: Redis unavailable for the lock (%s)", self.label, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.ttl / 3)
        return False

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew the lock every ttl / 3 until `stop`; set `stop` once it is lost or may have expired."""
        renewed = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.ttl / 3)
            if stop.is_set():
                return
            try:
                await self._lock.reacquire()  # back to the full ttl, only if still ours
            except LockNotOwnedError:
                logger.error("%s: lost the listener lock to %s; stopping", self.label, await self.holder())
                stop.set()
                return
            except RedisError as exc:
                # Can't renew: once the lock may have expired a standby may be active,
                # so step down rather than count calls twice.
                if time.monotonic() - renewed >= self.ttl:
                    logger.error("%s: could not renew the lock (%s); stopping", self.label, exc)
                    stop.set()
                    return
                logger.warning("%s: lock renewal failed (%s)", self.label, exc)
                continue
            renewed = time.monotonic()

    async def release(self) -> None:
        """Let a standby take over now rather than after the ttl; quiet if already lost."""
        try:
            await self._lock.release()
        except LockError:  # LockNotOwnedError included
            pass  # expired or taken over already: nothing of ours to release
        except Exception:
            logger.warning("%s: could not release the lock", self.label, exc_info=True)

    async def holder(self) -> str:
        """Return who holds the lock now, for log lines."""
        try:
            value = await self.redis.get(self.name)
        except RedisError:
            return "?"
        return value.decode(errors="replace") if value else "nobody"
