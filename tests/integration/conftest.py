"""Integration tests talk to a real Redis: the machine's (a database of their own), or one
they start themselves when none is running."""

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

MACHINE_REDIS = "redis://127.0.0.1:6379/11"


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """TEST_REDIS_URL, else the machine's Redis, else a private redis-server for the session."""
    url = os.environ.get("TEST_REDIS_URL") or MACHINE_REDIS
    if _answers(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("no Redis answers at 127.0.0.1:6379 and redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _answers(url) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A clean Redis database for one test."""
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    yield redis_server
    client.flushdb()
