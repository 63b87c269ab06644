"""The one place that turns MONGO_URL into a database handle.

With MONGO_URL set, PyMongo talks to a real server. Without it, mongomock serves: an
in-process MongoDB emulation, so the workshop runs on a machine with no MongoDB. Code
elsewhere only sees a `Database` and uses what both support (no $text, no transactions,
no change streams).
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
    handle = client(url if url is not None else config.mongo_url())[name]
    if isinstance(handle.client, mongomock.MongoClient):
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
