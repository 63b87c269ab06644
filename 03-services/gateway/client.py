"""How the gateway calls the services: a timeout on every call, retries only for reads,
a circuit breaker per service, and the services' own errors passed through unchanged."""

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from flask import Flask, current_app, g, request
from purgatory.domain.model import OpenedState
from werkzeug.datastructures import MultiDict

from gateway import strangler
from gateway.upstreams import NoInstance, Starting, Upstreams
from workshop import logs
from workshop.contract import ApiError
from workshop.platform.instances import health, listed, readiness, takes_calls
from workshop.platform.metrics import Metrics

# Connect fast, answer within seconds; ingest works inside its call, so it gets longer.
TIMEOUT = (0.5, 5.0)
LONG_TIMEOUT = (0.5, 600.0)
# Hashing a password is slow on purpose (~0.1 s of CPU): a crowd registering or logging in
# at once waits its turn, which is worth waiting for (a 503 would make them start over).
PASSWORD_TIMEOUT = (0.5, 30.0)
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
PINGS_AT_ONCE = 32


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


def init_app(app: Flask) -> None:
    """Give the app one pooled HTTP session, the routing table, and threads for /readyz to
    ask every instance at once."""
    app.extensions["http"] = requests.Session()
    app.extensions["upstreams"] = Upstreams.from_environment()
    app.extensions["pings"] = ThreadPoolExecutor(PINGS_AT_ONCE, thread_name_prefix="readyz")


def upstreams() -> Upstreams:
    return current_app.extensions["upstreams"]


def recommend_service() -> str:
    """Return the recommend version this request goes to (header, else canary draw)."""
    version = upstreams().recommend_version(request.headers.get("X-Recommend-Version"))
    return f"recommend-v{version}"


@strangler.routing  # in a migration, the monolith answers the verbs not moved yet
def call(
    service: str,
    method: str,
    path: str,
    timeout: tuple[float, float] | None = None,
    **kwargs: Any,
) -> requests.Response:
    """Call a service; raise UpstreamUnavailable if it cannot answer.

    The timeout is (to connect, to answer): TIMEOUT unless the call says.
    """
    headers = {**logs.passed_on(), **kwargs.pop("headers", {})}  # the request id goes along
    if g.get("token"):
        headers["Authorization"] = f"Bearer {g.token}"
    timeout = timeout or TIMEOUT
    connect, read = timeout
    deadline = time.monotonic() + read  # a retry fits in the call's time or not at all
    attempts = READ_ATTEMPTS if method == "GET" else 1
    breaker = upstreams().breaker(service)
    for attempt in range(attempts):
        address = None
        try:
            with breaker:
                # Starting (503) if no instance takes calls yet; the breaker lets it pass.
                address = admitted_address(service)
                # At least MIN_WAIT: an admission that took the time leaves the call a try.
                left = (connect, max(MIN_WAIT, deadline - time.monotonic()))
                answer = http().request(
                    method, address + path, headers=headers, timeout=left, **kwargs
                )
                if answer.status_code >= 500 and answer.status_code != 503:
                    raise UpstreamUnavailable(service)  # counts against the breaker
                return answer
        except OpenedState:
            break  # no try would reach the service until the breaker lets one through
        except (requests.RequestException, NoInstance, UpstreamUnavailable) as error:
            if address and isinstance(error, requests.ConnectionError):
                upstreams().admissions.forget(address)  # nobody there: ask it first next time
            if attempt + 1 == attempts or deadline - time.monotonic() <= 2 * RETRY_PAUSE:
                break
            time.sleep(RETRY_PAUSE)
    current_app.extensions["metrics"].upstream_error(service)
    raise UpstreamUnavailable(service)


def admitted_address(service: str) -> str:
    """Return the address of an instance that takes calls, taking turns: one still loading
    is passed over for the next; raise Starting when every one is."""
    passed: set[str] = set()
    while True:
        address = upstreams().address(service)
        if address in passed:
            raise Starting(service)
        try:
            admit(service, address)
            return address
        except Starting:
            passed.add(address)


def admit(service: str, address: str) -> None:
    """Let a call go to an instance only once its /readyz has said it takes calls (its
    start-up data is in): ask it first, again at most every Admissions.RECHECK_SECONDS
    while it is loading, and raise Starting meanwhile (and while one that never took calls
    does not answer in time: its port takes connections, its worker is not up yet). No
    connection, or no answer from one that took calls before, raises as a call would."""
    admissions = upstreams().admissions
    if admissions.admitted(address):
        return
    if admissions.due(address):
        try:
            answer = http().get(
                address + "/readyz", headers=logs.passed_on(), timeout=(PING_CONNECT, PING_SECONDS)
            )
        except requests.Timeout:
            if admissions.served(address):
                raise  # it took calls before and does not answer now: down
            admissions.record(address, False)  # it never has: booting, or busy loading
            raise Starting(service) from None
        try:
            body = answer.json()
        except ValueError:
            body = None
        admissions.record(address, takes_calls(health(answer.status_code), body))
    if not admissions.admitted(address):
        raise Starting(service)


def sample_upstreams(metrics: Metrics) -> None:
    """Set on /metrics each breaker's state (a service never called has none yet) and how
    many instances of each service there are to call."""
    metrics.set_breakers(upstreams().breaker_states())
    metrics.set_instances(upstreams().instance_counts())


# A user users said exists stays known this long (users are never deleted; only an emptied
# store forgets them): one call to users per token a minute, not one per request.
KNOWN_USER_SECONDS = 60.0
_known_tokens: dict[str, float] = {}


def known_user(username: str, token: str | None) -> bool:
    """Tell whether the user a token names exists: the users service decides (it answers
    401 to a token of a user it does not have). If users cannot answer, trust the signature."""
    if not token:
        return False
    if _known_tokens.get(token, 0.0) > time.monotonic():
        return True
    headers = {"Authorization": f"Bearer {token}"}
    try:
        answer = call("users", "GET", "/api/me/preferences", headers=headers)
    except ApiError:  # users is down: the signature is what we have
        return True
    if answer.status_code == 401:
        return False
    if len(_known_tokens) > 10_000:
        _known_tokens.clear()
    _known_tokens[token] = time.monotonic() + KNOWN_USER_SECONDS
    return True


def http() -> requests.Session:
    return current_app.extensions["http"]


def answer_of(response: requests.Response, *expected: int) -> Any:
    """Return a service's JSON answer, or raise its error (the contract's shape) as ours."""
    if response.status_code in expected:
        return response.json() if response.content else None
    try:
        error = response.json()["error"]
        raise ApiError(response.status_code, error["code"], error["message"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(
            502, "upstream_error", f"a service answered {response.status_code}"
        ) from None


def ping(service: str) -> dict[str, Any]:
    """Return a service's readiness for the gateway's /readyz: every instance there is to
    call (the registry's, else the one address) asked at once, each with its own answer."""
    instances = upstreams().instances(service)
    session, headers = http(), logs.passed_on()
    pings = current_app.extensions["pings"]
    checked = list(pings.map(lambda instance: ping_instance(session, instance, headers), instances))
    upstreams().admissions.record_checked(checked)  # calls go only to those that take them
    return readiness(checked)


def ping_instance(
    session: requests.Session, instance: dict[str, Any], headers: dict[str, str]
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
            answer = session.get(instance["address"] + "/readyz", headers=headers,
                                 timeout=(min(PING_CONNECT, left), left))  # fmt: skip
        except requests.RequestException:
            time.sleep(min(RETRY_PAUSE, max(0.0, deadline - time.perf_counter())))
            continue
        status = answer.status_code
        try:
            body = answer.json()
        except ValueError:
            body = None
        break
    return listed(instance, status, body, started), body if isinstance(body, dict) else {}


# --- what the pages need -----------------------------------------------------------------


def get_post(post_id: str) -> dict[str, Any] | None:
    """Return one post, or None."""
    response = call("search", "GET", f"/api/posts/{post_id}")
    return None if response.status_code == 404 else answer_of(response, 200)


def search(args: MultiDict[str, str]) -> dict[str, Any]:
    """Return the search service's answer for the query's own arguments (q, page, per_page)."""
    params = list(args.items(multi=True))
    return answer_of(call("search", "GET", "/api/search", params=params), 200)


def recommendations(limit: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Return (posts, the topics they were picked by): recommend knows the user's topics
    from its own copy, so it says which it used (none: popular posts for everyone)."""
    service = recommend_service()
    response = call(service, "GET", "/api/recommendations", params={"limit": limit})
    topics = [t for t in response.headers.get("X-Topics", "").split(",") if t]
    return answer_of(response, 200)["items"], topics


def tag_counts(limit: int = 0) -> list[dict[str, Any]]:
    """Return every tag with the number of posts carrying it, most used first."""
    items = answer_of(call("tag", "GET", "/api/tags"), 200)["items"]
    return items[:limit] if limit else items


def posts_with_tag(tag: str) -> list[dict[str, Any]]:
    """Return the posts carrying a tag."""
    response = call("search", "GET", f"/api/tags/{tag}/posts")
    return answer_of(response, 200)["items"]


def user_tags(post_id: str) -> list[str]:
    """Return the tags the calling user gave a post."""
    response = call("tag", "GET", f"/api/posts/{post_id}/tags/mine")
    return answer_of(response, 200)["items"]


def add_tag(post_id: str, tag: str) -> None:
    """Tag a post as the calling user."""
    response = call("tag", "POST", f"/api/posts/{post_id}/tags", json={"tag": tag})
    answer_of(response, 201)


def remove_tag(post_id: str, tag: str) -> None:
    """Withdraw the calling user's tag."""
    answer_of(call("tag", "DELETE", f"/api/posts/{post_id}/tags/{tag}"), 204)


def create_user(username: str, password: str) -> None:
    """Register a user, or raise 400/409."""
    body = {"username": username, "password": password}
    response = call("users", "POST", "/api/users", json=body, timeout=PASSWORD_TIMEOUT)
    answer_of(response, 201)


def issue_token(username: str, password: str) -> str | None:
    """Return a token for a username and password, or None if they don't match."""
    body = {"username": username, "password": password}
    response = call("users", "POST", "/api/tokens", json=body, timeout=PASSWORD_TIMEOUT)
    return None if response.status_code == 401 else answer_of(response, 200)["token"]


def get_topics(username: str | None) -> list[str]:
    """Return the calling user's preferred topics (none for a visitor)."""
    if username is None:
        return []
    return answer_of(call("users", "GET", "/api/me/preferences"), 200)["topics"]


def set_topics(topics: list[str]) -> None:
    """Store the calling user's preferred topics."""
    response = call("users", "PUT", "/api/me/preferences", json={"topics": topics})
    answer_of(response, 200)
