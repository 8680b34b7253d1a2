"""common.redisconn: one pool per URL per process (per loop for asyncio), with timeouts."""

import asyncio

from common import redisconn
from common.redisconn import async_redis, sync_redis


def test_it_reuses_the_pool_for_the_same_url(redis_url: str) -> None:
    first, second = sync_redis(redis_url), sync_redis(redis_url)
    assert first is second
    assert first.connection_pool is second.connection_pool
    assert first.ping()
    other = redis_url.rsplit("/", 1)[0] + "/15"
    assert sync_redis(other).connection_pool is not first.connection_pool


def test_its_connections_have_timeouts(redis_url: str) -> None:
    kwargs = sync_redis(redis_url).connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == redisconn.SOCKET_TIMEOUT
    assert kwargs["socket_connect_timeout"] == redisconn.CONNECT_TIMEOUT
    assert kwargs["health_check_interval"] == redisconn.HEALTH_CHECK_INTERVAL
    # Blocking reads stay under the socket timeout.
    assert redisconn.SOCKET_TIMEOUT > 1
    custom = sync_redis(redis_url, socket_timeout=30)
    assert custom is not sync_redis(redis_url)
    assert custom.connection_pool.connection_kwargs["socket_timeout"] == 30


def test_threads_share_the_sync_pool(redis_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        clients = list(pool.map(lambda _: sync_redis(redis_url), range(8)))
    assert all(c is clients[0] for c in clients)


async def test_it_reuses_the_async_pool_within_a_loop(redis_url: str) -> None:
    first = async_redis(redis_url)
    assert async_redis(redis_url) is first
    assert await first.ping()
    kwargs = first.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == redisconn.SOCKET_TIMEOUT


def test_each_loop_gets_its_own_async_pool_and_closed_loops_are_forgotten(redis_url: str) -> None:
    async def client_and_ping() -> object:
        client = async_redis(redis_url)
        await client.ping()
        # It should keep no entry of a closed loop: making this one dropped the last run's.
        loops = [ref() for ref, _ in redisconn._async.values()]
        assert all(loop is not None and not loop.is_closed() for loop in loops)
        return client

    first = asyncio.run(client_and_ping())
    second = asyncio.run(client_and_ping())
    assert first is not second


async def test_aclose_async_pools_disconnects_this_loop_only(redis_url: str) -> None:
    client = async_redis(redis_url)
    await client.ping()
    await redisconn.aclose_async_pools()
    assert async_redis(redis_url) is not client  # a fresh one next time
    assert await async_redis(redis_url).ping()


async def test_a_leased_client_holds_one_pooled_connection_until_released(redis_url: str) -> None:
    from common import rpc

    pool = async_redis(redis_url).connection_pool
    leased = redisconn.leased_redis(redis_url)
    assert leased.connection_pool is pool  # the process's pool: no connection of its own
    await rpc.push(leased, "ccbridge:test:leased", "one", 60)  # a command on its own connection
    await leased.ping()
    held = leased.connection
    assert held is not None and held in pool._in_use_connections
    assert await async_redis(redis_url).lrange("ccbridge:test:leased", 0, -1) == [b"one"]
    assert 0 < await async_redis(redis_url).ttl("ccbridge:test:leased") <= 60
    await redisconn.release(leased)
    # Back in the pool, still connected, for the next lease.
    assert held not in pool._in_use_connections and held in pool._available_connections
    await async_redis(redis_url).delete("ccbridge:test:leased")
