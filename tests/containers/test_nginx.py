"""The project's nginx config, run for real in front of two small recording upstreams: what
it passes on, which errors it retries, and which answers it leaves alone."""

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.acceptance.stage import eventually
from tests.containers.project import Nginx, nginx_path
from tests.timing import scaled


class Recorder(ThreadingHTTPServer):
    """An upstream that answers every request with one status and records what it got."""

    daemon_threads = True

    def __init__(self, status: int = 200) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.status = status
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.seen.append((self.command, self.path, dict(self.headers)))
        status = self.server.status
        code = "ok" if status < 400 else "upstream_unavailable"
        body = json.dumps({"error": {"code": code, "message": f"port {self.server.port}"}})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = do_PUT = do_DELETE = answer  # noqa: N815 (http.server names them)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstreams() -> Iterator[list[Recorder]]:
    nginx_path()  # skip early when there is no nginx
    servers = [Recorder(), Recorder()]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def nginx(upstreams) -> Iterator[Nginx]:
    running = Nginx([server.port for server in upstreams])
    running.start()
    yield running
    running.stop()


def test_nginx_tells_the_app_who_asked_and_keeps_the_request_id(nginx, upstreams):
    answer = requests.get(
        f"{nginx.url}/api/search",
        headers={"X-Request-ID": "client-id-1", "X-Forwarded-For": "203.0.113.9"},
        timeout=scaled(10),
    )
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"] == "client-id-1"
    (seen,) = [headers for server in upstreams for _, _, headers in server.seen]
    assert seen["X-Request-ID"] == "client-id-1"
    assert seen["X-Forwarded-For"] == "127.0.0.1"  # what the client claimed is dropped
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["Host"] == f"127.0.0.1:{nginx.port}"
    # nginx writes its access line after the answer has gone out: wait for it, not race it.
    logged = eventually(nginx.log_text, lambda text: "request_id=client-id-1" in text, within=10)
    assert "request_id=client-id-1" in logged


@pytest.mark.parametrize("sent", [None, "has spaces in it", "x" * 200])
def test_nginx_makes_a_request_id_when_the_client_sent_none_or_a_bad_one(nginx, upstreams, sent):
    headers = {"X-Request-ID": sent} if sent else {}
    answer = requests.get(f"{nginx.url}/", headers=headers, timeout=scaled(10))
    made = answer.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made), made
    # One call; on a busy laptop nginx may also try the other instance (a GET is retried
    # after a slow connect): each try carries the id it made.
    seen = [headers for server in upstreams for _, _, headers in server.seen]
    assert seen and {headers["X-Request-ID"] for headers in seen} == {made}


def test_answers_take_turns_between_the_instances(nginx, upstreams):
    answers = [requests.get(f"{nginx.url}/api/tags", timeout=scaled(10)) for _ in range(4)]
    assert {a.headers["X-Upstream"] for a in answers} == {
        f"127.0.0.1:{server.port}" for server in upstreams
    }
    assert [len(server.seen) for server in upstreams] == [2, 2]


def test_a_get_is_retried_on_the_next_instance_and_a_post_never_twice(nginx, upstreams):
    failing, working = upstreams
    failing.status = 503
    gets = [requests.get(f"{nginx.url}/api/search", timeout=scaled(10)) for _ in range(4)]
    assert [a.status_code for a in gets] == [200] * 4
    assert len(working.seen) == 4

    posts = [requests.post(f"{nginx.url}/api/users", json={}, timeout=scaled(10)) for _ in range(4)]
    got = [method for server in upstreams for method, _, _ in server.seen if method == "POST"]
    assert len(got) == 4  # each POST reached one instance, once
    assert sorted(a.status_code for a in posts) == [200, 200, 503, 503]


def test_the_apps_own_error_passes_unchanged_and_sets_no_instance_aside(nginx, upstreams):
    for server in upstreams:
        server.status = 503  # as a gateway answers while a service behind it is down
    for _ in range(6):
        answer = requests.get(f"{nginx.url}/api/search", timeout=scaled(10))
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "upstream_unavailable", answer.text
    assert sum(len(server.seen) for server in upstreams) == 12  # both tried, every time


def test_the_gateways_metrics_are_not_served_to_the_world(nginx, upstreams):
    answer = requests.get(f"{nginx.url}/metrics", timeout=scaled(10))
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert not any(path == "/metrics" for server in upstreams for _, path, _ in server.seen)
