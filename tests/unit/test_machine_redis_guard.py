"""The tests leave the machine's Redis alone: in the pytest process nothing connects to
127.0.0.1:6379, nor starts a process told to use it, unless TEST_REDIS_URL names it
(tests/brokers.py's MachineRedisGuard, installed by tests/conftest.py). No server needed:
the guard refuses before a byte is sent."""

import asyncio
import os
import socket
import subprocess
import sys

import pytest
import redis

from tests import brokers, conftest

GUARDED = not brokers.names_machine_redis(os.environ.get(brokers.TEST_REDIS_ENV, ""))
needs_guard = pytest.mark.skipif(not GUARDED, reason="TEST_REDIS_URL names the machine's Redis")


@pytest.mark.parametrize(
    "text",
    [
        "redis://127.0.0.1:6379/0",
        "redis://localhost/3",  # the port defaults to 6379
        "redis://",
        "redis://:secret@127.0.0.1:6379/1",
        "rediss://[::1]:6379",
        "redis://127.0.1.1:6379/0",
        "redis://0.0.0.0:6379",
        "amqp://x, redis://localhost:6379/2",
    ],
)
def test_a_url_for_the_machines_redis_is_recognised(text):
    assert brokers.names_machine_redis(text)


@pytest.mark.parametrize(
    "text",
    ["redis://127.0.0.1:6380/0", "redis://redis:6379/0", "redis://10.1.2.3/0", "", "6379"],
)
def test_another_redis_is_not_the_machines(text):
    assert not brokers.names_machine_redis(text)


@needs_guard
def test_the_guard_is_on_for_the_session():
    assert conftest.GUARD is not None and conftest.GUARD.active


@needs_guard
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_connection_to_the_machines_redis_is_refused(host):
    with pytest.raises(brokers.MachineRedisTouched, match="6379"):
        socket.create_connection((host, 6379), timeout=1)
    with pytest.raises(brokers.MachineRedisTouched):
        redis.Redis(host=host, port=6379, socket_connect_timeout=1).ping()


@needs_guard
def test_an_event_loops_connection_to_the_machines_redis_is_refused():
    async def connect() -> None:
        await asyncio.open_connection("127.0.0.1", 6379)

    with pytest.raises(brokers.MachineRedisTouched):
        asyncio.run(connect())


@needs_guard
def test_a_process_told_to_use_the_machines_redis_is_not_started(tmp_path, monkeypatch):
    ran = tmp_path / "ran"
    touch = [sys.executable, "-c", f"open({str(ran)!r}, 'w')"]
    for env in ({"BROKER_URL": "redis://127.0.0.1:6379/0"},
                {"REGISTRY_URL": "redis://localhost/1"}):  # fmt: skip
        with pytest.raises(brokers.MachineRedisTouched, match="started with"):
            subprocess.run(touch, env={**os.environ, **env}, check=True)
    with pytest.raises(brokers.MachineRedisTouched):
        subprocess.run([*touch, "redis://127.0.0.1:6379/0"], check=True)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://127.0.0.1/2")  # inherited (env=None)
    with pytest.raises(brokers.MachineRedisTouched):
        subprocess.run(touch, check=True)
    assert not ran.exists()


def test_a_process_given_another_redis_starts(tmp_path):
    ran = tmp_path / "ran"
    touch = [sys.executable, "-c", f"open({str(ran)!r}, 'w')"]
    subprocess.run(touch, env={**os.environ, "BROKER_URL": "redis://127.0.0.1:6380/0"}, check=True)
    assert ran.exists()


def test_the_shells_broker_variables_reach_no_stage():
    """A person's BROKER_URL (the README has them write one) is not what a test's stage uses."""
    assert not set(brokers.BROKER_VARIABLES) & set(os.environ)


def test_a_variable_of_the_shell_naming_the_machines_redis_for_something_else_passes(tmp_path):
    guard = brokers.MachineRedisGuard({"CACHE_URL": "redis://127.0.0.1:6379/5"})
    guard.check_process(["true"], {"CACHE_URL": "redis://127.0.0.1:6379/5"})
    with pytest.raises(brokers.MachineRedisTouched):
        guard.check_process(["true"], {"CACHE_URL": "redis://127.0.0.1:6379/6"})
    with pytest.raises(brokers.MachineRedisTouched):  # the broker ones are never the shell's
        brokers.MachineRedisGuard({"BROKER_URL": "redis://localhost"}).check_process(
            ["true"], {"BROKER_URL": "redis://localhost"}
        )


def test_test_redis_url_naming_the_machines_redis_lets_the_tests_use_it():
    guard = brokers.MachineRedisGuard({brokers.TEST_REDIS_ENV: "redis://127.0.0.1:6379/4"})
    assert not guard.active
    guard.hook("socket.connect", (None, ("127.0.0.1", 6379)))  # no refusal
