"""The embedded store: an in-process MongoDB emulation that behaves like a database.

With MONGO_URL unset, every process of a stage keeps its databases here: mongomock, which
answers MongoDB's query language as a server does, made to behave like one where the
workshop's lessons depend on it:

- engine.py, planner.py, indexes.py, keys.py: the indexes the code declares are kept and
  used, so a query's cost follows what it returns, not the collection's size (explain()
  and the profiler say what a query examined);
- journal.py: what a stage stored is kept on disk (WORKSHOP_DATA_DIR), through a restart
  or a kill -9;
- facade.py: PyMongo's async API over it, for stage 04.

What it still lacks compared with MongoDB: `$text` search, transactions and sessions,
change streams, collations, some aggregation operators (`$sortByCount`,
`$setIntersection`, ...), and concurrency beyond one process's threads (two processes
share a database only through its journal, and see each other's writes at their next
start). workshop/db.py is the one module that chooses between it and a real server.
"""

import threading
from pathlib import Path
from typing import Any

import mongomock
from pymongo.database import Database

from embedded_mongo import engine, journal

_client: mongomock.MongoClient | None = None
_lock = threading.Lock()


def embedded_client() -> mongomock.MongoClient:
    """Return the process's emulated server (every embedded database lives in it)."""
    global _client
    with _lock:
        if _client is None:
            _client = mongomock.MongoClient(tz_aware=True)
        return _client


def database(name: str, folder: Path | None = None) -> Database:
    """Return an embedded database, with what was stored in it before in `folder` (its
    snapshot and journal; None: in memory only)."""
    handle = embedded_client()[name]
    if folder is not None:
        journal.restore_once(handle, folder)
    return handle


def save() -> None:
    """Fold every kept database's journal into its snapshot (at a clean stop)."""
    journal.save_all()


def ping(handle: Any) -> None:
    """Raise if the emulation cannot answer (it always can: it is this process)."""
    handle.command("ping")


__all__ = ["database", "embedded_client", "engine", "save"]
