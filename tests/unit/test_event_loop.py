"""No blocking call on stage 04's event loops, checked in the code.

Every 04 module runs on an event loop (Quart on uvicorn), except the Celery worker's tasks
(ingest/tasks.py), which run in a worker process and may block. A blocking call on a loop
stalls every request that process serves, so the loop's modules must not import or call a
blocking client: sync HTTP (requests, urllib, httpx.Client), sync PyMongo (MongoClient,
its Collection and Database, workshop.db's blocking handles), sync Redis, time.sleep. What
has to block (kombu, Celery's result store) runs in a thread via asyncio.to_thread.
"""

import ast
from pathlib import Path

import pytest

from tooling.stages import get_stage
from workshop.config import ROOT

ASYNC_STAGE = get_stage("04-async")
# The Celery worker's code: it runs in the worker process, where blocking is its job.
OFF_THE_LOOP = {ASYNC_STAGE.path / "ingest" / "tasks.py"}

BLOCKING_MODULES = {
    "requests", "urllib.request", "http.client", "pymongo.synchronous", "pymongo.collection",
    "pymongo.database", "pymongo.mongo_client", "mongomock",
}  # fmt: skip
BLOCKING_NAMES = {
    "time.sleep",
    "httpx.Client", "httpx.get", "httpx.post", "httpx.put", "httpx.patch", "httpx.delete",
    "httpx.head", "httpx.options", "httpx.request", "httpx.stream",
    "pymongo.MongoClient",
    "redis.Redis", "redis.StrictRedis", "redis.client.Redis", "redis.from_url",
    # workshop.db's blocking handles and types (the loop's code uses async_database and
    # names AsyncDatabase, AsyncCollection).
    "workshop.db.client", "workshop.db.database", "workshop.db.ping",
    "workshop.db.Database", "workshop.db.Collection",
}  # fmt: skip


def blocking_calls(source: str) -> list[str]:
    """Name the blocking imports and calls in a module's source (imports read through)."""
    found, aliases = [], {}
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
                if alias.name in BLOCKING_MODULES:
                    found.append(f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                aliases[alias.asname or alias.name] = name
                if node.module in BLOCKING_MODULES or name in BLOCKING_MODULES | BLOCKING_NAMES:
                    found.append(f"from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute | ast.Name):
            dotted = dotted_name(node, aliases)
            if dotted in BLOCKING_NAMES:
                found.append(dotted)
    return found


def dotted_name(node: ast.AST, aliases: dict[str, str]) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def test_the_blocking_call_finder_finds_them():
    assert blocking_calls("import time\ntime.sleep(1)") == ["time.sleep"]
    assert "time.sleep" in blocking_calls("from time import sleep\nsleep(1)")
    assert "import requests" in blocking_calls("import requests\nrequests.get('x')")
    assert blocking_calls("import urllib.request") == ["import urllib.request"]
    assert blocking_calls("from urllib import request") != []
    assert blocking_calls("import httpx\nhttpx.Client()") == ["httpx.Client"]
    assert blocking_calls("import httpx\nhttpx.get('x')") == ["httpx.get"]
    assert blocking_calls("import httpx\nhttpx.AsyncClient()") == []
    assert blocking_calls("from pymongo import MongoClient") != []
    assert blocking_calls("import pymongo\npymongo.MongoClient()") == ["pymongo.MongoClient"]
    assert blocking_calls("from pymongo.collection import Collection") != []
    assert blocking_calls("from pymongo import collection") != []
    assert blocking_calls("from pymongo import AsyncMongoClient") == []
    assert blocking_calls("from pymongo import UpdateOne, ReturnDocument") == []
    assert blocking_calls("import redis\nredis.Redis.from_url('x')") == ["redis.Redis"]
    assert blocking_calls("from redis import Redis") != []
    assert blocking_calls("import redis.asyncio\nredis.asyncio.Redis.from_url('x')") == []
    assert blocking_calls("import redis\nredis.RedisError") == []
    db = "from workshop import db as databases\n"
    assert blocking_calls(db + "databases.database('x')") == ["workshop.db.database"]
    assert blocking_calls(db + "databases.async_database('x')") == []
    assert blocking_calls("from workshop.db import Collection") != []
    assert blocking_calls("from workshop.db import AsyncCollection, AsyncDatabase") == []
    assert blocking_calls("import asyncio\nawait asyncio.sleep(1)") == []


LOOP_MODULES = sorted(set(ASYNC_STAGE.path.rglob("*.py")) - OFF_THE_LOOP)


def test_every_service_of_the_stage_is_checked():
    checked = {path.relative_to(ASYNC_STAGE.path).parts[0] for path in LOOP_MODULES}
    assert {"chassis", "gateway", *ASYNC_STAGE.packages()} <= checked
    assert ASYNC_STAGE.path / "chassis" / "messaging" / "broker.py" in LOOP_MODULES


@pytest.mark.parametrize("path", LOOP_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_blocking_call_on_the_event_loop(path: Path):
    assert blocking_calls(path.read_text(encoding="utf-8")) == []
