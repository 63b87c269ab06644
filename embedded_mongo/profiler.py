"""The emulation's profiler: each query, how it was answered, as MongoDB's profiler says it.

MongoDB at profiling level 2 writes every operation to `system.profile`: its namespace,
filter, `planSummary` ("IXSCAN { terms: 1 }", "COLLSCAN"), `keysExamined`, `docsExamined`
and `nreturned`, and the query's `comment` if it has one (a query that reads a collection
whole on purpose says so there). With WORKSHOP_STORE_PROFILE naming a file, every process
of a stage on the embedded store appends the same fields to it, one JSON line per query, so
a test (or a curious attendee) can see which queries read what
(tests/acceptance/test_store_cost.py).
"""

import json
import os
import threading
from typing import Any

PROFILE_ENV = "WORKSHOP_STORE_PROFILE"
_lock = threading.Lock()


def enabled() -> bool:
    return bool(os.environ.get(PROFILE_ENV))


def record(
    collection: Any, operation: str, search: Any, plan: Any, sort: Any = None, comment: Any = None
) -> None:
    """Append one query to the profile file, as system.profile would hold it."""
    entry = {
        "ns": f"{collection.database.name}.{collection.name}",
        "op": operation,
        "filter": _shape(search),
        "sort": dict(sort) if sort else None,
        "planSummary": plan.summary(),
        "keysExamined": plan.keys_examined,
        "docsExamined": plan.docs_examined,
        "nreturned": plan.returned,
        "pid": os.getpid(),
    }
    if comment is not None:
        entry["comment"] = comment
    line = json.dumps(entry, default=str) + "\n"
    with _lock, open(os.environ[PROFILE_ENV], "a", encoding="utf-8") as file:
        file.write(line)


def _shape(value: Any) -> Any:
    """Return a filter with its long lists shortened: the shape, not every id."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shape(v) for v in value[:5]] + (["..."] if len(value) > 5 else [])
    return value
