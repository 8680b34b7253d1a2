"""One Redis connection pool per process (and, for asyncio, per event loop) per URL. Django-free.

Every role asks here instead of calling `Redis.from_url`, so a process keeps a few warm
connections instead of opening one per request, and every connection has timeouts: without
them a half-dead Redis hangs a caller forever.

Asyncio connections belong to the loop that opened them, so asyncio clients are kept per loop;
entries of loops that have closed are dropped (tests run many loops in one process). Clients
from here are shared: never `close()`/`aclose()` them.
"""

from __future__ import annotations

import asyncio
import threading
import weakref

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

# Seconds a command may wait on the socket. Blocking reads here use BLPOP timeouts of at most
# 1 s (see common.rpc), well under this.
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
# Seconds a pooled connection may idle before it is PINGed first: Redis may have restarted.
HEALTH_CHECK_INTERVAL = 30
# Reconnect once when a pooled connection turns out dead. Timeouts are not retried
# (retry_on_timeout off): the command may have run, and a second RPUSH would be a second request.
RETRIES = 1

_Key = tuple[str, float, float]

_lock = threading.Lock()
_sync: dict[_Key, redis.Redis] = {}
_async: dict[tuple[int, _Key], tuple[weakref.ref[asyncio.AbstractEventLoop], aioredis.Redis]] = {}


def _options(socket_timeout: float, connect_timeout: float) -> dict[str, object]:
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
    }


def sync_redis(
    url: str, *, socket_timeout: float = SOCKET_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT
) -> redis.Redis:
    """Return this process's client for `url`; its pool is shared by every thread."""
    key = (url, socket_timeout, connect_timeout)
    with _lock:
        client = _sync.get(key)
        if client is None:
            # redis-py's sync pool notices a fork and starts afresh in the child (Celery forks).
            pool = redis.ConnectionPool.from_url(
                url,
                retry=Retry(NoBackoff(), RETRIES, supported_errors=(RedisConnectionError,)),
                **_options(socket_timeout, connect_timeout),
            )
            client = _sync[key] = redis.Redis(connection_pool=pool)
        return client


def async_redis(
    url: str, *, socket_timeout: float = SOCKET_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT
) -> aioredis.Redis:
    """Return the running loop's client for `url`; call from inside that loop."""
    loop = asyncio.get_running_loop()
    key = (id(loop), (url, socket_timeout, connect_timeout))
    with _lock:
        entry = _async.get(key)
        if entry is not None and entry[0]() is loop:
            return entry[1]
        _forget_closed_loops()
        pool = aioredis.ConnectionPool.from_url(
            url,
            retry=AsyncRetry(NoBackoff(), RETRIES, supported_errors=(RedisConnectionError,)),
            **_options(socket_timeout, connect_timeout),
        )
        client = aioredis.Redis(connection_pool=pool)
        _async[key] = (weakref.ref(loop), client)
        return client


def leased_redis(
    url: str, *, socket_timeout: float = SOCKET_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT
) -> aioredis.Redis:
    """Return a client that keeps one connection of the running loop's pool until `release()`.

    For a task that talks to Redis all the time (a blocking reader, a heartbeat). redis-py's
    asyncio pool awaits inside the lock it takes for every command; fifty media sessions contending
    for it in one edge process cost 40 % more CPU per command and 100 ms more per WebRTC leg at
    call setup (bench/call_setup.py, 50 legs). A leased connection takes that lock once.
    """
    pool = async_redis(url, socket_timeout=socket_timeout, connect_timeout=connect_timeout).connection_pool
    return aioredis.Redis(connection_pool=pool, single_connection_client=True)


async def release(client: aioredis.Redis) -> None:
    """Give a leased client's connection back to its pool (the pool stays open)."""
    await client.aclose(close_connection_pool=False)


def _forget_closed_loops() -> None:
    # Their connections can no longer be closed politely; dropping them lets the sockets go.
    for key, (ref, _) in list(_async.items()):
        loop = ref()
        if loop is None or loop.is_closed():
            del _async[key]


async def aclose_async_pools() -> None:
    """Disconnect the running loop's pools; for the end of a loop that must leave nothing open."""
    loop = asyncio.get_running_loop()
    with _lock:
        mine = [(k, c) for k, (ref, c) in _async.items() if ref() is loop]
        for key, _ in mine:
            del _async[key]
    for _, client in mine:
        await client.connection_pool.disconnect()
