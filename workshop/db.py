"""The one place that turns MONGO_URL into a database handle, blocking or async.

With MONGO_URL set, PyMongo talks to a real server: `database()` through its blocking
client, `async_database()` through its native async client (`AsyncMongoClient`, the
successor of Motor). Without it, the embedded store serves (embedded_mongo/): an
in-process MongoDB emulation that uses its indexes and keeps its data on disk, so the
workshop runs on a machine with no MongoDB; for async code, a facade gives it PyMongo's
async API. Code elsewhere only sees a database and uses what both support (no $text, no
transactions, no change streams).
"""

import threading
from pathlib import Path
from typing import Any, Protocol

import mongomock
import pymongo
from pymongo import AsyncMongoClient
from pymongo.collection import Collection as Collection  # the blocking types 01-03 name;
from pymongo.database import Database  # 04's async ones are the Protocols below

import embedded_mongo
from embedded_mongo.facade import AsyncFacade
from workshop import config

_clients: dict[str, pymongo.MongoClient] = {}
_lock = threading.Lock()

# Fail fast when a real server is unreachable, so /readyz answers instead of hanging.
SERVER_TIMEOUT_MS = 2000


def client(url: str | None = None) -> pymongo.MongoClient | mongomock.MongoClient:
    """Return the process-wide client for a URL (None: the embedded emulation)."""
    if not url:
        return embedded_mongo.embedded_client()
    with _lock:
        if url not in _clients:
            _clients[url] = pymongo.MongoClient(
                url, serverSelectionTimeoutMS=SERVER_TIMEOUT_MS, tz_aware=True
            )
        return _clients[url]


def store_folder() -> Path | None:
    """Return where the embedded store keeps this stage's databases (None: in memory only,
    for a process started without WORKSHOP_DATA_DIR)."""
    return config.data_dir() / "store" if config.env(config.DATA_DIR_ENV) else None


def database(name: str, url: str | None = None) -> Database:
    """Return the named database on MONGO_URL's server, or in the embedded store."""
    url = url if url is not None else config.mongo_url()
    return client(url)[name] if url else embedded_mongo.database(name, store_folder())


def save_embedded() -> None:
    """Fold the embedded databases' journals into their snapshots (at a clean stop)."""
    embedded_mongo.save()


def ping(db: Database) -> dict[str, object]:
    """Check the database answers; return its state for /readyz."""
    kind = "embedded" if isinstance(db.client, mongomock.MongoClient) else "mongodb"
    try:
        db.command("ping")
    except Exception as error:  # any failure means "not ready", and /readyz says which
        return {"ok": False, "kind": kind, "error": type(error).__name__}
    return {"ok": True, "kind": kind}


# --- the async API: PyMongo's AsyncMongoClient, or a facade over the emulation -------------


class AsyncCursor(Protocol):
    """What the async services do with a cursor (PyMongo's AsyncCursor, or the facade's)."""

    def sort(self, key_or_list: Any, direction: Any = ...) -> "AsyncCursor": ...
    def skip(self, skip: int) -> "AsyncCursor": ...
    def limit(self, limit: int) -> "AsyncCursor": ...
    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]: ...
    async def explain(self) -> dict[str, Any]: ...


class AsyncCollection(Protocol):
    """The async collection calls the services make (PyMongo's AsyncCollection satisfies it,
    and so does the embedded facade)."""

    name: str

    def find(self, *args: Any, **kwargs: Any) -> AsyncCursor: ...
    async def find_one(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None: ...
    async def insert_one(self, document: Any, *args: Any, **kwargs: Any) -> Any: ...
    async def insert_many(self, documents: Any, *args: Any, **kwargs: Any) -> Any: ...
    async def update_one(self, filter: Any, update: Any, *args: Any, **kwargs: Any) -> Any: ...
    async def update_many(self, filter: Any, update: Any, *args: Any, **kwargs: Any) -> Any: ...
    async def delete_one(self, filter: Any, *args: Any, **kwargs: Any) -> Any: ...
    async def delete_many(self, filter: Any, *args: Any, **kwargs: Any) -> Any: ...
    async def count_documents(self, filter: Any, *args: Any, **kwargs: Any) -> int: ...
    async def estimated_document_count(self, *args: Any, **kwargs: Any) -> int: ...
    async def find_one_and_update(
        self, filter: Any, update: Any, *args: Any, **kwargs: Any
    ) -> dict[str, Any] | None: ...
    async def create_index(self, keys: Any, *args: Any, **kwargs: Any) -> str: ...
    async def bulk_write(self, requests: Any, *args: Any, **kwargs: Any) -> Any: ...
    async def distinct(self, key: str, *args: Any, **kwargs: Any) -> list[Any]: ...
    async def aggregate(self, pipeline: Any, *args: Any, **kwargs: Any) -> Any: ...


class AsyncDatabase(Protocol):
    """An async database: its collections by attribute or name, and commands."""

    name: str

    def __getitem__(self, name: str) -> AsyncCollection: ...
    def __getattr__(self, name: str) -> AsyncCollection: ...
    async def command(self, command: Any, *args: Any, **kwargs: Any) -> dict[str, Any]: ...
    async def list_collection_names(self, *args: Any, **kwargs: Any) -> list[str]: ...


_async_clients: dict[str, AsyncMongoClient] = {}


def async_database(name: str, url: str | None = None) -> AsyncDatabase:
    """Return the named database for async code: PyMongo's async API on MONGO_URL's server,
    else the embedded store behind the same async calls (AsyncFacade)."""
    url = url if url is not None else config.mongo_url()
    if not url:
        return AsyncFacade(embedded_mongo.database(name, store_folder()))
    if url not in _async_clients:  # one client per process and event loop, like the blocking one
        _async_clients[url] = AsyncMongoClient(
            url, serverSelectionTimeoutMS=SERVER_TIMEOUT_MS, tz_aware=True
        )
    return _async_clients[url][name]


async def close_async_clients() -> None:
    """Close the async clients (at the end of serving: their pools belong to the loop)."""
    while _async_clients:
        await _async_clients.popitem()[1].close()


async def async_ping(db: AsyncDatabase) -> dict[str, object]:
    """Check an async database answers; return its state for /readyz."""
    kind = "embedded" if isinstance(db, AsyncFacade) else "mongodb"
    try:
        await db.command("ping")
    except Exception as error:  # any failure means "not ready", and /readyz says which
        return {"ok": False, "kind": kind, "error": type(error).__name__}
    return {"ok": True, "kind": kind}
