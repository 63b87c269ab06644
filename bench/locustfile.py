"""The benchmark's load, written once for every stage: its scenarios as Locust users.

`workshop bench` runs this file with the locust CLI, one scenario at a time, chosen by
the BENCH_SCENARIO environment variable (reads, logged-in, home, lag, fan-out, keyed,
crowd);
unset, every scenario runs mixed. Run by hand:

    BENCH_SCENARIO=reads locust -f bench/locustfile.py --headless -u 8 -r 8 -t 20s \
        --host http://127.0.0.1:8000

Besides Locust's own CSV, every request's latency is kept raw and written as JSON to
BENCH_SAMPLES at exit, so the bench computes exact percentiles over the measured window:
from the moment every user has finished its set-up (registering, logging in) to the end.
With BENCH_DURATION set (the bench sets it), the run stops that many seconds after that
moment, so set-up never eats into the measured time; locust's -t is then only a limit.
Set-up requests are named "setup: ..." and left out of the figures (their errors count).
"""

import contextlib
import json
import os
import random
import re
import time
import uuid
from typing import Any
from urllib.parse import quote_plus

import gevent
from gevent.lock import Semaphore
from locust import FastHttpUser, constant, events, task
from locust.contrib.fasthttp import FastHttpSession

SCENARIO = os.environ.get("BENCH_SCENARIO", "")
SAMPLES_FILE = os.environ.get("BENCH_SAMPLES", "")
# crowd: where the taggings the stage acknowledged (201) are written at exit, and the run's
# name, which its tags carry (so a repeat's counts start from nothing).
ACKNOWLEDGED_FILE = os.environ.get("BENCH_ACKNOWLEDGED", "")
RUN_NAME = os.environ.get("BENCH_RUN", "run")
MEASURED_SECONDS = float(os.environ.get("BENCH_DURATION", "") or 0)
SETUP = "setup: "
SETUP_ATTEMPTS = 5
SETUP_RETRY_SECONDS = 2.0
REGISTERING_AT_ONCE = 2  # one per core
# Requests give up after this long; a timeout counts as an error.
TIMEOUT_SECONDS = 10.0
# ... except registering and logging in: hashing a password is slow on purpose, and a crowd
# waits its turn at the users service; the gateway waits this long for them too.
PASSWORD_SECONDS = 30.0
# The write-to-visible deadline of the lag scenario, and how often it polls meanwhile.
LAG_DEADLINE_SECONDS = 5.0
LAG_POLL_SECONDS = 0.02

QUERIES = [
    "asyncio", "django", "pandas", "pypy", "flask", "numpy", "pytest", "docker",
    "web performance", "async await", "type hints", "packaging wheels", "machine learning",
    "fastapi", "sqlalchemy", "kubernetes deploy", "testing fixtures", "gil threads",
]  # fmt: skip
TOPICS = ["async", "web", "data", "performance", "testing", "packaging", "ml", "devops"]
# Tags the bench puts on a few posts of each stage before the run, so tag pages have posts.
SEEDED_TAGS = ["bench-async", "bench-web", "bench-data", "bench-testing", "bench-ml"]
# The hidden field every page form carries (the pages refuse a post without it).
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
# What a composed page says when one of its parts' services did not answer in time: the
# page still answers 200, so the bench counts it as an error of its own.
DEGRADED = "unavailable right now"


class Recorder:
    """Every request's latency and outcome, and the window in which they are measured."""

    def __init__(self) -> None:
        self.started = time.time()
        self.ready_at = self.started
        self.stopped: float | None = None
        self.samples: list[tuple[float, str, float, bool]] = []
        self.errors: dict[str, int] = {}
        self.error_examples: dict[str, str] = {}
        self.lags_ms: list[tuple[float, float]] = []
        self.lag_missed = 0
        self.users_ready = 0

    def request(self, name: str, response_time: float, exception: Any) -> None:
        """Keep one request: its end time, name, latency in ms, and whether it succeeded."""
        self.samples.append((time.time(), name, response_time, exception is None))
        if exception is not None:
            self.error(name, exception)

    def error(self, name: str, problem: Any) -> None:
        """Count a failure under a name, keeping the first message as an example."""
        self.errors[name] = self.errors.get(name, 0) + 1
        self.error_examples.setdefault(name, str(problem)[:300])

    def user_ready(self, environment: Any) -> None:
        """Move the window's start to now: one more user has finished its set-up.

        Once every user has, stop the run MEASURED_SECONDS later (if set).
        """
        self.ready_at = max(self.ready_at, time.time())
        self.users_ready += 1
        runner = environment.runner
        if MEASURED_SECONDS and self.users_ready == runner.target_user_count:
            gevent.spawn_later(MEASURED_SECONDS, runner.quit)

    def write(self, path: str) -> None:
        """Write the raw figures as JSON."""
        stopped = self.stopped or time.time()
        measured = [
            [name, ms, ok]
            for at, name, ms, ok in self.samples
            if self.ready_at <= at <= stopped and not name.startswith(SETUP)
        ]
        body = {
            "scenario": SCENARIO,
            "window": [self.ready_at, stopped],
            "requests": measured,
            "errors": self.errors,
            "error_examples": self.error_examples,
            "lag_ms": [ms for at, ms in self.lags_ms if at >= self.ready_at],
            "lag_missed": self.lag_missed,
        }
        with open(path, "w") as file:
            json.dump(body, file)


RECORDER = Recorder()
SETUP_LOCKS: dict[str, Semaphore] = {}


def setup_lock(name: str, holders: int = 1) -> Semaphore:
    """Return the lock of a set-up that `holders` users do at a time while the others wait."""
    return SETUP_LOCKS.setdefault(name, Semaphore(holders))


@events.init.add_listener
def _on_init(**_: Any) -> None:
    # gevent reads its clock once when locust imports it, and locust's run-time limit counts
    # from that reading: without a fresh one, a run lost the seconds locust took to start
    # (on a busy machine, all of a short run).
    gevent.get_hub().loop.update_now()


@events.test_start.add_listener
def _on_test_start(**_: Any) -> None:
    RECORDER.started = RECORDER.ready_at = time.time()


@events.request.add_listener
def _on_request(name: str, response_time: float, exception: Any = None, **_: Any) -> None:
    RECORDER.request(name, response_time, exception)


@events.user_error.add_listener
def _on_user_error(user_instance: Any, exception: Exception, **_: Any) -> None:
    RECORDER.error(f"task error in {type(user_instance).__name__}", repr(exception))


@events.test_stop.add_listener
def _on_test_stop(**_: Any) -> None:
    RECORDER.stopped = RECORDER.stopped or time.time()


@events.quitting.add_listener
def _on_quitting(**_: Any) -> None:
    if SAMPLES_FILE:
        RECORDER.write(SAMPLES_FILE)


class BenchUser(FastHttpUser):
    """A simulated user with no think time: the stage runs as fast as it can answer."""

    abstract = True
    scenario = ""
    wait_time = constant(0)
    network_timeout = TIMEOUT_SECONDS
    connection_timeout = TIMEOUT_SECONDS
    post_ids: list[str] = []  # shared by every user: ids seen in answers

    def on_start(self) -> None:
        self.set_up()
        RECORDER.user_ready(self.environment)

    def set_up(self) -> None:
        """Prepare what the user's tasks need (nothing by default), before the measured time."""

    def get_json(self, path: str, name: str, **kwargs: Any) -> Any:
        """GET a JSON answer (None if it failed: the failure is already counted)."""
        with self.client.get(path, name=name, catch_response=True, **kwargs) as answer:
            if answer.status_code != 200:
                answer.failure(f"HTTP {answer.status_code}")
                return None
            return answer.json()

    def get_page(self, path: str, name: str) -> None:
        """GET a page; a page missing a part (its service did not answer) counts as failed."""
        with self.client.get(path, name=name, catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"HTTP {answer.status_code}")
            elif DEGRADED in (answer.text or ""):
                answer.failure("degraded page: a part's service did not answer")

    def remember_posts(self, body: Any) -> None:
        """Keep the ids of the posts in an answer, for the post pages."""
        for post in (body or {}).get("items", []):
            if len(BenchUser.post_ids) < 500 and post["id"] not in BenchUser.post_ids:
                BenchUser.post_ids.append(post["id"])

    def some_post(self) -> str | None:
        """Return a post id seen in an earlier answer, if any."""
        return random.choice(BenchUser.post_ids) if BenchUser.post_ids else None


class LoggedInUser(BenchUser):
    """A user who registers once, with a unique name, and keeps its API token."""

    abstract = True
    # Hashing a password is slow on purpose: on a busy machine, users registering all at
    # once could outlast the front door's timeout. So a few register at a time, and one that
    # fails waits and tries again (a 409: the slow try got through); failed tries count as
    # set-up errors. The crowd registers all at once, once: that is what it measures.
    registering_at_once: int | None = REGISTERING_AT_ONCE
    attempts = SETUP_ATTEMPTS

    def set_up(self) -> None:
        self.username = f"bench_{uuid.uuid4().hex[:12]}"
        password = f"pw-{uuid.uuid4().hex}"
        credentials = {"username": self.username, "password": password}
        at_once = self.registering_at_once
        patient = FastHttpSession(base_url=self.host, request_event=self.environment.events.request,
                                  user=self, network_timeout=PASSWORD_SECONDS,
                                  connection_timeout=PASSWORD_SECONDS)  # fmt: skip
        with setup_lock("register", at_once) if at_once else contextlib.nullcontext():
            for _ in range(self.attempts):
                answer = patient.post("/api/users", json=credentials, name=SETUP + "register")
                if answer.status_code in (201, 409):
                    break
                time.sleep(SETUP_RETRY_SECONDS)
            for _ in range(self.attempts):
                answer = patient.post("/api/tokens", json=credentials, name=SETUP + "token")
                if answer.status_code != 503:
                    break
                time.sleep(SETUP_RETRY_SECONDS)
        token = answer.json()["token"] if answer.status_code == 200 else ""
        self.auth = {"Authorization": f"Bearer {token}"}
        body = self.get_json("/api/recommendations?limit=50", SETUP + "recommendations")
        self.remember_posts(body)


class Reads(BenchUser):
    """Anonymous reading: search (API and page), post pages, tag pages."""

    scenario = "reads"

    def set_up(self) -> None:
        self.api_search()

    @task(3)
    def api_search(self) -> None:
        query, page = random.choice(QUERIES), random.randint(1, 3)
        url = f"/api/search?q={quote_plus(query)}&page={page}"  # a query has spaces
        body = self.get_json(url, "/api/search?q=[q]&page=[n]")
        self.remember_posts(body)

    @task(2)
    def search_page(self) -> None:
        self.client.get(f"/search?q={quote_plus(random.choice(QUERIES))}", name="/search?q=[q]")

    @task(2)
    def post_page(self) -> None:
        if post_id := self.some_post():
            self.client.get(f"/posts/{post_id}", name="/posts/[id]")

    @task(1)
    def api_post(self) -> None:
        if post_id := self.some_post():
            self.client.get(f"/api/posts/{post_id}", name="/api/posts/[id]")

    @task(1)
    def tag_page(self) -> None:
        self.client.get(f"/tags/{random.choice(SEEDED_TAGS)}", name="/tags/[tag]")


class LoggedIn(LoggedInUser):
    """A logged-in mix: recommendations, tagging and untagging, preference changes."""

    scenario = "logged-in"

    @task(4)
    def recommendations(self) -> None:
        body = self.get_json("/api/recommendations", "/api/recommendations", headers=self.auth)
        self.remember_posts(body)

    @task(2)
    def tag_and_untag(self) -> None:
        post_id, tag = self.some_post(), random.choice(TOPICS)
        if not post_id:
            return
        self.client.post(f"/api/posts/{post_id}/tags", json={"tag": tag}, headers=self.auth,
                         name="/api/posts/[id]/tags")  # fmt: skip
        self.client.delete(f"/api/posts/{post_id}/tags/{tag}", headers=self.auth,
                           name="/api/posts/[id]/tags/[tag]")  # fmt: skip

    @task(1)
    def change_preferences(self) -> None:
        topics = random.sample(TOPICS, random.randint(1, 3))
        self.client.put("/api/me/preferences", json={"topics": topics}, headers=self.auth,
                        name="/api/me/preferences")  # fmt: skip


class Home(BenchUser):
    """The home page: a composite (search box, recommendations, popular tags)."""

    scenario = "home"

    @task
    def home(self) -> None:
        self.get_page("/", "/")


class Lag(LoggedInUser):
    """Write-to-visible lag: tag a post, poll the post until the tag shows, untag it.

    The lag is the time from the write's acknowledgement (201) to the end of the first
    read that shows the tag, so its floor is one read. A tag not visible within
    LAG_DEADLINE_SECONDS counts as an error ("lag: not visible").
    """

    scenario = "lag"

    @task
    def tag_then_read(self) -> None:
        post_id = self.some_post()
        if not post_id:
            return
        tag = f"lag-{uuid.uuid4().hex[:12]}"
        answer = self.client.post(f"/api/posts/{post_id}/tags", json={"tag": tag},
                                  headers=self.auth, name="/api/posts/[id]/tags")  # fmt: skip
        if answer.status_code != 201:
            return
        self.record_lag(post_id, tag, written=time.monotonic())
        self.client.delete(f"/api/posts/{post_id}/tags/{tag}", headers=self.auth,
                           name="/api/posts/[id]/tags/[tag]")  # fmt: skip

    def record_lag(self, post_id: str, tag: str, written: float) -> None:
        """Poll the post until the tag is visible, and record how long that took."""
        while time.monotonic() - written < LAG_DEADLINE_SECONDS:
            post = self.get_json(f"/api/posts/{post_id}", "/api/posts/[id] (poll)")
            if post and any(t["tag"] == tag for t in post.get("tags", [])):
                RECORDER.lags_ms.append((time.time(), (time.monotonic() - written) * 1000))
                return
            time.sleep(LAG_POLL_SECONDS)
        RECORDER.lag_missed += 1
        RECORDER.error("lag: not visible", f"tag {tag} not visible in {LAG_DEADLINE_SECONDS} s")


class FanOut(BenchUser):
    """Pages composed from several services, for people logged in on the pages: half of the
    users load the home page (recommendations and popular tags: recommend and tag), the
    other half post pages (the post and the user's own tags on it: search and tag).

    The bench runs it with a fixed delay added to each upstream (WORKSHOP_LATENCY_MS), so a
    page that asks its services one after the other waits for the sum of the delays, and
    one that asks them at the same time for the slowest. Two halves, not one user doing
    both, so a page held up by one busy service does not hold up the other page's users.
    """

    abstract = True
    scenario = "fan-out"
    # Every user shares one account's page session: 64 accounts would hash 128 passwords
    # (slow on purpose) at the start, a load on the users service this scenario is not about.
    session_cookies: list[Any] | None = None

    def set_up(self) -> None:
        with setup_lock("fan-out"):
            if FanOut.session_cookies is None:
                self.log_in_on_the_pages()
                FanOut.session_cookies = list(self.client.cookiejar)
                self.remember_posts(self.get_json("/api/recommendations?limit=50", SETUP + "posts"))
        for cookie in FanOut.session_cookies:
            self.client.cookiejar.set_cookie(cookie)

    def log_in_on_the_pages(self) -> None:
        """Register on the page form, which logs in: the session cookie makes pages personal."""
        username, password = f"bench_{uuid.uuid4().hex[:12]}", f"pw-{uuid.uuid4().hex}"
        form = self.client.get("/register", name=SETUP + "register page")
        found = CSRF_FIELD.search(form.text or "")
        fields = {"username": username, "password": password,
                  "csrf_token": found.group(1) if found else ""}  # fmt: skip
        with self.client.post("/register", data=fields, name=SETUP + "register",
                              catch_response=True) as answer:  # fmt: skip
            if answer.status_code != 200 or username not in (answer.text or ""):
                answer.failure(f"not logged in after registering (HTTP {answer.status_code})")


class FanOutHome(FanOut):
    """The fan-out users on the home page."""

    @task
    def home(self) -> None:
        self.get_page("/", "/")


class FanOutPost(FanOut):
    """The fan-out users on post pages."""

    @task
    def post_page(self) -> None:
        if post_id := self.some_post():
            self.get_page(f"/posts/{post_id}", "/posts/[id]")


class Keyed(BenchUser):
    """Keyed reads only: `GET /api/posts/<id>`, the smallest call a stage answers.

    The bench sends it to the front door and, on stages with a search service, straight to
    that service as well: the difference is what the hop through the gateway costs.
    """

    scenario = "keyed"

    def set_up(self) -> None:
        with setup_lock("keyed"):
            if not BenchUser.post_ids:
                body = self.get_json("/api/search?q=python&per_page=50", SETUP + "posts")
                self.remember_posts(body)

    @task
    def api_post(self) -> None:
        if post_id := self.some_post():
            self.get_json(f"/api/posts/{post_id}", "/api/posts/[id]")


class Crowd(LoggedInUser):
    """A crowd at once, no think time: everyone registers at the same moment, then
    searches, reads posts, tags posts and changes preferences.

    The tags are few and shared (CROWD_TAGS on the first CROWD_POSTS posts found), so many
    users tag the same post with the same tag at the same time; every tagging the stage
    acknowledged (201) is written to BENCH_ACKNOWLEDGED, and the bench checks afterwards
    that each post shows each of those tags with the exact number of users who gave it.
    """

    scenario = "crowd"
    registering_at_once = None
    attempts = 1
    acknowledged: set[tuple[str, str, str]] = set()  # (post, tag, user): answered 201
    # Sent and not refused: answered 201, or not answered (the run ended with it in flight,
    # or it timed out), so the stage may have stored it or not.
    attempted: set[tuple[str, str, str]] = set()

    def set_up(self) -> None:
        super().set_up()
        with setup_lock("crowd posts"):
            if not Crowd.crowd_posts:
                body = self.get_json(f"/api/search?q=python&per_page={CROWD_POSTS}",
                                     SETUP + "posts")  # fmt: skip
                Crowd.crowd_posts = [post["id"] for post in (body or {}).get("items", [])]

    crowd_posts: list[str] = []

    @task(4)
    def search(self) -> None:
        query, page = random.choice(QUERIES), random.randint(1, 2)
        body = self.get_json(f"/api/search?q={quote_plus(query)}&page={page}",
                             "/api/search?q=[q]&page=[n]")  # fmt: skip
        self.remember_posts(body)

    @task(3)
    def read_post(self) -> None:
        if post_id := self.some_post():
            self.get_json(f"/api/posts/{post_id}", "/api/posts/[id]")

    @task(2)
    def tag(self) -> None:
        if not Crowd.crowd_posts:
            return
        post_id = random.choice(Crowd.crowd_posts)
        tag = f"crowd-{RUN_NAME}-{random.randrange(CROWD_TAGS)}"
        tagging = (post_id, tag, self.username)
        Crowd.attempted.add(tagging)
        answer = self.client.post(f"/api/posts/{post_id}/tags", json={"tag": tag},
                                  headers=self.auth, name="/api/posts/[id]/tags")  # fmt: skip
        if answer.status_code == 201:
            Crowd.acknowledged.add(tagging)
        elif 400 <= answer.status_code < 500 and tagging not in Crowd.acknowledged:
            Crowd.attempted.discard(tagging)  # refused: the stage stored nothing

    @task(1)
    def preferences(self) -> None:
        topics = random.sample(TOPICS, random.randint(1, 3))
        self.client.put("/api/me/preferences", json={"topics": topics}, headers=self.auth,
                        name="/api/me/preferences")  # fmt: skip


CROWD_POSTS = 10
CROWD_TAGS = 4


@events.quitting.add_listener
def _write_acknowledged(**_: Any) -> None:
    if ACKNOWLEDGED_FILE and SCENARIO == "crowd":
        with open(ACKNOWLEDGED_FILE, "w") as file:
            json.dump({"acknowledged": sorted(Crowd.acknowledged),
                       "attempted": sorted(Crowd.attempted)}, file)  # fmt: skip


USER_CLASSES = (Reads, LoggedIn, Home, Lag, FanOutHome, FanOutPost, Keyed, Crowd)
SCENARIOS = list(dict.fromkeys(cls.scenario for cls in USER_CLASSES))


def select_scenario(name: str) -> None:
    """Leave only the named scenario's classes concrete: locust runs every concrete User."""
    if name not in SCENARIOS:
        raise SystemExit(f"BENCH_SCENARIO={name!r}: choose one of {', '.join(SCENARIOS)}")
    for user_class in USER_CLASSES:
        user_class.abstract = user_class.scenario != name


if SCENARIO:
    select_scenario(SCENARIO)
