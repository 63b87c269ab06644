"""The tests' brokers are their own (tests/brokers.py): a redis-server the session starts
(unless TEST_REDIS_URL names another), databases taken empty and emptied only by the test
that took them, and a RabbitMQ virtual host made for the test and deleted after it."""

import os
import shutil
import subprocess
import uuid
from urllib.parse import unquote, urlsplit

import kombu
import pytest
import redis

from tests import brokers
from tests.timing import scaled


@pytest.mark.skipif(bool(os.environ.get(brokers.TEST_REDIS_ENV)), reason="TEST_REDIS_URL is set")
def test_the_tests_use_a_redis_server_of_their_own_not_the_machines(redis_url):
    port = urlsplit(redis_url).port
    assert port != brokers.MACHINE_REDIS_PORT
    info = redis.Redis.from_url(redis_url).info("server")
    assert info["tcp_port"] == port
    assert info["executable"].endswith("redis-server")
    config = redis.Redis.from_url(redis_url).config_get("appendonly")
    assert config["appendonly"] == "no"  # nothing kept on disk: it goes with the session


def test_a_tests_database_is_empty_but_for_its_mark(redis_url):
    client = redis.Redis.from_url(redis_url)
    assert client.keys("*") == [brokers.CLAIM_KEY.encode()]


def test_a_database_in_use_is_never_taken_and_only_the_ones_taken_are_emptied(redis_databases):
    # Someone else's data in a database nobody took: a person's, another run's.
    urls = [redis_databases.url(n) for n in redis_databases._candidates()]
    theirs = next(url for url in urls if not redis.Redis.from_url(url).dbsize())
    other = redis.Redis.from_url(theirs)
    other.set("their:key", "keep me")
    try:
        taken = [redis_databases.claim() for _ in range(8)]
        assert theirs not in taken and len(set(taken)) == len(taken)
        for url in taken:
            redis.Redis.from_url(url).set("ours", "scratch")
        for url in taken:
            redis_databases.release(url)
            assert redis.Redis.from_url(url).dbsize() == 0
        assert other.get("their:key") == b"keep me"
    finally:
        other.delete("their:key")  # the test's own key: that database is as it was


def test_a_private_server_keeps_its_data_over_a_kill_only_when_asked(tmp_path):
    for persistence in (False, True):
        server = brokers.RedisServer(tmp_path / str(persistence), persistence=persistence)
        server.start()
        try:
            assert server.port != brokers.MACHINE_REDIS_PORT
            redis.Redis.from_url(server.url(0)).set("acknowledged", "1")
            redis.Redis.from_url(server.url(0)).config_set("appendfsync", "always")
            server.kill()
            server.start()  # the same port and folder
            kept = redis.Redis.from_url(server.url(0)).get("acknowledged")
            assert kept == (b"1" if persistence else None), persistence
        finally:
            server.stop()


def test_a_rabbitmq_virtual_host_is_made_for_the_test_and_deleted_after_it():
    with brokers.rabbitmq_vhost() as url:
        vhost = unquote(urlsplit(url).path[1:])
        assert vhost not in ("", "/"), url  # never the default one
        queue = f"it-{uuid.uuid4().hex[:8]}"
        with kombu.Connection(url, connect_timeout=scaled(10)) as connection:
            channel_queue = kombu.Queue(queue, routing_key=queue)
            with connection.Producer() as producer:
                producer.publish({"n": 1}, routing_key=queue, declare=[channel_queue])
            with connection.SimpleQueue(queue) as simple:
                message = simple.get(timeout=scaled(10))
                message.ack()
                assert message.payload == {"n": 1}
            channel_queue(connection.default_channel).delete()
    if os.environ.get(brokers.TEST_RABBITMQ_ENV):
        return  # theirs to keep
    listed = vhosts()
    if listed is not None:
        assert vhost not in listed


def vhosts() -> list[str] | None:
    control = shutil.which("rabbitmqctl")
    if control is None:
        return None
    done = subprocess.run([control, "list_vhosts", "-q"], capture_output=True, text=True,
                          timeout=scaled(60))  # fmt: skip
    return done.stdout.split() if done.returncode == 0 else None
