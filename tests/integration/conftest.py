"""Integration tests talk to the real Redis on this machine (a database of their own)."""

import os

import pytest
import redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


@pytest.fixture
def redis_url() -> str:
    """A clean Redis database for one test (the machine's Redis keeps nothing on disk)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not running at {REDIS_URL} (.ci/run starts it)")
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
