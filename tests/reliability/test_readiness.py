"""Ready means right answers: while a stage starts, every /readyz 200 comes with the full
data behind it, and a stage that serves stays ready while an import is in flight."""

import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.acceptance.stage import eventually
from tests.running import SYNCED_STAGES
from tests.timing import scaled
from tooling.runner import StageRunner, free_base_port
from tooling.stages import all_stages, get_stage

START_WITHIN = 150.0
# After the first 200, keep watching this long: the window of wrong answers was ~1 s.
WATCH_AFTER_READY = 5.0
SETTLE_WITHIN = 60.0
WORD = "python"  # a subreddit of the sample: many posts match


@pytest.fixture(params=[stage.name for stage in all_stages()])
def starting_stage(request: pytest.FixtureRequest) -> Iterator[StageRunner]:
    """A stage just started as `workshop up` starts it (sample data), not yet ready."""
    yield from start(request.param)


@pytest.fixture(params=SYNCED_STAGES)
def services_stage(request: pytest.FixtureRequest) -> Iterator[StageRunner]:
    """A stage whose writes travel through queues, just started."""
    yield from start(request.param)


def start(name: str) -> Iterator[StageRunner]:
    stage = get_stage(name)
    runner = StageRunner(
        stage, free_base_port(len(stage.processes())), {"WORKSHOP_SEED_SAMPLE": "1"}
    )
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


def readyz(url: str) -> requests.Response | None:
    try:
        return requests.get(f"{url}/readyz", timeout=scaled(5))
    except requests.RequestException:
        return None  # not listening yet


def search_total(url: str, word: str) -> int:
    answer = requests.get(f"{url}/api/search", params={"q": word}, timeout=scaled(10))
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    return answer.json()["total"]


def settled(url: str) -> bool:
    answer = readyz(url)
    return answer is not None and answer.status_code == 200 and answer.json().get("settled", True)


def test_every_ready_answer_comes_with_the_full_data(starting_stage):
    url = f"http://127.0.0.1:{starting_stage.port}"
    totals_when_ready: list[int] = []
    deadline = time.monotonic() + scaled(START_WITHIN)
    first_ready: float | None = None
    while time.monotonic() < deadline:
        assert starting_stage.failed() is None, f"{starting_stage.failed()} exited"
        answer = readyz(url)
        if answer is not None and answer.status_code == 200:
            totals_when_ready.append(search_total(url, WORD))
            first_ready = first_ready or time.monotonic()
        elif answer is not None:
            assert answer.status_code == 503, answer.status_code
            assert answer.json()["status"] == "degraded"
        if first_ready and time.monotonic() - first_ready > WATCH_AFTER_READY:
            break
        time.sleep(0.05)
    assert totals_when_ready, f"{starting_stage.stage.name} never answered /readyz 200"
    assert eventually(lambda: settled(url), bool, within=SETTLE_WITHIN)
    full = search_total(url, WORD)
    assert full > 0
    wrong = [total for total in totals_when_ready if total != full]
    assert not wrong, f"/readyz said 200 while search found {sorted(set(wrong))} of {full}"


def test_a_serving_stage_stays_ready_while_an_import_is_in_flight(services_stage):
    url = f"http://127.0.0.1:{services_stage.port}"
    assert eventually(lambda: settled(url), bool, within=START_WITHIN)
    token = register(url)
    word = f"zr{uuid.uuid4().hex[:8]}"
    records = [
        {"id": f"{word}{i:05d}", "title": f"Import {word} post {i}", "subreddit": "python",
         "created_utc": 1.37e9, "score": i % 50, "ups": i % 50, "downs": 0, "num_comments": 1}
        for i in range(3000)
    ]  # fmt: skip
    body = "\n".join(json.dumps(record) for record in records).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    outcome: dict[str, int] = {}

    def ingest() -> None:
        answer = requests.post(f"{url}/api/ingest", data=body, headers=headers, timeout=scaled(120))
        outcome["status"] = answer.status_code

    writer = threading.Thread(target=ingest)
    writer.start()
    statuses, settled_flags = [], []
    deadline = time.monotonic() + scaled(SETTLE_WITHIN)
    while time.monotonic() < deadline:
        answer = readyz(url)
        statuses.append(answer.status_code if answer is not None else None)
        if answer is not None:
            settled_flags.append(answer.json().get("settled"))
        if not writer.is_alive() and settled_flags and settled_flags[-1] is True:
            break
        time.sleep(0.05)
    writer.join()
    assert outcome.get("status") == 202
    assert False in settled_flags, "the import never showed as a backlog (nothing was tested)"
    assert set(statuses) == {200}, f"/readyz left 200 while serving: {statuses}"
    assert eventually(lambda: search_total(url, word), lambda n: n == 3000, within=SETTLE_WITHIN)


def register(url: str) -> str:
    """Register a fresh user and return a token."""
    username, password = f"rd_{uuid.uuid4().hex[:10]}", "correct horse battery"
    created = requests.post(
        f"{url}/api/users", json={"username": username, "password": password}, timeout=scaled(10)
    )
    assert created.status_code == 201, created.text
    token = eventually(
        lambda: requests.post(
            f"{url}/api/tokens",
            json={"username": username, "password": password},
            timeout=scaled(10),
        ),
        lambda answer: answer.status_code == 200,
    )
    return token.json()["token"]
