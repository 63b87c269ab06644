"""The one place that turns MONGO_URL into a database handle, blocking or async.

With MONGO_URL set, PyMongo talks to a real server: `database()` through its blocking
client, `async_database()` through its native async client (`AsyncMongoClient`, the
successor of Motor). Without it, mongomock serves: an in-process MongoDB emulation, so the
workshop runs on a machine with no MongoDB; for async code, `AsyncFacade` below gives the
emulation PyMongo's async API. Code elsewhere only sees a database and uses what both
support (no $text, no transactions, no change streams).
"""

import atexit
import base64
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import bson
import mongomock
import pymongo
from bson import json_util
from bson.errors import InvalidBSON
from mongomock.filtering import filter_applies
from mongomock.helpers import hashdict
from pymongo import AsyncMongoClient
from pymongo.database import Database

from workshop import config

log = logging.getLogger(__name__)


def _lookup_by_id_first(original: Callable) -> Callable:
    """Make the emulation go straight to the document when a query names its _id.

    mongomock tests every document against every query (it has no indexes), which makes
    keyed reads and writes grow with the collection. A real server uses the _id index;
    this gives the emulation the same shortcut, with the same answers.
    """

    def iter_documents(self: Any, filter: Any) -> Iterator[dict]:
        found = find(self, filter)
        # In a write call, the documents it reads are those it may change: note them.
        touched = getattr(_writing, "touched", None)
        return touched.recording(found) if touched and touched.store is self._store else found

    def find(self: Any, filter: Any) -> Iterator[dict]:
        wanted = filter.get("_id") if isinstance(filter, dict) else None
        if wanted is None or isinstance(wanted, dict | list):
            if (
                isinstance(wanted, dict)
                and set(wanted) == {"$in"}
                and isinstance(wanted["$in"], list)
            ):
                keys = [key for key in wanted["$in"] if isinstance(key, Hashable)]
                found = [self._store[key] for key in dict.fromkeys(keys) if key in self._store]
                return (doc for doc in found if filter_applies(filter, doc))
            return original(self, filter)
        if not isinstance(wanted, Hashable) or wanted not in self._store:
            return iter(())
        document = self._store[wanted]
        return iter((document,) if filter_applies(filter, document) else ())

    return iter_documents


mongomock.collection.Collection._iter_documents = _lookup_by_id_first(
    mongomock.collection.Collection._iter_documents
)


def _without_sort(add: Callable) -> Callable:
    """Let the emulation's bulk_write take the `sort` PyMongo 4.9+ passes (None unless used)."""

    def add_write(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort is not None:
            raise NotImplementedError("the emulation cannot sort in a bulk write")
        return add(self, *args, **kwargs)

    return add_write


# Without this, bulk_write with UpdateOne or ReplaceOne fails in the emulation (TypeError).
for _add in ("add_update", "add_replace"):
    _builder = mongomock.collection.BulkOperationBuilder
    setattr(_builder, _add, _without_sort(getattr(_builder, _add)))

_clients: dict[str | None, pymongo.MongoClient | mongomock.MongoClient] = {}
_lock = threading.Lock()

# Fail fast when a real server is unreachable, so /readyz answers instead of hanging.
SERVER_TIMEOUT_MS = 2000


def client(url: str | None = None) -> pymongo.MongoClient | mongomock.MongoClient:
    """Return the process-wide client for a URL (None: the embedded emulation)."""
    with _lock:
        if url not in _clients:
            if url:
                _clients[url] = pymongo.MongoClient(
                    url, serverSelectionTimeoutMS=SERVER_TIMEOUT_MS, tz_aware=True
                )
            else:
                _clients[url] = mongomock.MongoClient(tz_aware=True)
        return _clients[url]


def database(name: str, url: str | None = None) -> Database:
    """Return the named database on MONGO_URL's server, or in the embedded emulation."""
    url = url if url is not None else config.mongo_url()
    return client(url)[name] if url else _embedded(name)


def _embedded(name: str) -> Database:
    """Return a database of the embedded emulation, with what this run stored before."""
    handle = client(None)[name]
    _restore_once(handle)
    return handle


# --- keeping the embedded store across a restart, and across a kill -9 --------------------
# A real server keeps every acknowledged write when a service stops or is killed; the
# emulation lives in the process. Within one `workshop up` run (WORKSHOP_RUN_DIR set), every
# write the emulation accepts is appended to its database's journal (<run>/store/<db>.journal)
# before the call returns, and a process starting reads the snapshot (<db>.json) and replays
# the journal. Compacting (at start, at a clean stop, and when a long run's journal
# outgrows its snapshot) folds the journal into the snapshot. docs/decisions.md says why a
# journal, and what it guarantees.

_journals: dict[str, "Journal"] = {}
_writing = threading.local()  # the write call this thread is in, and what it touched


def _snapshot_dir() -> Path | None:
    run_dir = config.env("WORKSHOP_RUN_DIR")
    return Path(run_dir) / "store" if run_dir else None


def _restore_once(handle: Database) -> None:
    folder = _snapshot_dir()
    if folder is None:
        return
    with _lock:  # held while loading: no one sees the database half restored
        if handle.name in _journals:
            return
        journal = Journal(folder, handle.name)
        for collection, documents in journal.compact().items():
            if documents:
                handle[collection].insert_many(list(documents.values()))
        _journals[handle.name] = journal  # journaling starts after the restored data is in
        if len(_journals) == 1:
            atexit.register(save_embedded)


def save_embedded() -> None:
    """Compact this process's embedded databases: fold each journal into its snapshot.

    Nothing is lost without it (every write is in the journal already); it keeps the
    journal short. Called at a clean exit.
    """
    for journal in list(_journals.values()):
        journal.compact()


def _store_key(document_id: Any) -> Hashable:
    """Return the key the emulation files a document under (a dict _id as a hashable dict)."""
    return hashdict(document_id) if isinstance(document_id, dict) else document_id


State = dict[str, dict[Hashable, dict[str, Any]]]  # collection -> _id -> document
# The snapshot is canonical extended JSON: readable, and it names every BSON type (an Int64
# stays one, a double stays one).
EXACT = json_util.CANONICAL_JSON_OPTIONS


class Journal:
    """One database's snapshot and journal of writes, in the run's store folder.

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
        self.snapshot = folder / f"{name}.json"
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
                temporary.write_text(
                    json_util.dumps(
                        {c: list(d.values()) for c, d in state.items()}, json_options=EXACT
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
            for collection, documents in json_util.loads(self.snapshot.read_text()).items():
                state[collection] = {_store_key(d["_id"]): d for d in documents}
        for line in self.path.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            try:
                record = bson.decode(base64.b64decode(line, validate=True))
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
            documents[_store_key(document["_id"])] = document
        for key in record["gone"]:
            documents.pop(_store_key(key), None)


class _Touched:
    """The documents one write call touched in one collection (keys, in order)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.keys: dict[Hashable, None] = {}

    def recording(self, documents: Iterator[dict]) -> Iterator[dict]:
        for document in documents:
            self.keys[_store_key(document["_id"])] = None
            yield document


def _journal_of(database: Any) -> "Journal | None":
    """Return the journal of an embedded database this run keeps, else None."""
    if database.client is not _clients.get(None):
        return None
    return _journals.get(database.name)


def _journaled(write: Callable) -> Callable:
    """Make a collection write call journal what it did before it returns.

    The outermost call journals (find_one_and_update runs _update, which may run _insert):
    the post-images of the documents it touched, read under the journal's lock so the last
    record of a document is its latest state. It journals after a failure too: an unordered
    bulk write that fails on one document has still written the others.
    """

    def journaled_write(self: Any, *args: Any, **kwargs: Any) -> Any:
        journal = None if getattr(_writing, "touched", None) else _journal_of(self.database)
        if journal is None:
            return write(self, *args, **kwargs)
        with journal.lock:
            store = self._store
            touched = _writing.touched = _Touched(store)
            try:
                return write(self, *args, **kwargs)
            finally:
                _writing.touched = None
                present = store._documents  # the raw store: no expiry pass, no reader lock
                put = [present[key] for key in touched.keys if key in present]
                gone = [key for key in touched.keys if key not in present]
                if put or gone:
                    journal.append({"c": self.name, "put": put, "gone": gone})

    return journaled_write


def _touching(change: Callable) -> Callable:
    """Make the emulation's store note the keys a write call sets or deletes."""

    def note_key(self: Any, key: Any, *args: Any) -> Any:
        touched = getattr(_writing, "touched", None)
        if touched is not None and touched.store is self:
            touched.keys[key] = None
        return change(self, key, *args)

    return note_key


for _write in ("_insert", "_update", "_delete", "insert_one", "insert_many", "update_one",
               "update_many", "replace_one", "delete_one", "delete_many", "bulk_write",
               "find_one_and_delete", "find_one_and_replace", "find_one_and_update"):  # fmt: skip
    _method = getattr(mongomock.collection.Collection, _write)
    setattr(mongomock.collection.Collection, _write, _journaled(_method))
for _change in ("__setitem__", "__delitem__"):
    _method = getattr(mongomock.store.CollectionStore, _change)
    setattr(mongomock.store.CollectionStore, _change, _touching(_method))


def _journaled_drop(drop: Callable) -> Callable:
    """Journal dropping a collection (or renaming one) of a kept database."""

    def journaled_drop(self: Any, name: Any, *args: Any, **kwargs: Any) -> Any:
        journal = _journal_of(self)
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


def _journaled_drop_database(drop: Callable) -> Callable:
    def journaled_drop_database(self: Any, name: Any) -> Any:
        name = getattr(name, "name", name)
        journal = _journals.get(name) if self is _clients.get(None) else None
        if journal is None:
            return drop(self, name)
        with journal.lock:
            result = drop(self, name)
            journal.append({"drop_database": True})
        return result

    return journaled_drop_database


for _drop in ("drop_collection", "rename_collection"):
    _method = getattr(mongomock.database.Database, _drop)
    setattr(mongomock.database.Database, _drop, _journaled_drop(_method))
mongomock.MongoClient.drop_database = _journaled_drop_database(mongomock.MongoClient.drop_database)


def ping(db: Database) -> dict[str, object]:
    """Check the database answers; return its state for /readyz."""
    kind = "embedded" if isinstance(db.client, mongomock.MongoClient) else "mongodb"
    try:
        db.command("ping")
    except Exception as error:  # any failure means "not ready", and /readyz says which
        return {"ok": False, "kind": kind, "error": type(error).__name__}
    return {"ok": True, "kind": kind}


# --- the async API: PyMongo's AsyncMongoClient, or a facade over the emulation -------------

_async_clients: dict[str, AsyncMongoClient] = {}


def async_database(name: str, url: str | None = None) -> "Any":
    """Return the named database for async code: PyMongo's async API on MONGO_URL's server,
    else the embedded emulation behind the same async calls (AsyncFacade)."""
    url = url if url is not None else config.mongo_url()
    if not url:
        return AsyncFacade(_embedded(name))
    if url not in _async_clients:  # one client per process and event loop, like the blocking one
        _async_clients[url] = AsyncMongoClient(
            url, serverSelectionTimeoutMS=SERVER_TIMEOUT_MS, tz_aware=True
        )
    return _async_clients[url][name]


async def close_async_clients() -> None:
    """Close the async clients (at the end of serving: their pools belong to the loop)."""
    while _async_clients:
        await _async_clients.popitem()[1].close()


async def async_ping(db: Any) -> dict[str, object]:
    """Check an async database answers; return its state for /readyz."""
    kind = "embedded" if isinstance(db, AsyncFacade) else "mongodb"
    try:
        await db.command("ping")
    except Exception as error:  # any failure means "not ready", and /readyz says which
        return {"ok": False, "kind": kind, "error": type(error).__name__}
    return {"ok": True, "kind": kind}


class AsyncFacade:
    """The embedded emulation behind PyMongo's async API: just the calls the services make.

    No library emulates AsyncMongoClient in process (mongomock-motor imitates Motor's older
    API), so this wraps mongomock: every call is awaitable as PyMongo's is, and answers what
    the blocking emulation answers (tests/unit/test_async_facade.py compares them). The
    emulation is in-process work with no I/O, so a call runs to its end on the event loop;
    a real server's calls await the network instead.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self.name = database.name

    def __getitem__(self, name: str) -> "AsyncCollectionFacade":
        return AsyncCollectionFacade(self._database[name])

    def __getattr__(self, name: str) -> "AsyncCollectionFacade":
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    async def command(self, command: str) -> dict[str, Any]:
        return self._database.command(command)

    async def list_collection_names(self) -> list[str]:
        return self._database.list_collection_names()


class AsyncCollectionFacade:
    """One collection of the emulation, with PyMongo's async collection calls."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self.name = collection.name

    def find(self, *args: Any, **kwargs: Any) -> "AsyncCursorFacade":
        return AsyncCursorFacade(self._collection.find(*args, **kwargs))

    async def aggregate(self, pipeline: list[dict[str, Any]]) -> "AsyncCursorFacade":
        return AsyncCursorFacade(self._collection.aggregate(pipeline))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in ASYNC_COLLECTION_CALLS:
            raise AttributeError(f"the async facade has no {name!r}: add it if a service needs it")
        call = getattr(self._collection, name)

        async def awaitable(*args: Any, **kwargs: Any) -> Any:
            return call(*args, **kwargs)

        return awaitable


# The collection calls the async services make, each a coroutine in PyMongo's async API.
ASYNC_COLLECTION_CALLS = frozenset({
    "find_one", "insert_one", "insert_many", "update_one", "update_many", "delete_one",
    "delete_many", "count_documents", "estimated_document_count", "find_one_and_update",
    "create_index", "bulk_write", "distinct", "drop",
})  # fmt: skip


class AsyncCursorFacade:
    """A cursor of the emulation: chain sort/skip/limit, then `await to_list()` or iterate."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def sort(self, *args: Any, **kwargs: Any) -> "AsyncCursorFacade":
        self._cursor = self._cursor.sort(*args, **kwargs)
        return self

    def skip(self, count: int) -> "AsyncCursorFacade":
        self._cursor = self._cursor.skip(count)
        return self

    def limit(self, count: int) -> "AsyncCursorFacade":
        self._cursor = self._cursor.limit(count)
        return self

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        documents = list(self._cursor)
        return documents if length is None else documents[:length]

    def __aiter__(self) -> "AsyncCursorFacade":
        self._iterator = iter(self._cursor)
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None
