"""The versioned schemas of the messages (stage 03 on): one JSON Schema file per type and
version, `<type>.v<N>.json` in this folder.

A producer stamps each message with its type's newest version. A consumer says which
versions of each type it reads (`reads`) and refuses the rest into its dead-letter queue,
with the reason (`problem`). A reader is tolerant: a field it does not know is ignored,
never an error, so adding a field needs a new version only to say so, and sync can hand an
old reader a new message with the new fields taken off (`for_reader`): recommend-v1 keeps
reading `post.upserted` version 1 while ingest publishes version 2.
"""

import copy
import functools
import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

FOLDER = Path(__file__).parent
# What a reader reads of a type unless its service says more: the first version.
FIRST = 1
# The queue a consumer puts the messages it refuses in: its own queue's name, and this.
DEAD_LETTER_SUFFIX = ".dead-letter"


class _PassOn(frozenset):
    """Every version, unchecked: what a router reads of the types it only passes on."""

    def __contains__(self, version: object) -> bool:
        return True


# Sync's reading of the master data it logs and hands on. Were sync to refuse an owner's
# change, the owner would hold an entity the log lacks, and sync would ask it for the whole
# type again, and refuse it again, for ever: each subscriber checks what it is handed instead.
PASS_ON: Collection[int] = _PassOn()


def dead_letter_queue(queue_name: str) -> str:
    """Return the queue where a consumer of `queue_name` keeps the messages it refused."""
    return f"{queue_name}{DEAD_LETTER_SUFFIX}"


@functools.cache
def catalogue() -> dict[str, tuple[int, ...]]:
    """Return every message type with its versions, from the files in this folder."""
    found: dict[str, list[int]] = {}
    for path in FOLDER.glob("*.v*.json"):
        message_type, _, version = path.name.removesuffix(".json").rpartition(".v")
        found.setdefault(message_type, []).append(int(version))
    return {kind: tuple(sorted(versions)) for kind, versions in sorted(found.items())}


def versions(message_type: str) -> tuple[int, ...]:
    """Return the versions of a type that have a schema (none: an unknown type)."""
    return catalogue().get(message_type, ())


def newest(message_type: str) -> int:
    """Return the version a producer stamps on a message of this type."""
    known = versions(message_type)
    if not known:
        raise LookupError(f"no schema for message type {message_type!r} in {FOLDER}")
    return known[-1]


def every_version() -> dict[str, tuple[int, ...]]:
    """What a reader of everything reads (sync: it logs and passes on every version)."""
    return catalogue()


@functools.cache
def schema(message_type: str, version: int) -> dict[str, Any]:
    """Return the JSON Schema of a type's payload in one version."""
    return json.loads((FOLDER / f"{message_type}.v{version}.json").read_text())


def example(message_type: str, version: int | None = None, **fields: Any) -> dict[str, Any]:
    """Return a payload of a type (its newest version unless named) from its schema's
    examples, with `fields` changed: a valid message to send in a test or a lab."""
    found = schema(message_type, version or newest(message_type))["examples"][0]
    return {**copy.deepcopy(found), **fields}


@functools.cache
def _validator(message_type: str, version: int) -> Draft202012Validator:
    return Draft202012Validator(schema(message_type, version))


def payload_problem(message_type: str, version: int, payload: Any) -> str | None:
    """Say what is wrong with a payload against its type's schema in that version, or None."""
    if version not in versions(message_type):
        return f"{message_type} has no version {version}"
    validator = _validator(message_type, version)
    if validator.is_valid(payload):
        return None
    error = next(iter(validator.iter_errors(payload)))
    where = "/".join(str(part) for part in error.absolute_path) or "the payload"
    return f"{message_type} v{version}: {where}: {error.message}"


def problem(
    message_type: str, version: int, payload: Any, reads: Mapping[str, Collection[int]]
) -> str | None:
    """Say why a consumer that reads `reads` (versions per type) refuses a message, or None.

    A type missing from `reads` is read in its first version only: a consumer reads the
    versions it was written for, and a newer one is news it must say it understands.
    """
    readable = reads.get(message_type, (FIRST,))
    if isinstance(readable, _PassOn):
        return None
    if version not in readable:
        wanted = ", ".join(str(v) for v in sorted(readable))
        return f"{message_type} v{version}: this consumer reads version {wanted}"
    return payload_problem(message_type, version, payload)


def downgrade(
    message_type: str, version: int, payload: dict[str, Any], readable: Collection[int]
) -> tuple[int, dict[str, Any]] | None:
    """Return (version, payload) in the newest readable version at most `version`: the
    payload itself if its version is readable, else the payload with only the fields the
    older schema names, if that is valid in it; None when no readable version fits."""
    if version in readable:
        return version, payload
    if version not in versions(message_type):
        return None  # a version this code has no schema for: which fields stay is a guess
    for older in sorted((v for v in readable if v < version), reverse=True):
        fields = schema(message_type, older).get("properties", {})
        kept = {name: value for name, value in payload.items() if name in fields}
        if payload_problem(message_type, older, kept) is None:
            return older, kept
    return None
