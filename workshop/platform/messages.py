"""The typed messages services exchange (stage 03 on): the envelope, and the message types.

Like the public HTTP contract (contract.py), the message contract is the same in every
stage that has messages; how a stage sends and takes them is its own (its chassis).
"""

import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from workshop.domain.posts import POST_FIELDS, upvote_ratio
from workshop.platform import schemas

# The message types of the workshop, and who publishes them.
POST_UPSERTED = "post.upserted"  # ingest: a post's current state
TAGS_CHANGED = "tags.changed"  # tag: a post's current tag counts
PREFERENCES_UPDATED = "preferences.updated"  # users: a user's current topics
# The monolith, in a migration (03's strangler fig), to the service that will own the data
# next: what a copy needs not, but an owner must have to take over.
ACCOUNT_CHANGED = "account.changed"  # a user's password hash and topics, for users
TAGGINGS_CHANGED = "taggings.changed"  # who gave a post which tag, for tag
SUBSCRIPTION_DECLARED = "subscription.declared"  # any subscriber, to sync, at start
OUTBOX_DRAINED = "outbox.drained"  # any owner, to sync: what it held at start is published
CAUGHT_UP = "subscription.caught_up"  # sync, to a new subscriber: the log so far is yours
# Stage 04: sync's replay as a Celery task, which asks sync and waits for its answer.
REPLAY_REQUESTED = "replay.requested"  # the task, to sync: re-send a subscriber the log
REPLAY_DONE = "replay.done"  # sync, to the task's own queue: how many changes it sent
# Sync, to an owner's relay: your digest of a type differs from the log's (the broker lost
# changes on their way, or the log lost them): publish every entity of it again.
OUTBOX_RESEND = "outbox.resend"
MASTER_DATA_TYPES = (
    POST_UPSERTED,
    TAGS_CHANGED,
    PREFERENCES_UPDATED,
    ACCOUNT_CHANGED,
    TAGGINGS_CHANGED,
)
# What a digest's checksum is taken modulo: the sum of every entity's version, kept small.
DIGEST_MODULUS = 2**61 - 1
# The comment on the query that makes a digest (an owner's, or sync's of its log when it
# starts): it reads every entity on purpose (an audit, not a request's), and the store's
# profile says so.
DIGEST_COMMENT = "audit: a digest of every entity's version"


def digest(versions: Iterable[int]) -> list[int]:
    """Return the digest of a type's entities by their current versions: how many there
    are, and their versions' sum (modulo DIGEST_MODULUS). An owner announces it, sync keeps
    the same of its log; equal, the log has every entity at its current version."""
    count = checksum = 0
    for version in versions:
        count += 1
        checksum = (checksum + version) % DIGEST_MODULUS
    return [count, checksum]


def post_upserted(post: Mapping[str, Any]) -> dict[str, Any]:
    """Return the payload of a post.upserted (its newest version) from a stored post: every
    public field but the id (the message's key) and the tags (tag owns them), and, since
    version 2, the post's upvote ratio."""
    fields = {name: post[name] for name in POST_FIELDS if name not in ("id", "tags")}
    return {**fields, "upvote_ratio": upvote_ratio(post)}


def resend_queue(owner: str) -> str:
    """Return the queue where an owner's relay hears sync ask it to publish a type again."""
    return f"{owner}-outbox"


def first_version() -> int:
    """Return a new entity's first version: the clock, in microseconds.

    Each change then adds one. Starting from the clock rather than from 1, an owner that
    lost its store and starts again numbers its changes above every version it sent
    before, so its subscribers take them (they drop a version they have seen as old).
    """
    return time.time_ns() // 1000


class InvalidMessage(ValueError):
    """A message body that is not an envelope."""


@dataclass(frozen=True)
class Message:
    """An envelope. `key` names the entity, `version` orders its changes, `schema_version`
    says which of its type's schemas the payload follows (workshop/platform/schemas).

    The id is derived from (type, key, version): publishing the same change twice gives
    the same id, so a consumer can drop the duplicate. The schema version is not part of
    it: a change handed to an old reader in an older version is still the same change.
    """

    type: str
    key: str
    version: int
    payload: dict[str, Any]
    source: str
    occurred_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    sequence: int | None = None  # set by the sync service's ordered log
    # The trace the change belongs to, as W3C headers (traceparent), when tracing is on:
    # not part of the id, so a change published again under another trace is still a dup.
    trace: dict[str, str] | None = None
    # Unset: the type's newest version, the one its producer writes today.
    schema_version: int = 0

    def __post_init__(self) -> None:
        if not self.schema_version:
            known = schemas.versions(self.type)
            object.__setattr__(self, "schema_version", known[-1] if known else schemas.FIRST)

    @property
    def id(self) -> str:
        return f"{self.type}/{self.key}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """Return the envelope as JSON-ready data (no trace field when untraced)."""
        data = {"id": self.id, **asdict(self)}
        if data["trace"] is None:
            del data["trace"]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "Message":
        """Read an envelope, or raise InvalidMessage."""
        if not isinstance(data, dict):
            raise InvalidMessage("a message must be an object")
        try:
            message = cls(
                type=str(data["type"]),
                key=str(data["key"]),
                version=int(data["version"]),
                payload=dict(data["payload"]),
                source=str(data["source"]),
                occurred_at=str(data["occurred_at"]),
                sequence=None if data.get("sequence") is None else int(data["sequence"]),
                trace=_trace(data.get("trace")),
                # Messages from before versions were stamped are all version 1.
                schema_version=int(data.get("schema_version") or schemas.FIRST),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidMessage(f"not an envelope: {error}") from error
        return message

    def with_sequence(self, sequence: int) -> "Message":
        """Return the same message, placed in the sync log at `sequence`."""
        return Message(**{**asdict(self), "sequence": sequence})

    def problem(self, reads: Mapping[str, Collection[int]]) -> str | None:
        """Say why a consumer reading `reads` (versions per type) refuses this, or None."""
        return schemas.problem(self.type, self.schema_version, self.payload, reads)

    def for_reader(self, readable: Collection[int]) -> "Message":
        """Return this change in a version a reader reads (sync, for each subscriber): as it
        is, or an older version with the newer fields taken off; as it is if none fits (the
        reader refuses it into its dead-letter queue, which shows it)."""
        fitted = schemas.downgrade(self.type, self.schema_version, self.payload, readable)
        if fitted is None or fitted[0] == self.schema_version:
            return self
        version, payload = fitted
        return Message(**{**asdict(self), "schema_version": version, "payload": payload})


def _trace(headers: Any) -> dict[str, str] | None:
    """Read an envelope's trace headers; anything but an object of strings is ignored."""
    if not isinstance(headers, dict) or not headers:
        return None
    return {str(name): str(value) for name, value in headers.items()}
