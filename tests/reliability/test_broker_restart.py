"""A broker that goes away mid-import and comes back: the stage recovers by itself.

Stages 03 and 04, on a broker of the test's own, import 2,000 posts; once 500 have reached
the search service, the broker goes away for ten seconds and comes back:

- Redis with persistence (`--appendonly yes`: what it acknowledged is there again) and
  without (what was queued is gone: an owner's changes on their way to sync, sync's on
  their way to the copies, 04's queued tasks and their results);
- RabbitMQ, a virtual host of the test's own: closed to connections for the outage (its
  durable queues kept, as a restart keeps them), or deleted and made again (everything in
  it gone).

Then a write accepted after the broker is back is visible within the contract's 2 seconds,
and the stage settles by itself with every copy holding what the owners hold: all 2,000
posts searchable, the import's job done with exact counts.
"""

import contextlib
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.acceptance.stage import eventually
from tests.brokers import RedisServer, rabbitmq_vhost
from tests.timing import scaled
from tooling.runner import StageRunner, free_base_port
from tooling.stages import get_stage

IMPORTED = 2000
OUTAGE_AT = 500
OUTAGE_SECONDS = 10.0
VISIBLE_WITHIN = 2.0  # the contract, for a write made once the broker is back
SETTLE_WITHIN = 180.0
BROKERS = ["redis-kept", "redis-lost", "rabbitmq-kept", "rabbitmq-lost"]


class Outage:
    """A broker of the test's own that can go away and come back."""

    url: str

    def go_away(self) -> None: ...

    def come_back(self) -> None: ...


class RedisOutage(Outage):
    def __init__(self, folder: Path, kept: bool) -> None:
        self.server = RedisServer(folder, persistence=kept)
        self.server.start()
        self.url = self.server.url(0)

    def go_away(self) -> None:
        self.server.kill()  # `shutdown nosave`: an append-only file keeps what it had

    def come_back(self) -> None:
        self.server.start()


class RabbitOutage(Outage):
    """A virtual host closed to connections (its durable queues kept), or deleted and made
    again (everything in it lost)."""

    def __init__(self, url: str, kept: bool) -> None:
        self.url, self.kept = url, kept
        self.vhost = url.rsplit("/", 1)[1]
        self.ctl = shutil.which("rabbitmqctl")
        if self.ctl is None:
            pytest.skip("rabbitmqctl is needed to take a virtual host away")

    def run(self, *arguments: str) -> None:
        subprocess.run([self.ctl, *arguments], check=True, capture_output=True,
                       timeout=scaled(60))  # fmt: skip

    def go_away(self) -> None:
        self.run("set_vhost_limits", "-p", self.vhost, '{"max-connections": 0}')
        self.run("close_all_connections", "-p", self.vhost, "broker outage (test)")
        if not self.kept:
            self.run("delete_vhost", self.vhost)

    def come_back(self) -> None:
        if not self.kept:
            self.run("add_vhost", self.vhost)
            self.run("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        else:
            self.run("clear_vhost_limits", "-p", self.vhost)


@contextlib.contextmanager
def broker(kind: str, folder: Path) -> Iterator[Outage]:
    kept = kind.endswith("kept")
    if kind.startswith("redis"):
        outage = RedisOutage(folder / "redis", kept)
        try:
            yield outage
        finally:
            outage.server.stop()
    else:
        with rabbitmq_vhost() as url:
            yield RabbitOutage(url, kept)


def front(stage: StageRunner) -> str:
    return f"http://127.0.0.1:{stage.port}"


def found(stage: StageRunner, word: str) -> int:
    try:
        answer = requests.get(f"{front(stage)}/api/search", params={"q": word}, timeout=10)
        return int(answer.json()["total"])
    except (requests.RequestException, ValueError, KeyError):
        return -1


def settled(stage: StageRunner) -> bool:
    try:
        answer = requests.get(f"{front(stage)}/readyz", timeout=10)
        return answer.status_code == 200 and answer.json().get("settled") is True
    except (requests.RequestException, ValueError):
        return False


def new_user(stage: StageRunner) -> dict[str, str]:
    credentials = {"username": f"b{uuid.uuid4().hex[:10]}", "password": f"pw-{uuid.uuid4().hex}"}
    assert requests.post(f"{front(stage)}/api/users", json=credentials, timeout=30).ok
    token = eventually(
        lambda: requests.post(f"{front(stage)}/api/tokens", json=credentials, timeout=30),
        lambda answer: answer.status_code == 200,
        within=10,
    ).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def upload(word: str) -> bytes:
    rows = [
        json.dumps({"id": f"{word[:6]}{n:05d}", "title": f"{word} broker {n}",
                    "subreddit": "python", "created_utc": 1_400_000_000 + n, "ups": 20})
        for n in range(IMPORTED)
    ]  # fmt: skip
    return ("\n".join(rows) + "\n").encode()


def job_of(stage: StageRunner, job_id: str) -> dict[str, Any]:
    try:
        return requests.get(f"{front(stage)}/api/jobs/{job_id}", timeout=10).json()
    except (requests.RequestException, ValueError):
        return {"state": "unknown"}


@pytest.mark.timeout(int(scaled(600)))
@pytest.mark.parametrize("kind", BROKERS)
@pytest.mark.parametrize("name", ["03-services", "04-async"])
def test_the_stage_recovers_from_a_broker_that_went_away(name: str, kind: str, tmp_path: Path):
    with broker(kind, tmp_path) as outage:
        stage = get_stage(name)
        runner = StageRunner(stage, free_base_port(len(stage.processes())),
                             {"BROKER_URL": outage.url, "MONGO_URL": ""})  # fmt: skip
        runner.start()
        try:
            assert runner.wait_ready(scaled(150)), f"{name} did not start"
            auth = new_user(runner)
            word = f"zb{uuid.uuid4().hex[:10]}"
            answer = requests.post(
                f"{front(runner)}/api/ingest", data=upload(word), timeout=scaled(300),
                headers={**auth, "Content-Type": "application/x-ndjson"},
            )  # fmt: skip
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["job_id"]
            # The import flows: part of it has reached the copies when the broker goes.
            assert eventually(lambda: found(runner, word), lambda n: n >= OUTAGE_AT,
                              within=120) >= OUTAGE_AT  # fmt: skip
            outage.go_away()
            time.sleep(OUTAGE_SECONDS)  # the outage itself lasts this long, on purpose
            outage.come_back()

            # A write accepted once the broker is back is visible within the contract's time.
            post_id = f"{word[:6]}00007"
            tag = f"back-{uuid.uuid4().hex[:6]}"

            def tagged() -> requests.Response:
                return requests.post(f"{front(runner)}/api/posts/{post_id}/tags",
                                     json={"tag": tag}, headers=auth, timeout=30)  # fmt: skip

            assert eventually(tagged, lambda a: a.status_code == 201, 60).status_code == 201
            accepted = time.monotonic()

            def shows_tag() -> bool:
                post = requests.get(f"{front(runner)}/api/posts/{post_id}", timeout=10).json()
                return any(t["tag"] == tag for t in post.get("tags", []))

            assert eventually(shows_tag, bool, within=VISIBLE_WITHIN), (
                f"a tag accepted after the broker came back was not visible in "
                f"{time.monotonic() - accepted:.1f} s"
            )

            # The stage settles by itself, every copy holding every post the owner holds.
            done = eventually(lambda: job_of(runner, job_id),
                              lambda j: j["state"] in ("done", "failed"),
                              SETTLE_WITHIN)  # fmt: skip
            assert done["state"] == "done" and done["new"] == IMPORTED, done
            assert eventually(lambda: found(runner, word), lambda n: n == IMPORTED,
                              within=SETTLE_WITHIN) == IMPORTED  # fmt: skip
            assert eventually(lambda: settled(runner), bool, within=SETTLE_WITHIN)
        finally:
            runner.stop()
