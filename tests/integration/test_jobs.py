"""Stage 04's ingest jobs on a real Celery worker: the broker-free default, Redis, RabbitMQ.

The whole stage runs as `workshop up` runs it (the web process enqueues, the worker in the
Procfile does the work); the tests follow jobs through the public API, stop and kill the
worker, and count posts through search. Never Celery's eager mode: real brokers, a real
result store, a real worker process.
"""

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import redis
import requests
from celery import Celery

from tests.acceptance.stage import eventually
from tests.brokers import rabbitmq_vhost
from tests.running import running_stage
from tests.timing import scaled
from tooling.runner import StageRunner
from tooling.stages import get_stage
from workshop.data import importers

STAGE = get_stage("04-async")
# Redis hands an unacknowledged task back this long after its worker died.
VISIBILITY_SECONDS = 10
# A new worker starts (loading the store the killed one left) and finishes a small job in
# this long, past the visibility timeout: generous, as a busy 2-core machine is slow.
RECOVER_WITHIN = 90.0
SETTLE_WITHIN = 60.0  # every subscriber has every change
JOB_WITHIN = 90.0
BATCH = 500  # ingest.tasks.BATCH_SIZE: an upload reaches the worker in tasks of this many
BROKERS = ["default", "redis", "rabbitmq"]
COPIES = ("search", "recommend_v1", "recommend_v2", "tag")  # the subscribers' copies of posts


@pytest.fixture(scope="module", params=BROKERS)
def stage(request: pytest.FixtureRequest, redis_databases) -> Iterator[StageRunner]:
    """Stage 04 on one broker, its live fetches going to a closed port (they fail fast): a
    Redis database of the module's own, or a RabbitMQ virtual host made for it."""
    env = {"REDDIT_URL": "http://127.0.0.1:9", "WORKSHOP_SEED_SAMPLE": "1", "BROKER_URL": "",
           "CELERY_RESULT_BACKEND": "", "REGISTRY_URL": ""}  # fmt: skip
    with contextlib.ExitStack() as stack:
        if request.param == "redis":
            env["BROKER_URL"] = stack.enter_context(redis_databases.database())
            env["CELERY_VISIBILITY_TIMEOUT"] = str(VISIBILITY_SECONDS)
        elif request.param == "rabbitmq":
            env["BROKER_URL"] = stack.enter_context(rabbitmq_vhost())
            env["CELERY_RESULT_BACKEND"] = stack.enter_context(redis_databases.database())
        yield stack.enter_context(running_stage(STAGE.name, env))


def front(stage: StageRunner) -> str:
    return f"http://127.0.0.1:{stage.port}"


def token(stage: StageRunner) -> str:
    username, password = f"job_{uuid.uuid4().hex[:10]}", "correct horse battery"
    url = front(stage)
    created = requests.post(
        f"{url}/api/users", json={"username": username, "password": password}, timeout=scaled(10)
    )
    assert created.status_code == 201, created.text
    answer = eventually(
        lambda: requests.post(
            f"{url}/api/tokens",
            json={"username": username, "password": password},
            timeout=scaled(10),
        ),
        lambda answer: answer.status_code == 200,
    )
    return answer.json()["token"]


def records(word: str, count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"{word}{i:05d}", "title": f"Job {word} post {i}", "subreddit": "python",
         "created_utc": 1.37e9, "score": i % 50, "ups": i % 50, "downs": 0, "num_comments": 1}
        for i in range(count)
    ]  # fmt: skip


def ndjson(rows: list[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(row) for row in rows).encode()


def upload(stage: StageRunner, rows: list[dict[str, Any]], bearer: str | None = None) -> str:
    """Start an upload job; return its id."""
    bearer = bearer or token(stage)
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/x-ndjson"}
    answer = requests.post(f"{front(stage)}/api/ingest", data=ndjson(rows), headers=headers,
                           timeout=scaled(60))  # fmt: skip
    assert answer.status_code == 202, answer.text
    return answer.json()["job_id"]


def job(stage: StageRunner, job_id: str) -> dict[str, Any]:
    answer = requests.get(f"{front(stage)}/api/jobs/{job_id}", timeout=scaled(10))
    assert answer.status_code == 200, answer.text
    return answer.json()


def follow(stage: StageRunner, job_id: str, within: float = JOB_WITHIN) -> tuple[list[str], Any]:
    """Watch a job until it ends; return the states it went through and its last answer."""
    states: list[str] = []

    def look() -> dict[str, Any]:
        answer = job(stage, job_id)
        if not states or states[-1] != answer["state"]:
            states.append(answer["state"])
        return answer

    last = eventually(look, lambda answer: answer["state"] in ("done", "failed"), within=within)
    return states, last


def search_total(stage: StageRunner, word: str) -> int:
    answer = requests.get(f"{front(stage)}/api/search", params={"q": word}, timeout=scaled(10))
    assert answer.status_code == 200, answer.text
    return answer.json()["total"]


def posts_in(stage: StageRunner, process: str) -> int:
    port = stage.stage.ports(stage.port)[process]
    answer = requests.get(f"http://127.0.0.1:{port}/stats", timeout=scaled(10))
    return answer.json()["collections"].get("posts", 0)


# Settled must read the same this long apart: a batch a consumer has just taken from the
# broker is in no queue and not yet counted in flight while it is decoded (a few ms for a
# 500-post batch), and an earlier test's last batch may be in that gap.
STABLE_SECONDS = 1.0


def settled_posts(stage: StageRunner) -> int:
    """Wait until nothing waits in a queue and every copy agrees, twice in a row a moment
    apart; return how many posts."""
    seen: list[tuple[float, int | None]] = []

    def look() -> list[tuple[float, int | None]]:
        ready = requests.get(f"{front(stage)}/readyz", timeout=scaled(10))
        settled = ready.status_code == 200 and ready.json().get("settled") is True
        counts = {posts_in(stage, name) for name in COPIES}
        count = counts.pop() if settled and len(counts) == 1 else None
        if seen and count is not None and seen[-1][1] == count:
            return seen  # the same as before: keep the first time it was seen
        seen[:] = [(time.monotonic(), count)]
        return seen

    def stable(looks: list[tuple[float, int | None]]) -> bool:
        since, count = looks[-1]
        return count is not None and time.monotonic() - since >= STABLE_SECONDS

    last = eventually(look, stable, within=SETTLE_WITHIN)
    assert stable(last), f"not settled, or the copies disagree: {last}"
    return last[-1][1]  # type: ignore[return-value]


def copies_hold(stage: StageRunner, expected: int) -> dict[str, int]:
    """Wait until every subscriber's copy holds `expected` posts; return their counts."""
    return eventually(
        lambda: {name: posts_in(stage, name) for name in COPIES},
        lambda counts: set(counts.values()) == {expected},
        within=SETTLE_WITHIN,
    )


def kill_worker(stage: StageRunner) -> None:
    """kill -9 the Celery worker: no warm shutdown, no chance to hand its task back."""
    worker = stage.children["worker"]
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=scaled(10))


# --- a job's states -------------------------------------------------------------------------


def test_a_job_is_pending_until_a_worker_takes_it_then_running_then_done(stage):
    word = f"zs{uuid.uuid4().hex[:8]}"
    rows = records(word, 12 * BATCH)
    before = settled_posts(stage)
    stage.stop_process("worker")
    try:
        job_id = upload(stage, rows)
        waiting = job(stage, job_id)
        assert waiting["state"] == "pending", waiting
        assert (waiting["ingested"], waiting["new"]) == (0, 0)
    finally:
        stage.restart_process("worker")
    started = time.perf_counter()
    states, done = follow(stage, job_id)
    print(f"\n{stage.env['BROKER_URL'] or 'default broker'}: {len(rows)} posts in "
          f"{len(rows) // BATCH} tasks, done {time.perf_counter() - started:.1f} s after the "
          "worker started")  # fmt: skip
    assert states == ["pending", "running", "done"], states
    counts = [done[name] for name in ("ingested", "new", "updated", "unchanged", "rejected")]
    assert counts == [len(rows), len(rows), 0, 0, 0], done
    assert eventually(
        lambda: search_total(stage, word), lambda n: n == len(rows), within=SETTLE_WITHIN
    ) == len(rows)
    assert set(copies_hold(stage, before + len(rows)).values()) == {before + len(rows)}


def test_a_fetch_that_cannot_reach_reddit_fails_with_its_reason(stage):
    headers = {"Authorization": f"Bearer {token(stage)}"}
    fetch = {"source": "reddit", "subreddit": "python", "limit": 5}
    answer = requests.post(
        f"{front(stage)}/api/ingest", json=fetch, headers=headers, timeout=scaled(10)
    )
    assert answer.status_code == 202, answer.text
    states, failed = follow(stage, answer.json()["job_id"])
    assert states[-1] == "failed" and "done" not in states, states
    assert failed["error"] == "cannot reach 127.0.0.1:9: are you online?", failed
    assert (failed["ingested"], failed["new"]) == (0, 0)


def test_small_jobs_are_done_within_moments(stage):
    """Measure a job's latency: from the 202 to "done", one post at a time."""
    latencies, bearer = [], token(stage)
    for _ in range(10):
        word = f"zl{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        _, done = follow(stage, upload(stage, records(word, 1), bearer), within=30)
        latencies.append(time.perf_counter() - started)
        assert done["state"] == "done" and done["new"] == 1, done
    p50 = statistics.median(latencies)
    print(f"\n{stage.env['BROKER_URL'] or 'default broker'}: job latency p50 {p50 * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")  # fmt: skip
    # Not left waiting on a poll or a batch: half of them done in 3 s on a quiet machine
    # (scaled, as every limit: tests/timing.py), each within its deadline above.
    assert p50 < scaled(3.0)


# --- at-least-once: a killed worker, a duplicated delivery ------------------------------------


def tasks_held(broker_url: str) -> int:
    """Count the ingest tasks the broker has handed to a worker that it has not acknowledged."""
    if broker_url.startswith("redis"):
        # kombu keeps each delivered, unacknowledged message in one hash: [body, exchange, queue].
        entries = redis.Redis.from_url(broker_url).hvals("unacked")
        return [json.loads(entry)[2] for entry in entries].count("ingest-jobs")
    vhost = unquote(urlsplit(broker_url).path[1:]) or "/"
    listed = subprocess.run(
        [shutil.which("rabbitmqctl") or "rabbitmqctl", "list_queues", "-q", "-p", vhost,
         "name", "messages_unacknowledged"],
        check=True, capture_output=True, text=True, timeout=scaled(60),
    ).stdout  # fmt: skip
    counts = dict(line.split() for line in listed.splitlines() if line.strip())
    return int(counts.get("ingest-jobs", 0))


def test_a_worker_holds_only_the_task_it_runs(stage):
    """A task a worker has reserved but not started waits on that worker (and, on Redis, for
    the visibility timeout if it dies) while another could do it: one at a time."""
    if not stage.env["BROKER_URL"]:
        pytest.skip("the filesystem transport keeps no record of what it handed out")
    held: list[int] = []

    def look(job_id: str) -> dict[str, Any]:
        held.append(tasks_held(stage.env["BROKER_URL"]))
        return job(stage, job_id)

    job_id = upload(stage, records(f"zh{uuid.uuid4().hex[:8]}", 6 * BATCH))
    done = eventually(lambda: look(job_id), lambda j: j["state"] == "done", within=JOB_WITHIN)
    assert done["state"] == "done", done
    assert max(held) == 1, held


def test_a_worker_killed_mid_job_leaves_it_to_be_finished_by_the_next(stage):
    word = f"zk{uuid.uuid4().hex[:8]}"
    rows = records(word, 4 * BATCH)
    before = settled_posts(stage)
    job_id = upload(stage, rows)
    # Kill it as soon as one batch is reported done: mid-job, and just after an acknowledgement.
    midway = eventually(lambda: job(stage, job_id), lambda j: j["ingested"] > 0, within=JOB_WITHIN)
    kill_worker(stage)
    killed_at = time.perf_counter()
    assert midway["state"] == "running" and midway["ingested"] < len(rows), midway
    stage.restart_process("worker")
    # The task the worker held comes back when the broker sees it is gone: RabbitMQ at
    # once (the connection closed), Redis once its visibility timeout has passed, the
    # filesystem default when the next worker starts on the queue.
    states, done = follow(stage, job_id, within=VISIBILITY_SECONDS + RECOVER_WITHIN)
    recovered = time.perf_counter() - killed_at
    print(f"\n{stage.env['BROKER_URL']}: killed mid-job, done {recovered:.1f} s later")
    assert done["state"] == "done", (states, done)
    # A batch the killed worker had stored may run again: it still counts its posts as new
    # (they were, when it first stored them), not as found unchanged.
    assert done["ingested"] == done["new"] == len(rows), done
    assert done["updated"] == done["unchanged"] == 0, done
    assert eventually(
        lambda: search_total(stage, word), lambda n: n == len(rows), within=SETTLE_WITHIN
    ) == len(rows)
    assert set(copies_hold(stage, before + len(rows)).values()) == {before + len(rows)}


def task_state(stage: StageRunner, task_id: str) -> str | None:
    """Read a task's state from the Redis result store (Celery's own record, not the API's)."""
    meta = redis.Redis.from_url(stage.env["BROKER_URL"]).get(f"celery-task-meta-{task_id}")
    return json.loads(meta)["status"] if meta else None


def test_a_task_whose_posts_cannot_be_published_yet_is_retried(stage):
    """The worker acknowledges a task only once its posts are in the broker: while the broker
    refuses them the task is retried (with backoff), and the job ends done, not failed."""
    if not stage.env["BROKER_URL"].startswith("redis"):
        pytest.skip("makes Redis refuse what is sent to the queue 'sync'")
    broker = redis.Redis.from_url(stage.env["BROKER_URL"])
    word = f"zr{uuid.uuid4().hex[:8]}"
    before = settled_posts(stage)
    # A string where sync's queue (a list) would be: every push to it fails (WRONGTYPE).
    # Only while the queue is empty (nx), so no waiting message is overwritten.
    assert eventually(lambda: broker.set("sync", "blocked", nx=True), bool, within=SETTLE_WITHIN)
    try:
        job_id = upload(stage, records(word, 3))
        ended = ("RETRY", "FAILURE", "SUCCESS")
        state = eventually(
            lambda: task_state(stage, f"{job_id}-0"), lambda s: s in ended, within=JOB_WITHIN
        )
        assert state == "RETRY", job(stage, job_id)
        assert job(stage, job_id)["state"] == "running"
    finally:
        broker.delete("sync")
    _, done = follow(stage, job_id)
    assert done["state"] == "done" and done["ingested"] == 3, done
    assert (
        eventually(lambda: search_total(stage, word), lambda n: n == 3, within=SETTLE_WITHIN) == 3
    )
    assert set(copies_hold(stage, before + 3).values()) == {before + 3}


def celery_client(stage: StageRunner, monkeypatch: pytest.MonkeyPatch) -> Celery:
    """A Celery client with the worker's own settings (the stage's broker and result store)."""
    for name in ("BROKER_URL", "CELERY_RESULT_BACKEND", "WORKSHOP_DATA_DIR"):
        monkeypatch.setenv(name, stage.env[name])
    client = Celery("it-client")
    client.conf.update(STAGE.load("ingest.tasks").celery_settings())
    return client


def test_a_task_delivered_twice_changes_nothing(stage, monkeypatch):
    word = f"zd{uuid.uuid4().hex[:8]}"
    rows = records(word, 300)
    job_id = upload(stage, rows)
    _, done = follow(stage, job_id)
    assert done["state"] == "done" and done["new"] == len(rows), done
    posts = importers.parse_upload(ndjson(rows), "application/x-ndjson").posts
    assert eventually(
        lambda: search_total(stage, word), lambda n: n == len(rows), within=SETTLE_WITHIN
    ) == len(rows)
    before = settled_posts(stage)

    client = celery_client(stage, monkeypatch)
    # The broker delivers the job's task again, same id, same arguments (at-least-once).
    client.send_task("ingest.store_posts", args=(job_id, posts), task_id=f"{job_id}-0")
    # One worker takes tasks in turn: once a later job is done, the duplicate was handled.
    _, later = follow(stage, upload(stage, records(f"zf{uuid.uuid4().hex[:8]}", 1)))
    assert later["state"] == "done", later
    client.close()

    assert job(stage, job_id) == done
    assert search_total(stage, word) == len(rows)
    assert set(copies_hold(stage, before + 1).values()) == {before + 1}
