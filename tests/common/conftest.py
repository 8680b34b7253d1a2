import os
import uuid

import pytest
import redis

from tests.fixtures.prereq import require

# A database no other test uses (tests/media/test_worker.py flushes 13, the benchmarks use 5).
DB = 14


@pytest.fixture
def redis_url() -> str:
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    url = base.rsplit("/", 1)[0] + f"/{DB}"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError:
        require(False, f"Redis at {url}")
    return url


@pytest.fixture
def key() -> str:
    """A fresh key prefix, so runs never see each other's lists."""
    return f"test:common:{uuid.uuid4().hex[:8]}"
