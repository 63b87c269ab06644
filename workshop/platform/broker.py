"""The broker connection every stage with messages uses: durable named queues through kombu.

BROKER_URL picks the broker (redis://..., amqp://...). Unset, kombu's filesystem
transport serves: messages are files under the run's folder, so separate processes on
one laptop share them with no server to install. How a process publishes and consumes
(threads in 03, the event loop in 04) is its stage's chassis.

The stock filesystem transport writes a message file in place; a consumer in another
process can read it half-written. Here a message is written under a temporary name and
renamed into the queue folder (a rename is atomic), so a reader sees all of it or nothing.

The stock transport also deletes a message file as soon as a consumer reads it, so a
consumer killed before it acknowledged (kill -9: no chance to put it back) lost the
message, and a killed sync lost the whole batch it held. Here reading moves the file to
`unacked/<queue>/`, acknowledging deletes it, and a consumer that starts on a queue first
puts back what a dead consumer of that queue left there: at-least-once, as on Redis or
RabbitMQ. (One consumer per queue, as every service and the Celery worker have here.)
"""

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from time import monotonic_ns
from typing import Any

import kombu
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

from workshop import config

SYNC_QUEUE = "sync"
POLL_SECONDS = 0.05
# How long a /readyz check waits for the broker: both of a service's checks fit in the
# gateway's wait for its answer, even when nobody refuses the connection.
PROBE_SECONDS = 0.5
# The most messages a relay or sync puts in one batch.
MAX_BATCH = 500
# Where a message file is written before it is renamed into the queue folder.
TMP_DIR = ".incoming"
# Where a message taken by a consumer waits for its acknowledgement, a folder per queue.
UNACKED_DIR = "unacked"
# The message property that names a delivered message's file there.
HELD_FILE = "workshop_held_file"


def broker_url() -> str:
    """Return BROKER_URL, or the filesystem transport's when it is unset."""
    return config.env("BROKER_URL") or "filesystem://"


def connect(timeout: float = 2.0) -> kombu.Connection:
    """Open a connection to the broker (lazily: nothing is sent until it is used), giving up
    on a connection attempt after `timeout` seconds."""
    url = broker_url()
    if url.startswith("filesystem"):
        folder = broker_folder()
        options = filesystem_options(folder)
        return kombu.Connection(transport=Transport, transport_options=options)
    options: dict[str, Any] = {}
    if url.startswith("redis"):
        options = {"visibility_timeout": 60}  # an unacked message comes back after a crash
    return kombu.Connection(url, transport_options=options, connect_timeout=timeout)


@contextlib.contextmanager
def _probe() -> Iterator[kombu.Connection]:
    """Open a connection of its own for a check (/readyz), failing at once if nobody answers.

    A connection in use is no witness: after the broker died it still says it is connected
    until it is next used, and a publisher retrying on it holds it meanwhile.
    """
    with connect(timeout=PROBE_SECONDS) as probe:
        probe.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        yield probe


def check_answers() -> None:
    """Raise unless the broker answers now."""
    with _probe():
        pass


def waiting_in(queue_name: str) -> int:
    """Return how many messages wait in a queue."""
    with _probe() as probe:
        return queue(queue_name)(probe.default_channel).queue_declare(passive=False).message_count


def broker_folder() -> str:
    """Return (and create) the folder the filesystem transport keeps messages in."""
    folder = config.data_dir() / "broker"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def filesystem_options(folder: str) -> dict[str, Any]:
    """Return the filesystem transport's options: every file it writes under `folder`."""
    return {
        "data_folder_in": folder,
        "data_folder_out": folder,
        # Exchanges are files too; the default ("control", relative) would land in the cwd.
        "control_folder": str(Path(folder) / "control"),
        "polling_interval": POLL_SECONDS,
    }


def queue(name: str) -> kombu.Queue:
    """Return a durable queue that survives its consumer's (and a real broker's) restart."""
    return kombu.Queue(name, routing_key=name, durable=True)


def safe_url(url: str) -> str:
    """Hide a password in a broker URL before showing it."""
    head, sep, tail = url.partition("@")
    return f"{head.split(':')[0]}://***@{tail}" if sep else url


class Channel(filesystem.Channel):
    """kombu's filesystem channel, writing each message whole (see the module's note)."""

    def _put(self, queue: str, payload: dict, **kwargs: object) -> None:
        # Taken oldest first by name: a fixed-width clock keeps the names in time order.
        name = f"{monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        staging = os.path.join(self.data_folder_out, TMP_DIR)
        os.makedirs(staging, exist_ok=True)
        temporary = os.path.join(staging, name)
        with open(temporary, "wb") as file:
            file.write(str_to_bytes(dumps(payload)))
        os.replace(temporary, os.path.join(self.data_folder_out, name))

    def _get(self, queue: str) -> dict:
        """Take the oldest message of `queue`: move its file to the queue's unacked folder."""
        held = self._held_folder(queue)
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != f"{queue}.msg":  # <time>_<uuid>.<queue>.msg
                continue
            path = os.path.join(held, name)
            try:
                os.replace(os.path.join(self.data_folder_in, name), path)
            except FileNotFoundError:  # another consumer took it first
                continue
            with open(path, "rb") as file:
                payload = loads(bytes_to_str(file.read()))
            payload.setdefault("properties", {})[HELD_FILE] = path
            return payload
        raise Empty()

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        """Start consuming; first put back what a dead consumer of this queue held."""
        held = self._held_folder(queue)
        for name in sorted(os.listdir(held)):
            with contextlib.suppress(FileNotFoundError):
                os.replace(os.path.join(held, name), os.path.join(self.data_folder_in, name))
        return super().basic_consume(queue, *args, **kwargs)

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        held = self._held_file(delivery_tag)
        super().basic_ack(delivery_tag, multiple=multiple)
        _forget(held)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """Drop a message, or put it back where it was (its file, at the head of the queue,
        as Redis and RabbitMQ do: what came after it still comes after it)."""
        held = self._held_file(delivery_tag)
        super().basic_reject(delivery_tag, requeue=False)
        if requeue and held:
            with contextlib.suppress(FileNotFoundError):
                os.replace(held, os.path.join(self.data_folder_in, os.path.basename(held)))
        else:
            _forget(held)

    def _restore(self, message: Any) -> None:
        """Put a message back at shutdown (a new file), then drop its held copy."""
        super()._restore(message)
        _forget(message.properties.get(HELD_FILE))

    def _held_folder(self, queue: str) -> str:
        folder = os.path.join(self.data_folder_in, UNACKED_DIR, queue)
        os.makedirs(folder, exist_ok=True)
        return folder

    def _held_file(self, delivery_tag: str) -> str | None:
        try:
            message = self.qos.get(delivery_tag)  # the delivered message, until acknowledged
        except KeyError:
            return None
        return message.properties.get(HELD_FILE)


def _forget(path: str | None) -> None:
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


class Transport(filesystem.Transport):
    """kombu's filesystem transport with the atomic channel."""

    Channel = Channel
