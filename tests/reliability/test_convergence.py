"""Every store converges after the broker lost messages: a subscriber that misses changes
notices the gap and sync sends them again, and until then the stage does not say settled.

The case: sync has logged every change and sent it on, but the batches still waited in a
subscriber's queue when the broker died without persistence (Redis as the machine runs
it: no disk). Sync's checkpoint for that subscriber is at the head of the log, so nothing
would ever be sent again: the subscriber stayed short for good while /readyz said settled.

Deterministic: the subscriber (search) is paused with SIGSTOP while an import flows, so its
batches pile up in Redis; Redis is then killed and started again empty, and search resumed.
"""

import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from tests.acceptance.stage import eventually
from tests.running import SYNCED_STAGES, running_stage
from tests.timing import scaled
from tooling.runner import StageRunner

SETTLE_WITHIN = 90.0
IMPORTED = 1500
COPIES = ("search", "recommend_v1", "recommend_v2", "tag")  # the subscribers' copies of posts


class PrivateRedis:
    """A redis-server of the test's own, without persistence, that can be killed and restarted."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary, self.folder = binary, folder
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen | None = None

    def url(self, database: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url(0), socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        if not eventually(answers, bool, within=10):
            self.kill()
            pytest.fail("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: what waited in its queues is gone
        self.process.wait(timeout=scaled(10))


@pytest.fixture(params=SYNCED_STAGES)
def stage_on_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StageRunner]:
    server = PrivateRedis(tmp_path)
    server.start()
    request.addfinalizer(server.stop)
    (tmp_path / "results").mkdir()
    env = {"BROKER_URL": server.url(0), "REGISTRY_URL": "", "WORKSHOP_SEED_SAMPLE": "1",
           "CELERY_RESULT_BACKEND": f"file://{tmp_path}/results"}  # fmt: skip
    with running_stage(request.param, env) as runner:
        runner.redis = server  # type: ignore[attr-defined]
        try:
            yield runner
        finally:
            for child in runner.children.values():  # a paused process cannot stop
                if child.poll() is None:
                    os.killpg(child.pid, signal.SIGCONT)


def front(stage: StageRunner) -> str:
    return f"http://127.0.0.1:{stage.port}"


def posts_in(stage: StageRunner, process: str) -> int:
    port = stage.stage.ports(stage.port)[process]
    answer = requests.get(f"http://127.0.0.1:{port}/stats", timeout=scaled(10))
    return answer.json()["collections"].get("posts", 0)


def copies(stage: StageRunner) -> dict[str, int]:
    return {name: posts_in(stage, name) for name in COPIES}


def settled(stage: StageRunner) -> bool:
    answer = requests.get(f"{front(stage)}/readyz", timeout=scaled(10))
    return answer.status_code == 200 and answer.json().get("settled") is True


def import_posts(stage: StageRunner, word: str, count: int) -> None:
    url = front(stage)
    username, password = f"cv_{uuid.uuid4().hex[:10]}", "correct horse battery"
    created = requests.post(f"{url}/api/users", json={"username": username, "password": password},
                            timeout=scaled(10))  # fmt: skip
    assert created.status_code == 201, created.text
    token = eventually(
        lambda: requests.post(f"{url}/api/tokens",
                              json={"username": username, "password": password},
                              timeout=scaled(10)),
        lambda answer: answer.status_code == 200,
    ).json()["token"]  # fmt: skip
    rows = "\n".join(
        f'{{"id": "{word}{i:05d}", "title": "Converge {word} {i}", "subreddit": "python", '
        f'"created_utc": 1.37e9, "score": 1, "ups": 1, "downs": 0, "num_comments": 0}}'
        for i in range(count)
    )
    answer = requests.post(f"{url}/api/ingest", data=rows.encode(), timeout=scaled(120),
                           headers={"Authorization": f"Bearer {token}",
                                    "Content-Type": "application/x-ndjson"})  # fmt: skip
    assert answer.status_code == 202, answer.text


def test_a_subscriber_whose_queue_the_broker_lost_catches_up(stage_on_redis):
    stage = stage_on_redis
    assert eventually(lambda: settled(stage), bool, within=SETTLE_WITHIN)
    before = copies(stage)
    assert len(set(before.values())) == 1, before
    expected = before["search"] + IMPORTED
    search = stage.children["search"]
    os.killpg(search.pid, signal.SIGSTOP)  # its batches now wait in Redis
    import_posts(stage, f"cv{uuid.uuid4().hex[:6]}", IMPORTED)
    others = [name for name in COPIES if name != "search"]
    # Every other copy has it all: sync has logged and sent every change.
    sent = eventually(lambda: copies_of(stage, others), lambda c: set(c.values()) == {expected},
                      within=SETTLE_WITHIN)  # fmt: skip
    assert set(sent.values()) == {expected}, sent
    stage.redis.kill()  # type: ignore[attr-defined]
    stage.redis.start()  # type: ignore[attr-defined]
    os.killpg(search.pid, signal.SIGCONT)
    counts = eventually(lambda: copies(stage), lambda c: set(c.values()) == {expected},
                        within=SETTLE_WITHIN)  # fmt: skip
    assert set(counts.values()) == {expected}, f"the stores did not converge: {counts}"
    assert eventually(lambda: settled(stage), bool, within=SETTLE_WITHIN)


def copies_of(stage: StageRunner, names: list[str]) -> dict[str, int]:
    return {name: posts_in(stage, name) for name in names}


def test_the_private_redis_really_forgets(tmp_path):
    """The premise: a killed Redis without persistence comes back empty."""
    server = PrivateRedis(tmp_path)
    try:
        server.start()
        redis.Redis.from_url(server.url(0)).rpush("search", "a batch")
        server.kill()
        server.start()
        assert redis.Redis.from_url(server.url(0)).llen("search") == 0
    finally:
        server.stop()
