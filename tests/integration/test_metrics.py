"""/metrics on stages 03 and 04 (issue 11): every process's exposition parses with
prometheus_client's own parser, requests are counted under their route (never the raw
path), the backlog rises while a subscriber is paused and falls back to 0 after, the gateway
counts the calls a paused service leaves unanswered and the instances it calls, and 04's
Celery worker counts its tasks' outcomes on its own port. One launch of each stage for all
of it."""

import json
import os
import signal
import uuid
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.stage import eventually
from tests.running import SYNCED_STAGES, running_stage
from tests.timing import scaled
from tooling.runner import StageRunner

SETTLE_WITHIN = 90.0
NO_HTTP = {"worker", "beat"}  # 04's Celery processes: the worker serves only /metrics


@pytest.fixture(scope="module", params=SYNCED_STAGES)
def stage(request: pytest.FixtureRequest) -> Iterator[StageRunner]:
    """The stage on its default broker (files in its run folder) and static addresses."""
    env = {"BROKER_URL": "", "REGISTRY_URL": "", "CELERY_RESULT_BACKEND": "",
           "REDDIT_URL": "http://127.0.0.1:9"}  # fmt: skip
    with running_stage(request.param, env) as runner:
        yield runner


def address(stage: StageRunner, process: str) -> str:
    return f"http://127.0.0.1:{stage.stage.ports(stage.port)[process]}"


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of a /metrics page, by name and labels (parsed, so it must parse)."""
    answer = requests.get(f"{url}/metrics", timeout=scaled(10))
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def upload(stage: StageRunner, word: str, count: int) -> None:
    """Register a user and import `count` new posts through the gateway."""
    url, password = address(stage, "web"), "correct horse battery"
    username = f"metrics_{uuid.uuid4().hex[:8]}"
    user = {"username": username, "password": password}
    assert requests.post(f"{url}/api/users", json=user, timeout=scaled(10)).status_code == 201
    token = requests.post(f"{url}/api/tokens", json=user, timeout=scaled(10)).json()["token"]
    rows = [
        {"id": f"{word}{i:05d}", "title": f"Metrics {word} post {i}", "subreddit": "python",
         "created_utc": 1.37e9, "score": 1, "ups": 1, "downs": 0, "num_comments": 1}
        for i in range(count)
    ]  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    body = "\n".join(json.dumps(row) for row in rows).encode()
    answer = requests.post(f"{url}/api/ingest", data=body, headers=headers, timeout=scaled(60))
    assert answer.status_code == 202, answer.text


def test_every_process_serves_metrics_and_counts_requests_per_route(stage):
    for process in stage.stage.processes():
        if process.name not in NO_HTTP:
            answer = requests.get(f"{address(stage, process.name)}/metrics", timeout=scaled(10))
            names = {f.name for f in text_string_to_metric_families(answer.text)}
            assert {"http_requests", "http_request_duration_seconds"} <= names, process.name
    search, gateway = address(stage, "search"), address(stage, "web")
    before = value(scrape(search), "http_requests_total", route="/healthz", method="GET",
                   status="2xx")  # fmt: skip
    for _ in range(3):
        assert requests.get(f"{search}/healthz", timeout=scaled(10)).status_code == 200
    after = scrape(search)
    assert value(after, "http_requests_total", route="/healthz", method="GET", status="2xx") == (
        before + 3
    )
    assert value(after, "http_request_duration_seconds_count", route="/healthz", method="GET") > 0
    # A path with an id is counted under its rule: one series, whatever the id.
    rule = dict(route="/api/posts/<post_id>", method="GET", status="4xx")
    before = value(scrape(gateway), "http_requests_total", **rule)
    for _ in range(2):
        post_id = f"nope{uuid.uuid4().hex[:8]}"
        assert requests.get(f"{gateway}/api/posts/{post_id}", timeout=scaled(30)).status_code == 404
    assert post_id not in requests.get(f"{gateway}/metrics", timeout=scaled(10)).text
    assert value(scrape(gateway), "http_requests_total", **rule) == before + 2


def test_the_backlog_rises_while_a_subscriber_is_paused_and_returns_to_zero(stage):
    sync, search, gateway = (address(stage, p) for p in ("sync", "search", "web"))
    backlog = lambda url: value(scrape(url), "service_backlog")  # noqa: E731
    assert eventually(lambda: backlog(sync), lambda n: n == 0, within=SETTLE_WITHIN) == 0
    errors_before = value(scrape(gateway), "gateway_upstream_errors_total", service="search")
    searcher = stage.children["search"]
    os.killpg(searcher.pid, signal.SIGSTOP)
    try:
        upload(stage, f"zm{uuid.uuid4().hex[:8]}", 20)
        # Sync sent search the new posts; search, paused, has not said it applied them.
        assert eventually(lambda: backlog(sync), lambda n: n > 0, within=SETTLE_WITHIN) > 0
        lag = scrape(sync)
        assert ("sync_subscriber_lag", (("subscriber", "search"),)) in lag, sorted(lag)
        # The gateway's call to the paused service times out: counted, and its breaker shown.
        answer = requests.get(f"{gateway}/api/search", params={"q": "python"}, timeout=scaled(30))
        assert answer.status_code == 503, answer.text[:300]
        front = scrape(gateway)
        errors = value(front, "gateway_upstream_errors_total", service="search")
        assert errors == errors_before + 1
        states = {
            dict(labels)["gateway_circuit_breaker"]: state
            for (name, labels), state in front.items()
            if name == "gateway_circuit_breaker" and dict(labels)["service"] == "search"
        }
        assert sum(states.values()) == 1 and set(states) == {"closed", "half-opened", "opened"}
    finally:
        os.killpg(searcher.pid, signal.SIGCONT)
    assert eventually(lambda: backlog(sync), lambda n: n == 0, within=SETTLE_WITHIN) == 0
    assert eventually(lambda: backlog(search), lambda n: n == 0, within=SETTLE_WITHIN) == 0
    assert ("service_outbox_pending", ()) in scrape(address(stage, "tag"))  # an owner of data


def test_without_a_registry_the_gateway_shows_its_one_address_per_service(stage):
    """No registry: each service is the one address the gateway was started with, counted
    on /metrics and listed on /readyz with the version the instance's own /readyz says."""
    gateway, search = address(stage, "web"), address(stage, "search")
    front = scrape(gateway)
    for service in ("users", "ingest", "search", "tag", "sync", "recommend-v1", "recommend-v2"):
        assert value(front, "gateway_instances", service=service) == 1, service
    own = requests.get(f"{search}/readyz", timeout=scaled(10)).json()
    assert own["version"] and own["started"]
    listed = requests.get(f"{gateway}/readyz", timeout=scaled(10)).json()["dependencies"]["search"]
    seen = [(i["address"], i["version"], i["started"], i["status"]) for i in listed["instances"]]
    assert seen == [(search, own["version"], own["started"], "ready")]


def test_the_celery_worker_counts_its_tasks_outcomes(stage):
    if "worker" not in {p.name for p in stage.stage.processes()}:
        pytest.skip("no Celery worker in this stage")
    worker = address(stage, "worker")
    succeeded = dict(task="ingest.store_posts", outcome="succeeded")
    before = value(scrape(worker), "celery_tasks_total", **succeeded)
    upload(stage, f"zc{uuid.uuid4().hex[:8]}", 10)
    counted = eventually(
        lambda: value(scrape(worker), "celery_tasks_total", **succeeded),
        lambda n: n > before,
        within=SETTLE_WITHIN,
    )
    assert counted == before + 1
    assert ("celery_queue_length", ()) in scrape(worker)
