"""An operator's replay as a Celery task (stage 04 only; 03's `workshop sync replay` calls
sync's HTTP route).

The task (`sync.replay`, ingest/tasks.py) cannot replay itself: the log is sync's. It sends
sync a "replay.requested" naming a queue of its own and waits there; sync, after logging
the batch the request came in, replays as its HTTP route does (`store.replay`, under the
log's lock) and answers "replay.done" with how many changes it sent (None: no such
subscriber).
"""

import logging
import time
from typing import Any

from chassis.messaging.broker import Publisher
from chassis.service import AsyncDatabase
from sync import store
from workshop.platform.messages import REPLAY_DONE, REPLAY_REQUESTED, Message

log = logging.getLogger(__name__)


def requested(messages: list[Message]) -> list[dict[str, Any]]:
    """Return the replay requests of a batch; one without a queue to replay and one to
    answer on is dropped, and said so (one bad request must not stop the others)."""
    requests = []
    for message in messages:
        if message.type != REPLAY_REQUESTED:
            continue
        if {"queue", "reply_to"} <= set(message.payload):
            requests.append(message.payload)
        else:
            log.error("dropping a replay request without queue and reply_to: %r", message.payload)
    return requests


async def answer(database: AsyncDatabase, publisher: Publisher, messages: list[Message]) -> None:
    """Replay for every task of the batch that asked, and tell each on its own queue."""
    for request in requested(messages):
        queue = str(request["queue"])
        sent = await store.replay(database, publisher, queue)
        done = Message(REPLAY_DONE, queue, time.time_ns(), {"queue": queue, "sent": sent}, "sync")
        await publisher.publish([done], str(request["reply_to"]))
