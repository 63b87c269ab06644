"""Versions never go backwards: an owner that lost its store and starts again numbers its
changes above every version its subscribers have seen, and the stage is not "settled"
while the owner holds less than its subscribers were sent.

The case: ingest (04: its worker, which owns the posts) loses its store and starts empty.
A post imported again was numbered version 1, which every subscriber had seen already, so
they dropped it as old: the post kept its old title everywhere until a third change.
"""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.acceptance.stage import eventually
from tests.running import START_WITHIN, SYNCED_STAGES, running_stage
from tests.timing import scaled
from tooling.runner import StageRunner

VISIBLE_WITHIN = 60.0
# The process that owns the posts, and its database.
OWNER = {"03-services": "ingest", "04-async": "worker"}
POSTS_DATABASE = "ingest"


@pytest.fixture(params=SYNCED_STAGES)
def stage(request: pytest.FixtureRequest) -> Iterator[StageRunner]:
    env = {"BROKER_URL": "", "REGISTRY_URL": "", "WORKSHOP_SEED_SAMPLE": "1"}
    with running_stage(request.param, env) as runner:
        yield runner


def front(stage: StageRunner) -> str:
    return f"http://127.0.0.1:{stage.port}"


def token(stage: StageRunner) -> str:
    url, username = front(stage), f"vn_{uuid.uuid4().hex[:10]}"
    body = {"username": username, "password": "correct horse battery"}
    assert requests.post(f"{url}/api/users", json=body, timeout=scaled(10)).status_code == 201
    answer = eventually(lambda: requests.post(f"{url}/api/tokens", json=body, timeout=scaled(10)),
                        lambda answer: answer.status_code == 200)  # fmt: skip
    return answer.json()["token"]


def import_post(stage: StageRunner, bearer: str, post_id: str, title: str) -> None:
    fields = {"id": post_id, "title": title, "subreddit": "python", "created_utc": 1.37e9,
              "score": 1, "ups": 1, "downs": 0, "num_comments": 0}  # fmt: skip
    row = json.dumps(fields)
    answer = requests.post(f"{front(stage)}/api/ingest", data=row.encode(), timeout=scaled(60),
                           headers={"Authorization": f"Bearer {bearer}",
                                    "Content-Type": "application/x-ndjson"})  # fmt: skip
    assert answer.status_code == 202, answer.text


def title_of(stage: StageRunner, post_id: str) -> str | None:
    answer = requests.get(f"{front(stage)}/api/posts/{post_id}", timeout=scaled(10))
    return answer.json()["title"] if answer.status_code == 200 else None


def shows(stage: StageRunner, post_id: str, title: str) -> str | None:
    return eventually(lambda: title_of(stage, post_id), lambda t: t == title,
                      within=VISIBLE_WITHIN)  # fmt: skip


def test_an_owner_that_lost_its_store_is_heard_again(stage):
    bearer, post_id = token(stage), f"v{uuid.uuid4().hex[:6]}"
    for title in ("First title", "Second title"):  # the post reaches version 2 everywhere
        import_post(stage, bearer, post_id, title)
        assert shows(stage, post_id, title) == title
    owner = OWNER[stage.stage.name]
    stage.stop_process(owner)
    store = Path(stage.env["WORKSHOP_DATA_DIR"]) / "store"
    lost = [path for path in store.glob(f"{POSTS_DATABASE}.*") if path.is_file()]
    assert lost, f"no store files of {POSTS_DATABASE} in {store}"
    for path in lost:
        path.unlink()
    stage.restart_process(owner)
    assert stage.wait_ready(scaled(START_WITHIN))
    # The owner holds less than the log knows of: the stage says it is not settled...
    assert eventually(lambda: settled(stage), lambda s: s is False, within=VISIBLE_WITHIN) is False
    import_post(stage, bearer, post_id, "Third title")
    assert shows(stage, post_id, "Third title") == "Third title", "the change was dropped as old"
    # ...until it holds every post again.
    assert eventually(lambda: settled(stage), bool, within=VISIBLE_WITHIN)


def settled(stage: StageRunner) -> bool:
    answer = requests.get(f"{front(stage)}/readyz", timeout=scaled(10))
    return answer.status_code == 200 and answer.json().get("settled") is True
