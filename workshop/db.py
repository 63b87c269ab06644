"""The one place that turns MONGO_URL into a database handle.

With MONGO_URL set, PyMongo talks to a real server. Without it, mongomock serves: an
in-process MongoDB emulation, so the workshop runs on a machine with no MongoDB. Code
elsewhere only sees a `Database` and uses what both support (no $text, no transactions,
no change streams).
"""

import threading

import mongomock
import pymongo
from pymongo.database import Database

from workshop import config

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
    return client(url if url is not None else config.mongo_url())[name]


def is_embedded(url: str | None = None) -> bool:
    """Tell whether the embedded emulation serves (MONGO_URL unset)."""
    return not (url if url is not None else config.mongo_url())


def ping(db: Database) -> dict[str, object]:
    """Check the database answers; return its state for /readyz."""
    kind = "embedded" if isinstance(db.client, mongomock.MongoClient) else "mongodb"
    try:
        db.command("ping")
    except Exception as error:  # any failure means "not ready", and /readyz says which
        return {"ok": False, "kind": kind, "error": type(error).__name__}
    return {"ok": True, "kind": kind}
