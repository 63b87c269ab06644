"""The broker-free default (workshop.platform.broker's filesystem transport) keeps a message until
its consumer acknowledges it: a consumer killed with a message in hand (kill -9, no chance
to put it back) does not lose it; the queue's next consumer gets it again.

kombu's stock filesystem transport deletes a message file as soon as a consumer reads it,
so a killed sync lost the batch it held (issue: up to 500 changes never logged).
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import kombu

from tests.timing import scaled
from workshop.platform import broker

QUEUE = "held"
# A consumer that takes one message, says so, and never acknowledges it.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from workshop.platform import broker

    def hold(body, message):
        print("holding", body["n"], flush=True)
        time.sleep(3600)

    with broker.connect() as connection:
        with connection.Consumer([broker.queue(sys.argv[1])], callbacks=[hold], prefetch_count=1):
            connection.drain_events(timeout=30)
    """
)


def publish(numbers: list[int]) -> None:
    with broker.connect() as connection:
        producer = connection.Producer()
        for number in numbers:
            producer.publish({"n": number}, routing_key=QUEUE, declare=[broker.queue(QUEUE)],
                             serializer="json")  # fmt: skip


def drain(expected: int, within: float) -> list[int]:
    """Take (and acknowledge) what the queue gives until `expected` came or the deadline
    (scaled(within) from now)."""
    seen: list[int] = []

    def take(body: dict, message: kombu.Message) -> None:
        seen.append(body["n"])
        message.ack()

    deadline = time.monotonic() + scaled(within)
    with (
        broker.connect() as connection,
        connection.Consumer([broker.queue(QUEUE)], callbacks=[take]),
    ):
        while time.monotonic() < deadline and len(seen) < expected:
            try:
                connection.drain_events(timeout=0.5)
            except TimeoutError:
                continue
    return seen  # in the order the queue gave them


def test_a_message_held_by_a_killed_consumer_comes_back(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BROKER_URL", raising=False)
    publish([1, 2, 3])
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, QUEUE], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "WORKSHOP_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().startswith("holding 1")
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=scaled(10))
    assert drain(expected=3, within=10) == [1, 2, 3]


def test_an_acknowledged_message_is_gone_and_a_requeued_one_comes_back(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BROKER_URL", raising=False)
    publish([1, 2])
    with broker.connect() as connection:
        first = connection.SimpleQueue(broker.queue(QUEUE))
        message = first.get(timeout=scaled(5))
        message.ack()
        message = first.get(timeout=scaled(5))
        message.requeue()
        first.close()
    assert drain(expected=1, within=5) == [2]
    assert drain(expected=1, within=1) == []  # nothing else left
    held = tmp_path / "broker" / broker.UNACKED_DIR
    assert not any(held.rglob("*.msg")), "an acknowledged message left its file behind"


def test_a_requeued_message_comes_back_before_the_ones_after_it(tmp_path, monkeypatch):
    """As on Redis and RabbitMQ: a batch put back is taken again first, so the batches a
    subscriber gets stay in the order sync sent them."""
    monkeypatch.setenv("WORKSHOP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BROKER_URL", raising=False)
    publish([1, 2, 3])
    with broker.connect() as connection:
        queue = connection.SimpleQueue(broker.queue(QUEUE))
        message = queue.get(timeout=scaled(5))
        assert message.payload["n"] == 1
        message.requeue()
        queue.close()
    assert drain(expected=3, within=5) == [1, 2, 3]


def test_message_files_sort_in_the_order_they_were_written(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BROKER_URL", raising=False)
    publish(list(range(12)))
    names = sorted(p.name for p in (tmp_path / "broker").glob("*.msg"))
    assert len({len(name.split("_")[0]) for name in names}) == 1  # one width: no 9 < 10 trap
    assert drain(expected=12, within=5) == list(range(12))
