"""Keeping the embedded store across restarts, and across a kill -9: a journal of its writes.

A real server keeps every acknowledged write when a service stops or is killed; the
emulation lives in the process. When a folder is given (WORKSHOP_DATA_DIR: `workshop up`
gives each stage one, kept from one run to the next), every write the emulation accepts is
appended to its database's journal (<folder>/store/<db>.journal) before the call returns,
and a process opening the database reads the snapshot (<db>.bson) and replays the journal.
Compacting (at start, at a clean stop, and when a long run's journal outgrows its snapshot)
folds the journal into the snapshot. docs/decisions.md says why a journal, and what it
guarantees.
"""

import atexit
import base64
import fcntl
import logging
import os
import threading
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import bson
import mongomock
from bson.codec_options import CodecOptions
from bson.errors import InvalidBSON
from mongomock.collection import Collection

from embedded_mongo import engine
from embedded_mongo.engine import store_key

log = logging.getLogger(__name__)

State = dict[str, dict[Hashable, dict[str, Any]]]  # collection -> _id -> document
# Snapshot and journal are BSON, as MongoDB stores documents (an Int64 stays one, a double
# stays one), encoded and decoded in C: 30,000 posts load in a fraction of a second. Dates
# come back naive, in UTC, as the emulation keeps them.
NAIVE = CodecOptions(tz_aware=False)

_journals: dict[str, "Journal"] = {}
_journals_lock = threading.Lock()


class Journal:
    """One database's snapshot and journal of writes, in the stage's store folder.

    A record is one line, written before the write call returns: the post-image of every
    document the call inserted or changed ("put"), and the _id of every one it removed
    ("gone"), so a replay gives back the same documents whatever the update operators did.
    A line is the record in BSON, base64-encoded: the types MongoDB stores, exactly, and
    encoded in C (six times faster than extended JSON on a bulk import). Each record starts
    with a newline, so a record torn by a kill cannot swallow the next one; a line that does
    not decode is a torn record and replay skips it.

    Records are written with one os.write on a file opened for appending: a process killed
    afterwards loses nothing, as the operating system has the bytes (no fsync: a power cut
    may lose the last writes). Two processes may share a database (04's ingest web process
    and worker): appends take a shared flock, compaction an exclusive one, and compaction
    folds what is on disk, never one process's memory.
    """

    # Past this size, and past its snapshot's, the journal is folded into the snapshot by a
    # thread of its own: a long run's journal stays short, and a restart replays little.
    COMPACT_AFTER_BYTES = 16 * 1024 * 1024
    RETRY_COMPACT_SECONDS = 60.0  # after a compaction failed (a full disk, ...)

    def __init__(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.snapshot = folder / f"{name}.bson"
        self.path = folder / f"{name}.journal"
        self.lock = threading.RLock()  # one write call at a time, record included
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._compacting = threading.Lock()  # held while a background compaction runs
        self._next_try = 0.0

    def append(self, record: dict[str, Any]) -> None:
        """Write one record; return once the operating system holds it."""
        data = b"\n" + base64.b64encode(bson.encode(record))
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        if os.fstat(self._fd).st_size > self.COMPACT_AFTER_BYTES and self._outgrew_snapshot():
            self._compact_in_background()

    def _outgrew_snapshot(self) -> bool:
        try:
            return os.fstat(self._fd).st_size > self.snapshot.stat().st_size
        except FileNotFoundError:  # no snapshot yet
            return True

    def _compact_in_background(self) -> None:
        """Fold the journal in a thread: the write that crossed the limit returns at once
        (the event loop of a 04 service goes on; writes wait only while the fold runs), and
        a failure is logged and tried again later, never raised to a write that succeeded."""
        if time.monotonic() < self._next_try or not self._compacting.acquire(blocking=False):
            return

        def fold() -> None:
            try:
                self.compact()
            except Exception:
                self._next_try = time.monotonic() + self.RETRY_COMPACT_SECONDS
                log.exception("could not compact %s; the journal keeps every write", self.path)
            finally:
                self._compacting.release()

        threading.Thread(target=fold, name=f"compact-{self.path.stem}", daemon=True).start()

    def compact(self) -> State:
        """Fold the journal into the snapshot, empty the journal, and return the data."""
        with self.lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                state = self.read()
                temporary = self.snapshot.with_name(f".{self.snapshot.name}")
                # One file, replaced at once: {"c": collection, "d": document} after another.
                temporary.write_bytes(
                    b"".join(
                        bson.encode({"c": collection, "d": document})
                        for collection, documents in state.items()
                        for document in documents.values()
                    )
                )
                temporary.replace(self.snapshot)
                os.ftruncate(self._fd, 0)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return state

    def read(self) -> State:
        """Return the snapshot with the journal replayed on it (torn records skipped)."""
        state: State = {}
        if self.snapshot.exists():
            for entry in bson.decode_all(self.snapshot.read_bytes(), NAIVE):
                document = entry["d"]
                state.setdefault(entry["c"], {})[store_key(document["_id"])] = document
        for line in self.path.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            try:
                record = bson.decode(base64.b64decode(line, validate=True), NAIVE)
            except (ValueError, InvalidBSON):  # torn by a kill in the middle of its write
                continue
            _replay(state, record)
        return state


def _replay(state: State, record: dict[str, Any]) -> None:
    if "drop_database" in record:
        state.clear()
    elif "drop" in record:
        state.pop(record["drop"], None)
    elif "rename" in record:
        old, new = record["rename"]
        state[new] = state.pop(old, {})
    else:
        documents = state.setdefault(record["c"], {})
        for document in record["put"]:
            documents[store_key(document["_id"])] = document
        for key in record["gone"]:
            documents.pop(store_key(key), None)


def restore_once(handle: Any, folder: Path) -> None:
    """Give an embedded database what it held before (once per process), and journal it
    from now on."""
    with _journals_lock:  # held while loading: no one sees the database half restored
        if handle.name in _journals:
            return
        journal = Journal(folder, handle.name)
        for collection, documents in journal.compact().items():
            store = handle[collection]._store
            for key, document in documents.items():
                store[key] = document  # as stored: already checked and dated when written
        _journals[handle.name] = journal  # journaling starts after the restored data is in
        if len(_journals) == 1:
            atexit.register(save_all)


def save_all() -> None:
    """Compact this process's kept databases: fold each journal into its snapshot.

    Nothing is lost without it (every write is in the journal already); it keeps the
    journal short. Called at a clean exit.
    """
    for journal in list(_journals.values()):
        journal.compact()


def journal_of(database: Any) -> "Journal | None":
    """Return the journal of an embedded database this process keeps, else None."""
    from embedded_mongo import embedded_client

    if database.client is not embedded_client():
        return None
    return _journals.get(database.name)


def _lock_for(collection: Collection) -> Any:
    journal = journal_of(collection.database)
    return journal.lock if journal is not None else None


def _append_write(collection: Collection, put: list[dict[str, Any]], gone: list[Any]) -> None:
    journal = journal_of(collection.database)
    if journal is not None and (put or gone):
        journal.append({"c": collection.name, "put": put, "gone": gone})


def _journaled_drop(drop: Any) -> Any:
    """Journal dropping a collection (or renaming one) of a kept database."""

    def journaled_drop(self: Any, name: Any, *args: Any, **kwargs: Any) -> Any:
        journal = journal_of(self)
        if journal is None:
            return drop(self, name, *args, **kwargs)
        name = getattr(name, "name", name)
        with journal.lock:
            result = drop(self, name, *args, **kwargs)
            if drop.__name__ == "rename_collection":
                journal.append({"rename": [name, args[0] if args else kwargs["new_name"]]})
            else:
                journal.append({"drop": name})
        return result

    return journaled_drop


def _journaled_drop_database(drop: Any) -> Any:
    def journaled_drop_database(self: Any, name: Any) -> Any:
        from embedded_mongo import embedded_client

        name = getattr(name, "name", name)
        journal = _journals.get(name) if self is embedded_client() else None
        if journal is None:
            return drop(self, name)
        with journal.lock:
            result = drop(self, name)
            journal.append({"drop_database": True})
        return result

    return journaled_drop_database


def _install() -> None:
    engine.around_write.append(_lock_for)
    engine.after_write.append(_append_write)
    for name in ("drop_collection", "rename_collection"):
        method = getattr(mongomock.database.Database, name)
        setattr(mongomock.database.Database, name, _journaled_drop(method))
    mongomock.MongoClient.drop_database = _journaled_drop_database(
        mongomock.MongoClient.drop_database
    )


_install()
