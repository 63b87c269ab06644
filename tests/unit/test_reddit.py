"""Live fetch, against a fake reddit served on 127.0.0.1: paging, politeness, errors."""

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from workshop.data.reddit import FetchError, fetch_subreddit
from workshop.data.sample import sample_posts

# (status, headers, body) for one request.
Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeReddit:
    """A reddit that serves /r/<name>/new.json from a list of posts, newest first."""

    base_url: str = ""
    posts: list[dict] = field(default_factory=lambda: sample_posts(250, seed=1))
    requests: list[Request] = field(default_factory=list)
    # Answers to give before the normal pages, one per request (e.g. a 429).
    scripted: list[Answer] = field(default_factory=list)
    honour_limit: bool = True

    def answer(self, request: Request) -> Answer:
        if self.scripted:
            return self.scripted.pop(0)
        start = 0
        if "after" in request.query:
            ids = [f"t3_{post['id']}" for post in self.posts]
            start = ids.index(request.query["after"]) + 1
        size = int(request.query.get("limit", 25)) if self.honour_limit else 100
        page = self.posts[start : start + size]
        more = start + size < len(self.posts)
        document = {
            "kind": "Listing",
            "data": {
                "children": [{"kind": "t3", "data": post} for post in page],
                "after": f"t3_{page[-1]['id']}" if page and more else None,
                "before": None,
            },
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(document).encode()


@pytest.fixture
def reddit() -> Iterator[FakeReddit]:
    fake = FakeReddit()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            request = Request(parts.path, query, dict(self.headers))
            fake.requests.append(request)
            status, headers, body = fake.answer(request)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class FakeClock:
    """Time that passes only when someone sleeps, so tests never wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    # Ignore any proxy settings of the machine running the tests: the fake is local.
    with requests.Session() as local:
        local.trust_env = False
        yield local


@pytest.fixture
def fetch(reddit: FakeReddit, clock: FakeClock, session: requests.Session) -> Callable:
    def fetch(subreddit: str = "python", limit: int = 100, **options):
        options = {"base_url": reddit.base_url, "session": session, **options}
        return fetch_subreddit(subreddit, limit, clock=clock, sleep=clock.sleep, **options)

    return fetch


def ids(posts: list[dict]) -> list[str]:
    return [post["id"] for post in posts]


def test_pages_through_with_after_until_it_is_null(reddit, fetch) -> None:
    report = fetch(limit=1000)
    assert ids(report.posts) == ids(reddit.posts)
    assert report.rejected == []
    assert len(reddit.requests) == 3
    assert all(request.path == "/r/python/new.json" for request in reddit.requests)
    assert "after" not in reddit.requests[0].query
    assert reddit.requests[1].query["after"] == f"t3_{reddit.posts[99]['id']}"
    assert reddit.requests[2].query["after"] == f"t3_{reddit.posts[199]['id']}"


@pytest.mark.parametrize("honour_limit", [True, False])
def test_limit_is_honoured(reddit, fetch, honour_limit: bool) -> None:
    reddit.honour_limit = honour_limit
    report = fetch(limit=150)
    assert ids(report.posts) == ids(reddit.posts[:150])
    assert len(reddit.requests) == 2
    assert all(int(request.query["limit"]) <= 100 for request in reddit.requests)


def test_a_small_limit_needs_one_request(reddit, fetch) -> None:
    assert fetch(limit=5).count == 5
    assert len(reddit.requests) == 1


def test_sends_a_descriptive_user_agent(reddit, fetch) -> None:
    fetch(limit=1)
    agent = reddit.requests[0].headers["User-Agent"]
    assert agent.startswith("workshop-reddit-aggregator/")
    assert "python-requests" not in agent


def test_reports_progress_after_each_page(fetch) -> None:
    seen: list[int] = []
    fetch(limit=1000, progress=seen.append)
    assert seen == [100, 200, 250]


def test_at_most_one_request_per_second(reddit, fetch, clock, session) -> None:
    times: list[float] = []
    session.hooks["response"].append(lambda response, **_: times.append(clock.now))
    fetch(limit=1000)
    assert len(times) == 3
    assert all(later - earlier >= 1.0 for earlier, later in zip(times, times[1:], strict=False))
    assert sum(clock.sleeps) == pytest.approx(2.0)


def test_429_is_retried_once_after_retry_after(reddit, fetch, clock) -> None:
    reddit.scripted = [(429, {"Retry-After": "7"}, b"slow down")]
    report = fetch(limit=10)
    assert report.count == 10
    assert len(reddit.requests) == 2
    assert 7 in clock.sleeps


def test_429_twice_is_a_fetch_error(reddit, fetch) -> None:
    reddit.scripted = [(429, {"Retry-After": "2"}, b"")] * 2
    with pytest.raises(FetchError, match="429"):
        fetch()
    assert len(reddit.requests) == 2


def test_server_error_is_a_fetch_error(reddit, fetch) -> None:
    reddit.scripted = [(500, {}, b"oops")]
    with pytest.raises(FetchError, match="500") as raised:
        fetch()
    assert "\n" not in str(raised.value)


def test_non_json_answer_is_a_fetch_error(reddit, fetch) -> None:
    reddit.scripted = [(200, {"Content-Type": "text/html"}, b"<html>blocked</html>")]
    with pytest.raises(FetchError, match="not JSON"):
        fetch()


def test_json_that_is_not_a_listing_is_a_fetch_error(reddit, fetch) -> None:
    reddit.scripted = [(200, {"Content-Type": "application/json"}, b'{"error": 42}')]
    with pytest.raises(FetchError, match="not a listing"):
        fetch()


def test_missing_subreddit_is_a_fetch_error(reddit, fetch) -> None:
    reddit.scripted = [(404, {}, b'{"error": 404}')]
    with pytest.raises(FetchError, match="r/nosuchplace"):
        fetch("nosuchplace")


def test_a_closed_port_says_it_cannot_reach_the_site(clock, session) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match="cannot reach 127.0.0.1") as raised:
        fetch_subreddit(
            "python", base_url=f"http://127.0.0.1:{port}", session=session, sleep=clock.sleep
        )
    assert "are you online?" in str(raised.value)


@pytest.mark.parametrize("name", ["a", "x" * 22, "py thon", "../etc", "r/python", ""])
def test_bad_subreddit_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="subreddit"):
        fetch_subreddit(name)


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_bad_limits_are_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        fetch_subreddit("python", limit)
