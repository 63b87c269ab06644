"""How the gateway calls the services: a timeout on every call, retries only for reads,
a circuit breaker per service, and the services' own errors passed through unchanged.

Async: a call awaits its answer, so one process keeps many calls in flight on one event
loop (a page asks its services at the same time) instead of a thread per waiting call.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from purgatory.domain.model import OpenedState
from quart import Quart, current_app, g, request
from werkzeug.datastructures import MultiDict

from gateway.upstreams import NoInstance, Starting, Upstreams
from workshop import logs
from workshop.contract import ApiError
from workshop.platform.instances import health, listed, readiness, takes_calls
from workshop.platform.metrics import Metrics

# Connect fast, answer within seconds; ingest works inside its call, so it gets longer.
TIMEOUT = aiohttp.ClientTimeout(total=5.0, sock_connect=0.5)
LONG_TIMEOUT = aiohttp.ClientTimeout(total=600.0, sock_connect=0.5)
# Hashing a password is slow on purpose (~0.1 s of CPU): a crowd registering or logging in
# at once waits its turn, which is worth waiting for (a 503 would make them start over).
PASSWORD_TIMEOUT = aiohttp.ClientTimeout(total=30.0, sock_connect=0.5)
# A read (idempotent) that fails - no answer, a 5xx - is tried once more, if the call's time
# allows; with several instances, round robin sends it to another one. An open circuit
# answers at once: no second try, no pause.
READ_ATTEMPTS = 2
RETRY_PAUSE = 0.05
MIN_WAIT = 0.1  # the least a try waits for its answer, however little of the call's time is left
# /readyz asks every instance at once, each within PING_SECONDS (a refused connection is
# tried once more meanwhile): many instances make it no slower than one.
PING_SECONDS = 2.0
PING_CONNECT = 0.5
PING_ATTEMPTS = 2
# Calls in flight at once over the one pooled session (each page holds two or three).
MAX_CONNECTIONS = 256


class UpstreamUnavailable(ApiError):
    """A service did not answer: down, too slow, or its circuit is open."""

    def __init__(self, service: str) -> None:
        super().__init__(503, "upstream_unavailable", f"the {service} service is not answering")
        self.service = service


def timeout_for(method: str, path: str) -> Any:
    """Return how long a call passed on may take: ingest works inside its call, and a
    password is hashed (slow on purpose); every other call answers within seconds."""
    if path == "/api/ingest":
        return LONG_TIMEOUT
    if method == "POST" and path in ("/api/users", "/api/tokens"):
        return PASSWORD_TIMEOUT
    return TIMEOUT


def init_app(app: Quart) -> None:
    """Give the app one pooled HTTP session and the routing table while it serves."""

    @app.before_serving
    async def open_session() -> None:
        # Made inside the serving loop: a session, its connector and the registry's
        # connections belong to the loop that made them.
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
        app.extensions["http"] = aiohttp.ClientSession(connector=connector)
        app.extensions["upstreams"] = Upstreams.from_environment()

    @app.after_serving
    async def close_session() -> None:
        await app.extensions.pop("http").close()
        await app.extensions.pop("upstreams").close()


def upstreams() -> Upstreams:
    return current_app.extensions["upstreams"]


def recommend_service() -> str:
    """Return the recommend version this request goes to (header, else canary draw)."""
    version = upstreams().recommend_version(request.headers.get("X-Recommend-Version"))
    return f"recommend-v{version}"


async def call(
    service: str,
    method: str,
    path: str,
    timeout: aiohttp.ClientTimeout | None = None,
    stream: bool = False,
    **kwargs: Any,
) -> aiohttp.ClientResponse:
    """Call a service; raise UpstreamUnavailable if it cannot answer.

    The answer's body is read inside the call (its time, its breaker), unless `stream`:
    then the caller reads it, and releases the connection (see `body_of`).
    """
    headers = {**logs.passed_on(), **kwargs.pop("headers", {})}  # the request id goes along
    if g.get("token"):
        headers["Authorization"] = f"Bearer {g.token}"
    timeout = timeout or TIMEOUT
    deadline = time.monotonic() + timeout.total  # a retry fits in the call's time or not at all
    attempts = READ_ATTEMPTS if method == "GET" else 1
    breaker = await upstreams().breaker(service)
    for attempt in range(attempts):
        address = None
        try:
            async with breaker:
                # Starting (503) if no instance takes calls yet; the breaker lets it pass.
                address = await admitted_address(service)
                # At least MIN_WAIT: an admission that took the time leaves the call a try
                # (and aiohttp reads a total of 0 or less as no timeout at all).
                left = aiohttp.ClientTimeout(
                    total=max(MIN_WAIT, deadline - time.monotonic()),
                    sock_connect=timeout.sock_connect,
                )
                answer = await http().request(
                    method, address + path, headers=headers, timeout=left, **kwargs
                )
                if answer.status >= 500 and answer.status != 503:
                    answer.release()
                    raise UpstreamUnavailable(service)  # counts against the breaker
                if not stream:
                    await answer.read()
                return answer
        except OpenedState:
            break  # no try would reach the service until the breaker lets one through
        except (aiohttp.ClientError, TimeoutError, NoInstance, UpstreamUnavailable) as error:
            if address and isinstance(error, aiohttp.ClientConnectionError):
                upstreams().admissions.forget(address)  # nobody there: ask it first next time
            if attempt + 1 == attempts or deadline - time.monotonic() <= 2 * RETRY_PAUSE:
                break
            await asyncio.sleep(RETRY_PAUSE)
    current_app.extensions["metrics"].upstream_error(service)
    raise UpstreamUnavailable(service)


async def admitted_address(service: str) -> str:
    """Return the address of an instance that takes calls, taking turns: one still loading
    is passed over for the next; raise Starting when every one is."""
    passed: set[str] = set()
    while True:
        address = await upstreams().address(service)
        if address in passed:
            raise Starting(service)
        try:
            await admit(service, address)
            return address
        except Starting:
            passed.add(address)


async def admit(service: str, address: str) -> None:
    """Let a call go to an instance only once its /readyz has said it takes calls (its
    start-up data is in): ask it first, again at most every Admissions.RECHECK_SECONDS
    while it is loading, and raise Starting meanwhile (and while one that never took calls
    does not answer in time: its port takes connections, its worker is not up yet). No
    connection, or no answer from one that took calls before, raises as a call would."""
    admissions = upstreams().admissions
    if admissions.admitted(address):
        return
    if admissions.due(address):
        timeout = aiohttp.ClientTimeout(total=PING_SECONDS, sock_connect=PING_CONNECT)
        try:
            async with http().get(address + "/readyz", headers=logs.passed_on(),
                                  timeout=timeout) as answer:  # fmt: skip
                text = await answer.text()
        except TimeoutError:
            if admissions.served(address):
                raise  # it took calls before and does not answer now: down
            admissions.record(address, False)  # it never has: booting, or busy loading
            raise Starting(service) from None
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        admissions.record(address, takes_calls(health(answer.status), body))
    if not admissions.admitted(address):
        raise Starting(service)


async def sample_upstreams(metrics: Metrics) -> None:
    """Set on /metrics each breaker's state (a service never called has none yet) and how
    many instances of each service there are to call."""
    metrics.set_breakers(upstreams().breaker_states())
    metrics.set_instances(await upstreams().instance_counts())


# A user users said exists stays known this long (users are never deleted; only an emptied
# store forgets them): one call to users per token a minute, not one per request.
KNOWN_USER_SECONDS = 60.0
_known_tokens: dict[str, float] = {}


async def known_user(username: str, token: str | None) -> bool:
    """Tell whether the user a token names exists: the users service decides (it answers
    401 to a token of a user it does not have). If users cannot answer, trust the signature."""
    if not token:
        return False
    if _known_tokens.get(token, 0.0) > time.monotonic():
        return True
    headers = {"Authorization": f"Bearer {token}"}
    try:
        answer = await call("users", "GET", "/api/me/preferences", headers=headers)
    except ApiError:  # users is down: the signature is what we have
        return True
    if answer.status == 401:
        return False
    if len(_known_tokens) > 10_000:
        _known_tokens.clear()
    _known_tokens[token] = time.monotonic() + KNOWN_USER_SECONDS
    return True


def http() -> aiohttp.ClientSession:
    return current_app.extensions["http"]


async def body_of(answer: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """Yield a streamed answer's body as it arrives, then give its connection back."""
    async with answer:
        async for chunk in answer.content.iter_any():
            yield chunk


async def answer_of(response: aiohttp.ClientResponse, *expected: int) -> Any:
    """Return a service's JSON answer, or raise its error (the contract's shape) as ours."""
    if response.status in expected:
        return await response.json(content_type=None)  # None for an empty body
    try:
        error = (await response.json(content_type=None))["error"]
        raise ApiError(response.status, error["code"], error["message"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(502, "upstream_error", f"a service answered {response.status}") from None


async def ping(service: str) -> dict[str, Any]:
    """Return a service's readiness for the gateway's /readyz: every instance there is to
    call (the registry's, else the one address) asked at once, each with its own answer."""
    instances = await upstreams().instances(service)
    session, headers = http(), logs.passed_on()
    checked = list(
        await asyncio.gather(*(ping_instance(session, instance, headers) for instance in instances))
    )
    upstreams().admissions.record_checked(checked)  # calls go only to those that take them
    return readiness(checked)


async def ping_instance(
    session: aiohttp.ClientSession, instance: dict[str, Any], headers: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ask one instance's /readyz; return it as listed (address, version, started, status:
    "ready", "not ready" or "unreachable", ms) and the answer's body (empty if none)."""
    started = time.perf_counter()
    deadline = started + PING_SECONDS  # a second try fits in the check's time or not at all
    status, body = None, None
    for _ in range(PING_ATTEMPTS):
        left = deadline - time.perf_counter()
        if left <= 0:
            break
        try:
            timeout = aiohttp.ClientTimeout(total=left, sock_connect=min(PING_CONNECT, left))
            async with session.get(instance["address"] + "/readyz", headers=headers,
                                   timeout=timeout) as answer:  # fmt: skip
                text = await answer.text()
        except (aiohttp.ClientError, TimeoutError):
            await asyncio.sleep(min(RETRY_PAUSE, max(0.0, deadline - time.perf_counter())))
            continue
        status = answer.status
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        break
    return listed(instance, status, body, started), body if isinstance(body, dict) else {}


# --- what the pages need -----------------------------------------------------------------


async def get_post(post_id: str) -> dict[str, Any] | None:
    """Return one post, or None."""
    response = await call("search", "GET", f"/api/posts/{post_id}")
    return None if response.status == 404 else await answer_of(response, 200)


async def search(args: MultiDict[str, str]) -> dict[str, Any]:
    """Return the search service's answer for the query's own arguments (q, page, per_page)."""
    params = list(args.items(multi=True))
    return await answer_of(await call("search", "GET", "/api/search", params=params), 200)


async def recommendations(limit: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Return (posts, the topics they were picked by): recommend knows the user's topics
    from its own copy, so it says which it used (none: popular posts for everyone)."""
    service = recommend_service()
    response = await call(service, "GET", "/api/recommendations", params={"limit": limit})
    topics = [t for t in response.headers.get("X-Topics", "").split(",") if t]
    return (await answer_of(response, 200))["items"], topics


async def tag_counts(limit: int = 0) -> list[dict[str, Any]]:
    """Return every tag with the number of posts carrying it, most used first."""
    items = (await answer_of(await call("tag", "GET", "/api/tags"), 200))["items"]
    return items[:limit] if limit else items


async def posts_with_tag(tag: str) -> list[dict[str, Any]]:
    """Return the posts carrying a tag."""
    response = await call("search", "GET", f"/api/tags/{tag}/posts")
    return (await answer_of(response, 200))["items"]


async def user_tags(post_id: str) -> list[str]:
    """Return the tags the calling user gave a post."""
    response = await call("tag", "GET", f"/api/posts/{post_id}/tags/mine")
    return (await answer_of(response, 200))["items"]


async def add_tag(post_id: str, tag: str) -> None:
    """Tag a post as the calling user."""
    response = await call("tag", "POST", f"/api/posts/{post_id}/tags", json={"tag": tag})
    await answer_of(response, 201)


async def remove_tag(post_id: str, tag: str) -> None:
    """Withdraw the calling user's tag."""
    await answer_of(await call("tag", "DELETE", f"/api/posts/{post_id}/tags/{tag}"), 204)


async def create_user(username: str, password: str) -> None:
    """Register a user, or raise 400/409."""
    body = {"username": username, "password": password}
    response = await call("users", "POST", "/api/users", json=body, timeout=PASSWORD_TIMEOUT)
    await answer_of(response, 201)


async def issue_token(username: str, password: str) -> str | None:
    """Return a token for a username and password, or None if they don't match."""
    body = {"username": username, "password": password}
    response = await call("users", "POST", "/api/tokens", json=body, timeout=PASSWORD_TIMEOUT)
    return None if response.status == 401 else (await answer_of(response, 200))["token"]


async def get_topics(username: str | None) -> list[str]:
    """Return the calling user's preferred topics (none for a visitor)."""
    if username is None:
        return []
    return (await answer_of(await call("users", "GET", "/api/me/preferences"), 200))["topics"]


async def set_topics(topics: list[str]) -> None:
    """Store the calling user's preferred topics."""
    response = await call("users", "PUT", "/api/me/preferences", json={"topics": topics})
    await answer_of(response, 200)
