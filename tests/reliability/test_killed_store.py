"""A service killed with SIGKILL keeps the data it owns on the embedded store, as on MongoDB.

No exit handler runs on a kill -9, so nothing is saved at the end: what a service wrote
must already be on disk (workshop/db.py journals every write before it returns). The test
imports posts, waits until the stage is settled, kills the owners (sync and its log, the
posts' owner, users) and starts them again: sync's log is as long as before, the posts'
owner still knows every post it stored, and a registered user can still log in.
"""

import json
import os
import signal
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.acceptance.stage import eventually
from tests.running import running_stage
from tests.timing import scaled
from tooling.runner import StageRunner, is_ready
from tooling.stages import all_stages

SETTLE_WITHIN = 90.0
IMPORTED = 300
MID_STREAM = 1500
SYNCED_STAGES = [s.name for s in all_stages() if "sync" in {p.name for p in s.processes()}]
# Who owns the posts: ingest on 03; on 04 its Celery worker stores them.
POSTS_OWNER = {"03-services": "ingest", "04-async": "worker"}


@pytest.fixture(scope="module", params=SYNCED_STAGES)
def stage(request: pytest.FixtureRequest) -> Iterator[StageRunner]:
    # The default set-up: embedded stores, the filesystem broker.
    with running_stage(request.param, {"MONGO_URL": ""}) as runner:
        yield runner


def front(stage: StageRunner) -> str:
    return f"http://127.0.0.1:{stage.port}"


def address(stage: StageRunner, process: str) -> str:
    return f"http://127.0.0.1:{stage.stage.ports(stage.port)[process]}"


def settled(stage: StageRunner) -> bool:
    def answer() -> bool:
        try:
            ready = requests.get(f"{front(stage)}/readyz", timeout=scaled(5))
        except requests.RequestException:
            return False
        return ready.status_code == 200 and ready.json()["settled"] is True

    return eventually(answer, bool, within=SETTLE_WITHIN)


def sync_log(stage: StageRunner) -> tuple[int, int]:
    """Return how many entries sync's log holds, and its head (the last sequence number)."""
    sync = address(stage, "sync")
    log = requests.get(f"{sync}/stats", timeout=scaled(10)).json()["collections"]["log"]
    head = requests.get(f"{sync}/api/sync/subscribers", timeout=scaled(10)).json()["head"]
    return log, head


def log_in(url: str, username: str) -> int:
    answer = requests.post(
        f"{url}/api/tokens",
        json={"username": username, "password": "correct horse"},
        timeout=scaled(10),
    )
    return answer.status_code


def import_posts(url: str, token: str, records: list[dict]) -> dict:
    """Import posts and return the finished job."""
    body = "\n".join(json.dumps(record) for record in records).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    answer = requests.post(f"{url}/api/ingest", data=body, headers=headers, timeout=scaled(60))
    assert answer.status_code == 202, answer.text
    return eventually(
        lambda: requests.get(
            f"{url}/api/jobs/{answer.json()['job_id']}", timeout=scaled(10)
        ).json(),
        lambda job: job["state"] in ("done", "failed"),
        within=SETTLE_WITHIN,
    )


def kill_and_restart(stage: StageRunner, names: list[str]) -> None:
    """SIGKILL processes (their whole group: gunicorn's master and worker), start them again."""
    for name in names:
        child = stage.children[name]
        os.killpg(child.pid, signal.SIGKILL)
        assert child.wait(timeout=scaled(10)) == -signal.SIGKILL
    for name in names:
        stage.restart_process(name)  # it is dead already: this only starts it


def test_the_owners_keep_their_data_through_a_kill(stage):
    url = front(stage)
    username = f"kill_{uuid.uuid4().hex[:8]}"
    created = requests.post(
        f"{url}/api/users",
        json={"username": username, "password": "correct horse"},
        timeout=scaled(10),
    )
    assert created.status_code == 201, created.text
    token = requests.post(
        f"{url}/api/tokens",
        json={"username": username, "password": "correct horse"},
        timeout=scaled(10),
    ).json()["token"]
    word = f"zk{uuid.uuid4().hex[:8]}"
    records = [
        {"id": f"{word}{i:04d}", "title": f"Kept {word} post {i}", "subreddit": "python",
         "created_utc": 1.37e9, "score": i, "ups": i, "downs": 0, "num_comments": 1}
        for i in range(IMPORTED)
    ]  # fmt: skip
    job = import_posts(url, token, records)
    assert job["state"] == "done" and job["new"] == IMPORTED, job
    assert settled(stage)
    log_before = sync_log(stage)
    assert log_before[0] >= IMPORTED

    owners = ["sync", POSTS_OWNER[stage.stage.name], "users"]
    kill_and_restart(stage, owners)
    for name in ("sync", "users"):
        served = address(stage, name)
        assert eventually(lambda: is_ready(served), bool, within=SETTLE_WITHIN), name  # noqa: B023
    assert settled(stage)

    # Sync's log is whole: a replay to a new subscriber would rebuild every copy from it.
    # (Its head may have moved on: an owner killed between publishing its last changes and
    # marking them published sends them again, and each duplicate dropped leaves a gap.)
    logged, head = sync_log(stage)
    assert logged == log_before[0] and head >= log_before[1]
    # The posts' owner still has every post: importing them again changes nothing.
    again = import_posts(url, token, records)
    assert again["state"] == "done", again
    assert (again["new"], again["unchanged"]) == (0, IMPORTED), again
    # Users kept the account: its owner logs in.
    assert log_in(url, username) == 200
    found = requests.get(f"{url}/api/posts/{records[7]['id']}", timeout=scaled(10))
    assert found.status_code == 200 and found.json()["title"] == records[7]["title"]


def test_sync_killed_mid_stream_logs_every_change_once(stage):
    """Sync is killed while an import flows through it: its log keeps what it had logged,
    the broker gives back the batch it held, and every copy gets every post."""
    url = front(stage)
    username = f"mid_{uuid.uuid4().hex[:8]}"
    requests.post(
        f"{url}/api/users",
        json={"username": username, "password": "correct horse"},
        timeout=scaled(10),
    )
    token = requests.post(
        f"{url}/api/tokens",
        json={"username": username, "password": "correct horse"},
        timeout=scaled(10),
    ).json()["token"]
    assert settled(stage)
    logged_before = sync_log(stage)[0]
    word = f"zs{uuid.uuid4().hex[:8]}"
    records = [
        {"id": f"{word}{i:04d}", "title": f"Streamed {word} post {i}", "subreddit": "python",
         "created_utc": 1.37e9, "score": i, "ups": i, "downs": 0, "num_comments": 1}
        for i in range(MID_STREAM)
    ]  # fmt: skip
    body = "\n".join(json.dumps(record) for record in records).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    answer = requests.post(f"{url}/api/ingest", data=body, headers=headers, timeout=scaled(60))
    assert answer.status_code == 202
    # Kill it once it has logged some of the import and before it has logged all of it.
    partly = eventually(
        lambda: sync_log(stage)[0] - logged_before,
        lambda n: n >= 100,
        within=SETTLE_WITHIN,
    )
    assert 100 <= partly < MID_STREAM, "the import went through sync before the kill"
    kill_and_restart(stage, ["sync"])
    assert settled(stage)
    assert sync_log(stage)[0] == logged_before + MID_STREAM
    total = eventually(
        lambda: requests.get(f"{url}/api/search", params={"q": word}, timeout=scaled(10)).json()[
            "total"
        ],
        lambda n: n == MID_STREAM,
        within=SETTLE_WITHIN,
    )
    assert total == MID_STREAM
