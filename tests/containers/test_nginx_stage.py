"""Stage 03 behind the project's nginx, as its compose file runs it: two gateway instances,
requests spread over both, one taken away with no failed GET, a clean 503 when none is
left, static files from nginx's disk, the body limit, and the contract passing through."""

import http.client
import re
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.acceptance.stage import Client, assert_error, eventually
from tests.containers.project import ROOT, Nginx, free_port, nginx_path
from tests.running import START_WITHIN
from tests.timing import scaled
from tooling.runner import StageRunner, free_base_port, is_ready
from tooling.stages import get_stage
from workshop import config

SECOND_GATEWAY_READY_SECONDS = 60.0
STATIC = ROOT / "workshop" / "web" / "static" / "style.css"


@pytest.fixture(scope="module")
def stage() -> Iterator[tuple[StageRunner, int]]:
    """Stage 03 as `workshop up` runs it, plus a second gateway: (runner, its port)."""
    nginx_path()  # skip before starting anything when there is no nginx
    stage = get_stage("03-services")
    runner = StageRunner(
        stage,
        free_base_port(len(stage.processes())),
        {"WORKSHOP_SEED_SAMPLE": "1", "REDDIT_URL": "http://127.0.0.1:9"},  # offline
    )
    runner.start()
    try:
        if not runner.wait_ready(scaled(START_WITHIN)):
            pytest.fail(f"03-services did not become ready ({runner.failed() or 'timeout'})")
        second = free_port()
        runner.start_extra("web-2", "web", second, {})
        deadline = time.monotonic() + scaled(SECOND_GATEWAY_READY_SECONDS)
        while not is_ready(f"http://127.0.0.1:{second}"):
            assert time.monotonic() < deadline, "the second gateway did not become ready"
            time.sleep(0.2)
        yield runner, second
    finally:
        runner.stop()


@pytest.fixture(scope="module")
def nginx(stage) -> Iterator[Nginx]:
    runner, second = stage
    running = Nginx([runner.port, second])
    running.start()
    yield running
    running.stop()


@pytest.fixture
def client(nginx) -> Client:
    return Client(nginx.url)


def gateways(stage) -> set[str]:
    runner, second = stage
    return {f"127.0.0.1:{runner.port}", f"127.0.0.1:{second}"}


def test_requests_are_spread_over_both_gateways(client, stage):
    answers = [client.get("/api/search", params={"q": "flask"}) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 6
    assert {a.headers["X-Upstream"] for a in answers} == gateways(stage)


def test_the_request_id_comes_back(client):
    assert client.get("/", headers={"X-Request-ID": "req-42"}).headers["X-Request-ID"] == "req-42"
    assert re.fullmatch(r"[0-9a-f]{32}", client.get("/").headers["X-Request-ID"])


def test_static_files_come_from_nginx_itself(client, stage):
    runner, _ = stage
    answer = client.get("/static/style.css")
    assert answer.status_code == 200 and answer.content == STATIC.read_bytes()
    assert "X-Upstream" not in answer.headers  # no gateway was asked
    assert answer.headers["Content-Type"].startswith("text/css")
    flask = requests.get(f"http://127.0.0.1:{runner.port}/static/style.css", timeout=scaled(10))
    assert flask.content == answer.content  # the very files the app serves


def test_a_body_above_the_limit_is_refused_before_it_is_sent(nginx):
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=scaled(10))
    connection.putrequest("POST", "/api/ingest")
    connection.putheader("Content-Type", "application/x-ndjson")
    connection.putheader("Content-Length", str(config.MAX_INGEST_BYTES + 1))
    connection.endheaders()  # nginx answers from the headers: no body is sent
    answer = connection.getresponse()
    body = answer.read()
    connection.close()
    assert answer.status == 413 and answer.getheader("X-Upstream") is None
    assert answer.getheader("Content-Type") == "application/json"
    assert b'"code": "request_entity_too_large"' in body


def test_the_contract_passes_through_nginx(client):
    found = client.get("/api/search", params={"q": "flask"})
    assert found.status_code == 200 and found.json()["items"]
    post_id = found.json()["items"][0]["id"]
    assert client.get(f"/api/posts/{post_id}").json()["id"] == post_id
    assert_error(client.get("/api/posts/no-such-post"), 404)

    username, _, token = client.new_user("nginx")  # register, then a token
    tag = f"t-{uuid.uuid4().hex[:12]}"
    tagged = client.post(f"/api/posts/{post_id}/tags", token=token, json={"tag": tag})
    assert tagged.status_code == 201
    assert tagged.json() == {"post_id": post_id, "tag": tag, "user": username}
    tags = eventually(
        lambda: {t["tag"] for t in client.get(f"/api/posts/{post_id}").json()["tags"]},
        lambda names: tag in names,
    )
    assert tag in tags

    # An upload above nginx's default 1 MiB and below the contract's limit reaches the app.
    line = (ROOT / "tests" / "fixtures" / "old-reddit.ndjson").read_bytes().splitlines()[0]
    upload = b"\n".join([line] * (1_500_000 // len(line) + 1))
    started = client.post("/api/ingest", token=token, data=upload,
                          headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
    assert started.status_code == 202, started.text[:300]

    page = client.get("/search", params={"q": "flask"})
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")


def test_gateways_going_away_fail_no_get_then_get_a_clean_503(client, stage, nginx):
    runner, second = stage
    answers: list[int | str] = []
    done = threading.Event()

    def keep_asking() -> None:
        while not done.is_set():
            try:
                answers.append(client.get("/api/search", params={"q": "flask"}).status_code)
            except requests.RequestException as error:
                answers.append(type(error).__name__)

    asking = threading.Thread(target=keep_asking)
    asking.start()
    try:
        eventually(lambda: len(answers), lambda count: count >= 5, within=30)
        runner.stop_process("web-2")
        stopped_at = len(answers)
        eventually(lambda: len(answers), lambda count: count >= stopped_at + 10, within=30)
    finally:
        done.set()
        asking.join(timeout=scaled(30))
    assert len(answers) >= stopped_at + 10
    assert set(answers) == {200}, answers
    left = client.get("/api/search", params={"q": "flask"})
    assert left.status_code == 200 and left.headers["X-Upstream"].endswith(f":{runner.port}")

    runner.stop_process("web")
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html")
    assert "The site is not answering right now." in page.text
    assert page.text == (ROOT / "docker" / "nginx" / "50x.html").read_text()
    error = assert_error(client.get("/api/search", params={"q": "flask"}), 503)
    assert error["code"] == "service_unavailable"
    assert client.get("/static/style.css").status_code == 200  # nginx's own files still serve
