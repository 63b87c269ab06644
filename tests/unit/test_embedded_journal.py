"""The embedded store keeps every acknowledged write through a kill -9, as MongoDB would.

Each test writes through the emulation in a child process, kills it with SIGKILL (no exit
handler runs), and reads the database back in a new process: the same documents, with the
same BSON types (compared as canonical extended JSON, which names every type).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.timing import scaled
from workshop import config

# The writes the services make: inserts (generated ObjectIds, datetimes), keyed upserts in
# an unordered bulk write, a counter bumped by find_one_and_update, conditional update_many,
# $unset, deletes, a dropped collection, and a document whose _id is a sub-document.
WRITES = """
from datetime import datetime, timezone
from pymongo import UpdateOne
from bson import Int64

at = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=timezone.utc)
db.posts.insert_one({"title": "a", "at": at})
db.posts.insert_many([{"_id": f"p{i}", "score": i, "ratio": i / 2, "big": Int64(i)}
                      for i in range(6)])
db.posts.bulk_write([UpdateOne({"_id": f"p{i}"}, {"$set": {"score": i * 10}}, upsert=True)
                     for i in range(3, 9)], ordered=False)
for _ in range(3):
    db.counters.find_one_and_update({"_id": "log"}, {"$inc": {"seq": 1}}, upsert=True)
db.posts.update_many({"score": {"$gte": 40}}, {"$set": {"pending": True, "lease": 1.5}})
db.posts.update_many({"_id": {"$in": ["p5", "p6"]}}, {"$unset": {"lease": ""}})
db.posts.delete_one({"_id": "p0"})
db.posts.delete_many({"score": {"$lt": 20}, "_id": {"$ne": "p1"}})
db.scratch.insert_one({"gone": True})
db.scratch.drop()
db.keyed.insert_one({"_id": {"user": "ann", "tag": "x"}, "n": 1})
db.keyed.update_one({"_id": {"user": "ann", "tag": "x"}}, {"$inc": {"n": 1}})
"""

ASYNC_WRITES = """
import asyncio

async def write_all():
    from datetime import datetime, timezone
    from pymongo import UpdateOne

    await db.log.insert_one({"seq": 1, "at": datetime(2024, 1, 2, tzinfo=timezone.utc)})
    await db.log.insert_many([{"seq": n} for n in range(2, 6)])
    await db.posts.bulk_write([UpdateOne({"_id": f"p{i}"}, {"$set": {"v": i}}, upsert=True)
                               for i in range(4)], ordered=False)
    await db.counters.find_one_and_update({"_id": "log"}, {"$inc": {"seq": 5}}, upsert=True)
    await db.posts.update_many({"v": {"$gt": 1}}, {"$set": {"done": True}})
    await db.posts.update_one({"_id": "p0"}, {"$set": {"v": -1}})
    await db.posts.delete_one({"_id": "p1"})

asyncio.run(write_all())
"""

DUMP = """
from bson import json_util
from workshop import db as databases
handle = databases.client(None)[NAME]
print(json_util.dumps(
    {c: list(handle[c].find()) for c in sorted(handle.list_collection_names())},
    json_options=json_util.CANONICAL_JSON_OPTIONS,
), flush=True)
"""


def child(run_dir: Path, code: str, stdin: bool = False) -> subprocess.Popen:
    """Start a process of the workshop's embedded store for a run, running `code`."""
    env = {k: v for k, v in os.environ.items() if k != "MONGO_URL"}
    env["WORKSHOP_DATA_DIR"] = str(run_dir)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=config.ROOT,
        env=env,
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        text=True,
    )


def write_then_get_killed(run_dir: Path, name: str, writes: str, async_api: bool = False) -> str:
    """Run writes in a child, take what it holds once they are acknowledged, SIGKILL it."""
    opening = "databases.async_database" if async_api else "databases.database"
    code = (
        f"NAME = {name!r}\nfrom workshop import db as databases\ndb = {opening}(NAME)\n"
        + writes
        + DUMP
        + "import time\ntime.sleep(60)\n"  # waits to be killed: no exit handler runs
    )
    process = child(run_dir, code)
    assert process.stdout is not None
    held = process.stdout.readline()
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=scaled(10)) == -signal.SIGKILL
    assert held.strip(), "the writer printed nothing"
    return held


def read_back(run_dir: Path, name: str) -> str:
    """Return what a new process finds in the database when it starts."""
    code = f"NAME = {name!r}\nfrom workshop import db as databases\ndatabases.database(NAME)\n"
    process = child(run_dir, code + DUMP)
    out, _ = process.communicate(timeout=scaled(60))
    assert process.returncode == 0
    return out


@pytest.fixture(autouse=True)
def _no_server(monkeypatch):
    monkeypatch.delenv("MONGO_URL", raising=False)


def test_every_acknowledged_write_survives_a_kill(tmp_path):
    held = write_then_get_killed(tmp_path, "blocking", WRITES)
    assert '"p1"' in held and '"$date"' in held and '"$numberLong"' in held  # it wrote
    assert read_back(tmp_path, "blocking") == held


def test_the_async_facade_writes_survive_a_kill(tmp_path):
    held = write_then_get_killed(tmp_path, "async", ASYNC_WRITES, async_api=True)
    assert '"seq"' in held and '"done"' in held
    assert read_back(tmp_path, "async") == held


def test_a_record_torn_by_the_kill_is_ignored(tmp_path):
    held = write_then_get_killed(tmp_path, "torn", WRITES)
    journal = tmp_path / "store" / "torn.journal"
    last = journal.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    with journal.open("ab") as torn:  # killed halfway through writing one more record
        torn.write(b"\n" + last[: len(last) // 2])
    assert read_back(tmp_path, "torn") == held


def test_a_restart_then_a_kill_keeps_both_runs_writes(tmp_path):
    first = write_then_get_killed(tmp_path, "twice", WRITES)
    more = 'db.later.insert_one({"_id": 1, "after": "restart"})\n'
    second = write_then_get_killed(tmp_path, "twice", more)
    restored = json.loads(second)
    assert restored.pop("later") == [{"_id": {"$numberInt": "1"}, "after": "restart"}]
    assert restored == json.loads(first)
    assert read_back(tmp_path, "twice") == second


def test_a_clean_stop_compacts_into_the_snapshot(tmp_path):
    code = "NAME = 'clean'\nfrom workshop import db as databases\ndb = databases.database(NAME)\n"
    process = child(tmp_path, code + WRITES + DUMP)
    held, _ = process.communicate(timeout=scaled(60))
    assert process.returncode == 0
    store = tmp_path / "store"
    assert (store / "clean.journal").stat().st_size == 0
    assert b"p1" in (store / "clean.bson").read_bytes()
    assert read_back(tmp_path, "clean") == held


def test_a_process_stopping_cleanly_keeps_the_writes_of_another_sharing_its_database(tmp_path):
    """04's ingest web process and worker both open "ingest" (jobs, posts): the one that
    stops cleanly compacts what is on disk, not only what it holds itself."""
    opening = (
        "NAME = 'shared'\nfrom workshop import db as databases\nimport sys\n"
        "db = databases.database(NAME)\nprint('open', flush=True)\nsys.stdin.readline()\n"
    )
    worker = child(tmp_path, opening + "db.posts.insert_one({'_id': 'w'})\n"
                   "print('stored', flush=True)\nsys.stdin.readline()\n", stdin=True)  # fmt: skip
    web = child(tmp_path, opening + "db.jobs.insert_one({'_id': 'j'})\n", stdin=True)
    assert worker.stdout.readline() == "open\n" and web.stdout.readline() == "open\n"
    worker.stdin.write("go\n")
    worker.stdin.flush()
    assert worker.stdout.readline() == "stored\n"
    web.communicate("go\n", timeout=scaled(60))  # writes its job, stops cleanly: compacts
    assert web.returncode == 0
    worker.send_signal(signal.SIGKILL)
    assert worker.wait(timeout=scaled(10)) == -signal.SIGKILL
    found = json.loads(read_back(tmp_path, "shared"))
    assert found == {"jobs": [{"_id": "j"}], "posts": [{"_id": "w"}]}


LONG_RUN = """
from embedded_mongo.journal import Journal
Journal.COMPACT_AFTER_BYTES = 4096
FAIL
for n in range(400):
    db.counters.update_one({"_id": "log"}, {"$inc": {"seq": 1}}, upsert=True)
    db.log.insert_one({"_id": n, "text": "x" * 40})
"""
FAILING_FOLD = """
def fail(self):
    raise OSError(28, "No space left on device")
Journal.compact = fail
"""


def journal_size(run_dir: Path, name: str) -> int:
    return (run_dir / "store" / f"{name}.journal").stat().st_size


def test_a_long_run_folds_its_journal_into_the_snapshot_as_it_grows(tmp_path):
    """A run that writes for hours must not keep every write in its journal: past a size
    (made small here) a thread folds it into the snapshot, and a kill still loses nothing."""
    code = ("NAME = 'long'\nfrom workshop import db as databases\nimport time\n"
            "db = databases.database(NAME)\n" + LONG_RUN.replace("FAIL", "") + DUMP
            + "time.sleep(60)\n")  # fmt: skip
    process = child(tmp_path, code)
    held = process.stdout.readline()
    try:
        # ~60 KB of records were written; the journal is folded whenever it outgrows both
        # the limit and the snapshot (a fold costs a pass over the snapshot: amortized so).
        def folded() -> bool:
            snapshot = tmp_path / "store" / "long.bson"
            limit = max(4096, snapshot.stat().st_size if snapshot.exists() else 0)
            return journal_size(tmp_path, "long") <= limit + 200

        deadline = time.monotonic() + scaled(30)
        while not folded() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert folded(), journal_size(tmp_path, "long")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=scaled(10))
    assert b"seq" in (tmp_path / "store" / "long.bson").read_bytes()
    found = json.loads(held)
    assert found["counters"] == [{"_id": "log", "seq": {"$numberInt": "400"}}]
    assert len(found["log"]) == 400
    assert read_back(tmp_path, "long") == held


def test_a_fold_that_fails_fails_no_write(tmp_path):
    """A full disk while folding: every write still succeeds (its record is in the
    journal), the failure is logged, and nothing is lost."""
    code = ("NAME = 'full'\nfrom workshop import db as databases\n"
            "db = databases.database(NAME)\n" + LONG_RUN.replace("FAIL", FAILING_FOLD)
            + DUMP)  # fmt: skip
    env_code = "import logging, sys\nlogging.basicConfig(stream=sys.stdout)\n" + code
    process = child(tmp_path, env_code)
    out, _ = process.communicate(timeout=scaled(60))
    assert process.returncode == 0, out
    assert "could not compact" in out and "No space left on device" in out
    held = out[out.index("{") :].splitlines()[0]
    assert len(json.loads(held)["log"]) == 400
    assert journal_size(tmp_path, "full") > 4096  # kept whole: the fold never happened
    assert read_back(tmp_path, "full").strip() == held
