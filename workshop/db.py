"""The one place that turns MONGO_URL into a database handle, blocking or async.

With MONGO_URL set, PyMongo talks to a real server: `database()` through its blocking
client, `async_database()` through its native async client (`AsyncMongoClient`, the
successor of Motor). Without it, mongomock serves: an in-process MongoDB emulation, so the
workshop runs on a machine with no MongoDB; for async code, `AsyncFacade` below gives the
emulation PyMongo's async API. Code elsewhere only sees a database and uses what both
support (no $text, no transactions, no change streams).
"""

import atexit
import threading
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import mongomock
import pymongo
from bson import json_util
from mongomock.filtering import filter_applies
from pymongo import AsyncMongoClient
from pymongo.database import Database

from workshop import config


def _lookup_by_id_first(original: Callable) -> Callable:
    """Make the emulation go straight to the document when a query names its _id.

    mongomock tests every document against every query (it has no indexes), which makes
    keyed reads and writes grow with the collection. A real server uses the _id index;
    this gives the emulation the same shortcut, with the same answers.
    """

    def iter_documents(self: Any, filter: Any) -> Iterator[dict]:
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


# --- keeping the embedded store across a restart ------------------------------------------
# A real server keeps data when a service restarts; the emulation lives in the process.
# Within one `workshop up` run (WORKSHOP_RUN_DIR set), each process writes its embedded
# databases to files when it stops and reads them back when it starts, so stopping and
# starting a service behaves as it would with MongoDB (a kill -9 loses what it held).

_restored: set[str] = set()


def _snapshot_dir() -> Path | None:
    run_dir = config.env("WORKSHOP_RUN_DIR")
    return Path(run_dir) / "store" if run_dir else None


def _restore_once(handle: Database) -> None:
    folder = _snapshot_dir()
    with _lock:
        if folder is None or handle.name in _restored:
            return
        _restored.add(handle.name)
        if len(_restored) == 1:
            atexit.register(save_embedded)
    snapshot = folder / f"{handle.name}.json"
    if snapshot.exists():
        for collection, documents in json_util.loads(snapshot.read_text()).items():
            if documents:
                handle[collection].insert_many(documents)


def save_embedded() -> None:
    """Write this process's embedded databases to the run's folder (at exit)."""
    folder = _snapshot_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(_restored):
        handle = client(None)[name]
        data = {c: list(handle[c].find()) for c in handle.list_collection_names()}
        temporary = folder / f".{name}.json"
        temporary.write_text(json_util.dumps(data))
        temporary.replace(folder / f"{name}.json")


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
