"""Stage 04's async gateway against real services on loopback: a composite page asks its
services at the same time, a failing service leaves a partial page that says what is
missing, the circuit breaker opens on upstream failures only, reads are retried once
within their deadline and writes never, and readiness asks every service at once.

The services are small aiohttp servers on their own event loop in a thread (as separate
processes would be): each answers its routes after a set delay and counts its calls. The
gateway runs through Quart's test app, so its HTTP session opens and closes as when served.
"At the same time" is seen, not timed: the services count the calls they hold at once, and
can hold each call until a number of them are in flight (a gateway asking one service after
the other never has two), so a busy machine makes these tests slower, never red.
"""

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web as aioweb

from tests.timing import scaled
from tooling.stages import Stage
from workshop.config import ROOT

ASYNC_STAGE = Stage("04-async", ROOT / "04-async")
POST_ID = "abc123"
POST = {
    "id": POST_ID, "title": "Structured concurrency in Python", "url": "https://example.org/tg",
    "domain": "example.org", "is_self": False, "selftext": "", "score": 42, "ups": 45,
    "downs": 3, "num_comments": 7, "subreddit": "Python", "author": "guido",
    "created_utc": 1_700_000_000, "permalink": f"/r/Python/comments/{POST_ID}/tg/",
    "topics": ["python"], "tags": [{"tag": "asyncio", "count": 2}],
}  # fmt: skip
RECOMMENDED = {**POST, "id": "rec1", "title": "A recommended post"}
READY = {"status": "ready", "dependencies": {"backlog": {"ok": True, "waiting": 0}}}
NOT_FOUND = {"error": {"code": "not_found", "message": "no such resource"}}
BROKEN = {"error": {"code": "internal_server_error", "message": "boom"}}


def error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


# --- real services on loopback --------------------------------------------------------------


# How long a held call waits for the others to arrive (scaled): past it, it is answered.
HOLD_WITHIN = 5.0


class Loopback:
    """An event loop in its own thread, serving the fake services; it counts the calls they
    hold at once (touched on the loop's thread only)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.in_flight = self.most_in_flight = self.hold_for = 0
        self.gathered: asyncio.Event | None = None

    def gather(self, calls: int) -> None:
        """From now on, count afresh, and hold every call until `calls` are in flight at
        once (or HOLD_WITHIN passed); 0: hold none."""

        async def set_up() -> None:
            self.hold_for, self.most_in_flight = calls, self.in_flight
            self.gathered = asyncio.Event()

        self.run(set_up())

    async def enter(self) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.hold_for and self.gathered is not None:
            if self.in_flight >= self.hold_for:
                self.gathered.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gathered.wait(), scaled(HOLD_WITHIN))

    def leave(self) -> None:
        self.in_flight -= 1

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=scaled(10))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=scaled(10))


class FakeService:
    """One service on a loopback port: set answers per (method, path), a delay, counted calls."""

    def __init__(self, loopback: Loopback, name: str) -> None:
        self.loopback, self.name = loopback, name
        self.answers: dict[tuple[str, str], tuple[int, Any, dict[str, str]]] = {}
        self.delay = 0.0
        self.calls: Counter[tuple[str, str]] = Counter()
        self.seen: list[aioweb.Request] = []
        self.bodies: list[bytes] = []
        self.port = 0
        self.runner: aioweb.AppRunner | None = None
        self.answer("GET", "/readyz", 200, READY)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, method: str, path: str, status: int, body: Any, **headers: str) -> None:
        self.answers[(method, path)] = (status, body, headers)

    def reset(self) -> None:
        self.calls.clear()
        self.seen.clear()
        self.bodies.clear()

    async def handle(self, request: aioweb.Request) -> aioweb.Response:
        self.calls[(request.method, request.path)] += 1
        self.seen.append(request)
        await self.loopback.enter()
        try:
            self.bodies.append(await request.read())
            await asyncio.sleep(self.delay)
        finally:
            self.loopback.leave()
        status, body, headers = self.answers.get(
            (request.method, request.path), (404, NOT_FOUND, {})
        )
        headers = {"X-Served-By": f"{self.name}@{self.port}", **headers}
        if status == 204:
            return aioweb.Response(status=204, headers=headers)
        return aioweb.json_response(body, status=status, headers=headers)

    def start(self) -> "FakeService":
        """Listen (again on the same port, after a stop)."""

        async def started() -> None:
            app = aioweb.Application()
            app.router.add_route("*", "/{tail:.*}", self.handle)
            self.runner = aioweb.AppRunner(app, access_log=None)
            await self.runner.setup()
            site = aioweb.TCPSite(self.runner, "127.0.0.1", self.port)
            await site.start()
            self.port = self.runner.addresses[0][1]

        self.loopback.run(started())
        return self

    def stop(self) -> None:
        """Stop listening: calls to the port are refused."""
        if self.runner:
            self.loopback.run(self.runner.cleanup())
            self.runner = None


@pytest.fixture(scope="module")
def loopback() -> Iterator[Loopback]:
    loop = Loopback()
    yield loop
    loop.close()


def env_name(service: str) -> str:
    return service.upper().replace("-", "_") + "_URL"


@pytest.fixture
def services(loopback, monkeypatch) -> Iterator[dict[str, FakeService]]:
    """Every service the gateway knows, each a fake on its own port, named in the environment."""
    upstreams = ASYNC_STAGE.load("gateway.upstreams")
    fakes = {name: FakeService(loopback, name).start() for name in upstreams.SERVICES}
    for name, fake in fakes.items():
        monkeypatch.setenv(env_name(name), fake.url)
    monkeypatch.delenv("REGISTRY_URL", raising=False)
    monkeypatch.setenv("RECOMMEND_CANARY_PERCENT", "0")
    fakes["recommend-v1"].answer(
        "GET", "/api/recommendations", 200, {"items": [RECOMMENDED]}, **{"X-Personal": "false"}
    )
    fakes["tag"].answer("GET", "/api/tags", 200, {"items": [{"tag": "asyncio", "count": 2}]})
    fakes["tag"].answer("GET", f"/api/posts/{POST_ID}/tags/mine", 200, {"items": ["structured"]})
    fakes["search"].answer("GET", f"/api/posts/{POST_ID}", 200, POST)
    yield fakes
    loopback.gather(0)  # the next test's calls are held by no one
    for fake in fakes.values():
        fake.stop()


@contextlib.asynccontextmanager
async def gateway(user: str | None = None) -> AsyncIterator[Any]:
    """The 04 gateway, serving (its HTTP session open), and a client; logged in as `user`."""
    app = ASYNC_STAGE.load("gateway").create_app({"TESTING": True})
    async with app.test_app() as serving:
        client = serving.test_client()
        if user:
            async with client.session_transaction() as session:
                session["user"], session["token"] = user, f"token-of-{user}"
        yield client


async def timed(call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    response = await call
    return response, time.perf_counter() - started


async def text(response: Any) -> str:
    return await response.get_data(as_text=True)


# --- composite pages: at the same time --------------------------------------------------------

DELAY = 0.2


@contextlib.asynccontextmanager
async def registered(registry: Any, registry_url: str, fakes: list) -> AsyncIterator[None]:
    """Keep fake search instances in the registry (their heartbeats) for the block."""
    beats = [registry.Heartbeat(registry_url, "search", fake.url) for fake in fakes]
    for beat in beats:
        await beat.start()
    try:
        lookup = registry.Registry(registry_url)
        for _ in range(50):  # the first beats land within moments
            if len(await lookup.instances("search")) == len(fakes):
                break
            await asyncio.sleep(0.05)
        await lookup.close()
        yield
    finally:
        for beat in beats:
            await beat.stop()


def test_the_home_page_asks_its_services_at_the_same_time(services, loopback):
    async def scenario() -> float:
        async with gateway() as client:
            await client.get("/")  # warm up: templates compiled, connections open
            loopback.gather(2)
            response, elapsed = await timed(client.get("/"))
            page = await text(response)
        assert response.status_code == 200
        assert RECOMMENDED["title"] in page and "#asyncio" in page
        return elapsed

    elapsed = asyncio.run(scenario())
    print(f"\nhome page, its 2 services held until both are asked: {elapsed * 1000:.0f} ms")
    assert loopback.most_in_flight == 2  # asked one after the other, never 2 at once


def test_the_post_page_asks_for_the_post_and_the_users_tags_at_the_same_time(services, loopback):
    async def scenario() -> float:
        async with gateway(user="alice") as client:
            await client.get(f"/posts/{POST_ID}")
            loopback.gather(2)
            response, elapsed = await timed(client.get(f"/posts/{POST_ID}"))
            page = await text(response)
        assert response.status_code == 200
        assert POST["title"] in page and "#structured" in page  # the user's own tag
        return elapsed

    elapsed = asyncio.run(scenario())
    print(f"\npost page, its 2 services held until both are asked: {elapsed * 1000:.0f} ms")
    assert loopback.most_in_flight == 2
    assert services["tag"].seen[-1].headers["Authorization"] == "Bearer token-of-alice"


def test_readiness_asks_every_service_at_once(services, loopback):
    for fake in services.values():
        fake.delay = DELAY / 2
    loopback.gather(len(services))

    async def scenario() -> tuple[Any, dict[str, Any], float]:
        async with gateway() as client:
            response, elapsed = await timed(client.get("/readyz"))
            return response, await response.get_json(), elapsed

    response, body, elapsed = asyncio.run(scenario())
    print(f"\nreadiness, {len(services)} services of {DELAY * 500:.0f} ms each: "
          f"{elapsed * 1000:.0f} ms")  # fmt: skip
    assert response.status_code == 200, body
    assert set(body["dependencies"]) == set(services)
    assert all(state["ok"] and state["ms"] >= DELAY / 2 * 1000 * 0.9
               for state in body["dependencies"].values())  # fmt: skip
    assert loopback.most_in_flight == len(services)


IN_FLIGHT = 64


def test_one_gateway_keeps_many_calls_in_flight(services, loopback):
    async def scenario() -> float:
        async with gateway() as client:
            await client.get("/api/tags")
            loopback.gather(IN_FLIGHT)
            started = time.perf_counter()
            answers = await asyncio.gather(*(client.get("/api/tags") for _ in range(IN_FLIGHT)))
            elapsed = time.perf_counter() - started
        assert [a.status_code for a in answers] == [200] * IN_FLIGHT
        return elapsed

    elapsed = asyncio.run(scenario())
    print(f"\n{IN_FLIGHT} API calls at once, held until all are asked: {elapsed * 1000:.0f} ms")
    assert services["tag"].calls[("GET", "/api/tags")] == IN_FLIGHT + 1
    # All at once: not one by one, nor in batches of a pool of 10.
    assert loopback.most_in_flight == IN_FLIGHT


def test_the_gateway_is_not_ready_until_every_service_is(services):
    # A subscriber that started empty answers 503 until its replay is applied (its bootstrap).
    bootstrapping = {"ok": False, "replayed": 10, "through": 250}
    services["search"].answer(
        "GET", "/readyz", 503,
        {"status": "degraded", "dependencies": {"bootstrap": bootstrapping,
                                                "backlog": {"ok": True, "waiting": 240}}},
    )  # fmt: skip
    services["tag"].stop()

    async def scenario() -> tuple[Any, dict[str, Any]]:
        async with gateway() as client:
            response = await client.get("/readyz")
            return response, await response.get_json()

    response, body = asyncio.run(scenario())
    assert response.status_code == 503
    states = body["dependencies"]
    assert states["search"]["ok"] is False and states["search"]["bootstrap"] == bootstrapping
    assert states["tag"]["ok"] is False
    assert all(states[name]["ok"] for name in services if name not in ("search", "tag"))
    assert body["settled"] is False


LOADING = {"status": "degraded", "dependencies": {"bootstrap": {"ok": False, "replayed": 10}}}
NO_RESULTS = {"query": "x", "page": 1, "per_page": 20, "total": 0, "items": []}


def test_a_service_still_loading_gets_no_call_and_the_answer_says_it_is_starting(services):
    search = services["search"]
    search.answer("GET", "/readyz", 503, LOADING)  # its replay is not in: it would say 0
    search.answer("GET", "/api/search", 200, NO_RESULTS)

    async def scenario() -> dict[str, Any]:
        async with gateway() as client:
            api, page = await client.get("/api/search?q=x"), await client.get("/search?q=x")
            seen = {"api": api, "body": await api.get_json(), "page": page,
                    "text": await text(page),
                    "calls_while_loading": search.calls[("GET", "/api/search")]}  # fmt: skip
            search.answer("GET", "/readyz", 200, READY)  # the replay is in
            deadline = time.monotonic() + scaled(5)
            while (answer := await client.get("/api/search?q=x")).status_code != 200:
                assert time.monotonic() < deadline, await answer.get_json()
                await asyncio.sleep(0.05)
            return seen

    seen = asyncio.run(scenario())
    assert seen["calls_while_loading"] == 0
    assert seen["api"].status_code == 503 and seen["body"]["error"]["code"] == "service_starting"
    assert seen["api"].headers["Retry-After"] == "1"
    assert seen["page"].status_code == 503 and "The search service is starting" in seen["text"]
    assert search.calls[("GET", "/api/search")] == 1


def test_a_service_whose_broker_is_down_still_gets_calls(services):
    # Every service's /readyz says 503 while the broker is down: its reads are still right.
    outage = {
        "status": "degraded",
        "dependencies": {"broker": {"ok": False}, "bootstrap": {"ok": True}},
    }
    services["search"].answer("GET", "/readyz", 503, outage)
    services["search"].answer("GET", "/api/search", 200, NO_RESULTS)

    async def scenario() -> Any:
        async with gateway() as client:
            return await client.get("/api/search?q=x")

    assert asyncio.run(scenario()).status_code == 200


# --- partial pages ------------------------------------------------------------------------


def test_a_failing_service_leaves_a_partial_home_page_that_says_what_is_missing(services):
    services["tag"].answer("GET", "/api/tags", 500, BROKEN)
    services["recommend-v1"].stop()

    async def scenario() -> tuple[int, str]:
        async with gateway() as client:
            response = await client.get("/")
            return response.status_code, await text(response)

    status, page = asyncio.run(scenario())
    assert status == 200
    assert "Recommendations are unavailable right now." in page
    assert "Popular tags are unavailable right now." in page
    assert "No tags yet." not in page  # unavailable is not empty


def test_a_failing_tag_service_leaves_the_post_page_without_the_users_tags(services):
    services["tag"].answer("GET", f"/api/posts/{POST_ID}/tags/mine", 500, BROKEN)

    async def scenario() -> tuple[int, str]:
        async with gateway(user="alice") as client:
            response = await client.get(f"/posts/{POST_ID}")
            return response.status_code, await text(response)

    status, page = asyncio.run(scenario())
    assert status == 200
    assert POST["title"] in page and "#asyncio" in page  # search's copy of the tags
    assert "Your tags are unavailable right now." in page


def test_without_the_post_the_post_page_is_an_error_page(services):
    services["search"].stop()

    async def scenario() -> tuple[Any, str]:
        async with gateway(user="alice") as client:
            response = await client.get(f"/posts/{POST_ID}")
            return response, await text(response)

    response, page = asyncio.run(scenario())
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert "The search service is not answering." in page


def test_a_post_search_does_not_know_is_not_found(services):
    async def scenario() -> tuple[Any, str]:
        async with gateway() as client:
            response = await client.get("/posts/nosuchpost")
            return response, await text(response)

    response, page = asyncio.run(scenario())
    assert response.status_code == 404 and "No post with that id." in page
    assert services["tag"].calls[("GET", "/api/posts/nosuchpost/tags/mine")] == 0


# --- the API: routing, errors, retries, the breaker ---------------------------------------


def test_the_api_passes_calls_and_answers_through(services):
    services["search"].answer("GET", "/api/search", 200, {"query": "q", "items": []})
    services["recommend-v2"].answer("GET", "/api/recommendations", 200, {"items": []},
                                    **{"X-Recommend-Version": "2"})  # fmt: skip
    services["users"].answer("POST", "/api/users", 201, {"username": "bob"})

    async def scenario() -> list[Any]:
        async with gateway() as client:
            found = await client.get("/api/search?q=hello%20world&q=two&page=2")
            v2 = await client.get("/api/recommendations", headers={"X-Recommend-Version": "2"})
            created = await client.post("/api/users", json={"username": "bob", "password": "x"})
            too_big = await client.post(
                "/api/users",
                data=b"x" * (64 * 1024 + 1),
                headers={"Content-Type": "application/json"},
            )
            return [found, v2, created, too_big, await too_big.get_json()]

    found, v2, created, too_big, refusal = asyncio.run(scenario())
    assert found.status_code == 200 and found.headers["X-Served-By"].startswith("search@")
    assert services["search"].seen[-1].query.getall("q") == ["hello world", "two"]
    assert services["search"].seen[-1].query["page"] == "2"
    assert v2.status_code == 200 and v2.headers["X-Recommend-Version"] == "2"
    assert services["recommend-v2"].calls[("GET", "/api/recommendations")] == 1
    assert created.status_code == 201
    assert json.loads(services["users"].bodies[-1]) == {"username": "bob", "password": "x"}
    assert services["users"].seen[-1].headers["Content-Type"] == "application/json"
    assert too_big.status_code == 413 and refusal["error"]["code"] == "request_entity_too_large"
    assert services["users"].calls[("POST", "/api/users")] == 1  # the big body never left


def test_a_read_is_retried_once_and_a_write_never(services):
    services["search"].answer("GET", "/api/search", 500, BROKEN)
    services["tag"].answer("POST", f"/api/posts/{POST_ID}/tags", 500, BROKEN)

    async def scenario() -> list[Any]:
        async with gateway() as client:
            read = await client.get("/api/search?q=x")
            write = await client.post(f"/api/posts/{POST_ID}/tags", json={"tag": "a"})
            return [read, await read.get_json(), write]

    read, body, write = asyncio.run(scenario())
    assert read.status_code == 503 and body["error"]["code"] == "upstream_unavailable"
    assert services["search"].calls[("GET", "/api/search")] == 2
    assert write.status_code == 503
    assert services["tag"].calls[("POST", f"/api/posts/{POST_ID}/tags")] == 1


def test_a_services_own_errors_pass_through_unchanged_and_never_retried(services):
    busy = error("busy", "ingest is busy; try again in a minute")
    services["ingest"].answer("GET", "/api/jobs/j1", 503, busy)
    services["search"].answer("GET", "/api/posts/zzz", 404, NOT_FOUND)

    async def scenario() -> list[Any]:
        async with gateway() as client:
            answers = [await client.get("/api/jobs/j1"), await client.get("/api/posts/zzz")]
            return [(a.status_code, await a.get_json()) for a in answers]

    assert asyncio.run(scenario()) == [(503, busy), (404, NOT_FOUND)]
    assert services["ingest"].calls[("GET", "/api/jobs/j1")] == 1
    assert services["search"].calls[("GET", "/api/posts/zzz")] == 1


def test_a_retry_fits_in_the_calls_deadline(services, monkeypatch):
    short = aiohttp.ClientTimeout(total=0.3, sock_connect=0.5)
    monkeypatch.setattr(ASYNC_STAGE.load("gateway.client"), "TIMEOUT", short)

    async def scenario() -> tuple[Any, float]:
        async with gateway() as client:
            await client.get("/readyz")  # tag said it is ready: calls go to it from now on
            services["tag"].delay = scaled(2.0)  # it would answer long after the deadline
            return await timed(client.get("/api/tags"))

    response, elapsed = asyncio.run(scenario())
    assert response.status_code == 503
    # One timeout, no second try past the deadline: answered without waiting for the service.
    assert elapsed < services["tag"].delay
    assert services["tag"].calls[("GET", "/api/tags")] == 1


@pytest.mark.parametrize("outage", ["stopped", "failing slowly"])
def test_an_upstream_failing_opens_its_breaker_and_the_gateway_answers_at_once(services, outage):
    tag = services["tag"]
    if outage == "stopped":
        tag.stop()
    else:
        tag.delay = DELAY
        tag.answer("GET", "/api/tags", 500, BROKEN)

    async def scenario() -> dict[str, Any]:
        async with gateway() as client:
            failing = []
            for _ in range(3):  # 2 tries per read: 6 failures, past the threshold (5)
                response, elapsed = await timed(client.get("/api/tags"))
                assert response.status_code == 503
                failing.append(elapsed)
            if outage == "stopped":
                tag.start()  # back on its port: an open breaker still sends it nothing
            tag.reset()
            api, at_once = await timed(client.get("/api/tags"))
            home = await client.get("/")
            return {"failing": failing, "at_once": at_once, "api": api, "api_body":
                    await api.get_json(), "home": home, "page": await text(home)}  # fmt: skip

    seen = asyncio.run(scenario())
    print(f"\n{outage}: failing calls {[round(t * 1000) for t in seen['failing']]} ms, "
          f"breaker open {seen['at_once'] * 1000:.1f} ms")  # fmt: skip
    assert seen["api"].status_code == 503
    assert seen["api_body"]["error"]["code"] == "upstream_unavailable"
    assert seen["home"].status_code == 200
    assert "Popular tags are unavailable right now." in seen["page"]
    assert sum(tag.calls.values()) == 0  # nothing reached it while the breaker is open
    # At once: no call, no pause for a second try (each failing read waited for one).
    assert seen["at_once"] < min(seen["failing"]) / 2


def test_a_clients_bad_request_never_opens_the_breaker(services):
    invalid = error("invalid_tag", "a tag is 1-32 lower-case letters, digits or '-'")
    services["tag"].answer("POST", f"/api/posts/{POST_ID}/tags", 400, invalid)
    services["tag"].answer("GET", f"/api/posts/{POST_ID}/tags/nope", 404, NOT_FOUND)

    async def scenario() -> tuple[list[Any], Any]:
        async with gateway() as client:
            answers = []
            for _ in range(12):  # more than twice the threshold
                refused = await client.post(f"/api/posts/{POST_ID}/tags", json={"tag": "B A D"})
                answers.append((refused.status_code, await refused.get_json()))
            services["tag"].answer("POST", f"/api/posts/{POST_ID}/tags", 201, {"tag": "good"})
            accepted = await client.post(f"/api/posts/{POST_ID}/tags", json={"tag": "good"})
            return answers, accepted

    answers, accepted = asyncio.run(scenario())
    assert answers == [(400, invalid)] * 12
    assert accepted.status_code == 201  # the breaker stayed closed
    assert services["tag"].calls[("POST", f"/api/posts/{POST_ID}/tags")] == 13


# --- the registry -------------------------------------------------------------------------


@pytest.fixture
def registry_url(redis_url: str) -> str:
    """A Redis database of the test's own: the stage tests register their instances in theirs."""
    return redis_url


def test_the_gateway_takes_turns_over_the_instances_in_the_registry(
    services, loopback, registry_url, monkeypatch
):
    registry = ASYNC_STAGE.load("chassis.registry")
    second = FakeService(loopback, "search").start()
    second.answer("GET", f"/api/posts/{POST_ID}", 200, POST)
    monkeypatch.setenv("REGISTRY_URL", registry_url)
    monkeypatch.delenv("SEARCH_URL")  # only the registry knows where search is

    async def scenario() -> list[str]:
        fakes = [services["search"], second]
        async with registered(registry, registry_url, fakes), gateway() as client:
            answers = [await client.get(f"/api/posts/{POST_ID}") for _ in range(4)]
            return [a.headers["X-Served-By"] for a in answers]

    try:
        served_by = asyncio.run(scenario())
    finally:
        second.stop()
    assert sorted(served_by) == sorted([f"search@{services['search'].port}",
                                        f"search@{second.port}"] * 2)  # fmt: skip
    assert served_by[0] != served_by[1]


def test_an_instance_in_the_registry_that_is_still_loading_is_passed_over(
    services, loopback, registry_url, monkeypatch
):
    registry = ASYNC_STAGE.load("chassis.registry")
    loading = FakeService(loopback, "search").start()
    loading.answer("GET", "/readyz", 503, LOADING)  # registered, yet its replay is not in
    loading.answer("GET", f"/api/posts/{POST_ID}", 200, POST)
    monkeypatch.setenv("REGISTRY_URL", registry_url)
    monkeypatch.delenv("SEARCH_URL")

    async def scenario() -> list[tuple[int, str]]:
        fakes = [services["search"], loading]
        async with registered(registry, registry_url, fakes), gateway() as client:
            answers = [await client.get(f"/api/posts/{POST_ID}") for _ in range(4)]
            return [(a.status_code, a.headers["X-Served-By"]) for a in answers]

    try:
        served = asyncio.run(scenario())
    finally:
        loading.stop()
    assert served == [(200, f"search@{services['search'].port}")] * 4
    assert loading.calls[("GET", f"/api/posts/{POST_ID}")] == 0


def test_a_stopped_heartbeat_leaves_the_registry_at_once(registry_url):
    registry = ASYNC_STAGE.load("chassis.registry")

    async def scenario() -> tuple[list[str], list[str]]:
        beat = registry.Heartbeat(registry_url, "tag", "http://127.0.0.1:1")
        lookup = registry.Registry(registry_url)
        lookup.CACHE_SECONDS = 0
        await beat.start()
        for _ in range(50):
            if await lookup.instances("tag"):
                break
            await asyncio.sleep(0.05)
        listed = await lookup.instances("tag")
        await beat.stop()
        after = await lookup.instances("tag")
        await lookup.close()
        return listed, after

    assert asyncio.run(scenario()) == (["http://127.0.0.1:1"], [])
