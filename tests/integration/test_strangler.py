"""The strangler fig: stage 03 run with --strangler, the gateway in front of the running
monolith. Every verb moves to its service while traffic runs (reads, tags, accounts,
preferences, imports, pages): no request fails, the answers to the same questions are the
same at every step, and each verb is then answered by its service, the owners' data with it.
"""

import collections
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import requests

from tests.acceptance.stage import eventually
from tests.running import START_WITHIN
from tests.timing import scaled
from tooling.runner import StageRunner, free_base_port, is_ready
from tooling.stages import get_stage
from tooling.strangler import ROUTES_FILE, Migration, StranglerError

WORKSHOP = str(Path(sys.executable).with_name("workshop"))
MARK = uuid.uuid4().hex[:6]
PASSWORD = "strangler fig, slowly"
IMPORTER = f"ops{MARK}"
# Readers first, then the owners, each with its data.
ORDER = ["search", "recommend", "tag", "users", "ingest"]
# Questions about the sample only: the traffic writes its own marked tags, users and posts.
QUESTIONS = [
    "/api/search?q=python",
    "/api/search?q=async+web&page=2&per_page=5",
    "/api/recommendations?limit=10",
    "/api/tags",
]
ROUNDS_PER_STEP = 3  # traffic rounds seen after each move before the next


@pytest.fixture(scope="module")
def migration():
    stage = get_stage("03-services").in_mode("strangler")
    env = {"WORKSHOP_IMPORTERS": IMPORTER, "WORKSHOP_SAMPLE_POSTS": "300"}
    runner = StageRunner(stage, free_base_port(len(stage.processes())), env)
    runner.start()
    try:
        assert runner.wait_ready(scaled(START_WITHIN)), "the strangler fig did not start"
        yield runner
    finally:
        runner.stop()


def front(runner: StageRunner) -> str:
    return f"http://127.0.0.1:{runner.port}"


def token(base: str, username: str) -> dict[str, str]:
    login = {"username": username, "password": PASSWORD}
    answer = requests.post(f"{base}/api/tokens", json=login, timeout=30)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def register(base: str, username: str) -> dict[str, str]:
    account = {"username": username, "password": PASSWORD}
    answer = requests.post(f"{base}/api/users", json=account, timeout=30)
    assert answer.status_code == 201, answer.text
    return token(base, username)


def unmarked(answer: object) -> object:
    """Return an answer without what the traffic wrote (its tags: s<MARK>...)."""
    if isinstance(answer, dict):
        if str(answer.get("tag", "")).startswith(f"s{MARK}"):
            return None
        return {k: unmarked(v) for k, v in answer.items()}
    if isinstance(answer, list):
        return [kept for item in answer if (kept := unmarked(item)) is not None]
    return answer


def answers(base: str, post_id: str) -> dict[str, object]:
    questions = [*QUESTIONS, f"/api/posts/{post_id}"]
    return {q: unmarked(requests.get(base + q, timeout=30).json()) for q in questions}


class Traffic(threading.Thread):
    """Users at work through the gateway, every verb in each round, until stopped; every
    answer that is not the one the contract promises is kept as a failure."""

    def __init__(self, base: str, post_id: str, importer: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.base, self.post_id, self.importer = base, post_id, importer
        self.rounds, self.calls, self.failures = 0, 0, []
        self.stopping = threading.Event()

    def expect(self, status: int, method: str, path: str, **kwargs) -> requests.Response:
        answer = requests.request(method, self.base + path, timeout=60, **kwargs)
        self.calls += 1
        if answer.status_code != status:
            self.failures.append(f"{method} {path}: {answer.status_code} {answer.text[:200]}")
        return answer

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.round(self.rounds)
            except Exception as error:  # a failure to report, not a reason to stop
                self.failures.append(f"round {self.rounds}: {error!r}")
            self.rounds += 1

    def round(self, n: int) -> None:
        post, tag = self.post_id, f"s{MARK}{n % 3}"
        username = f"u{MARK}{n}"
        self.expect(201, "POST", "/api/users", json={"username": username, "password": PASSWORD})
        login = {"username": username, "password": PASSWORD}
        issued = self.expect(200, "POST", "/api/tokens", json=login).json()
        auth = {"Authorization": f"Bearer {issued.get('token')}"}
        topics = ["async", "web", "data"][: 1 + n % 3]
        self.expect(200, "PUT", "/api/me/preferences", json={"topics": topics}, headers=auth)
        mine = self.expect(200, "GET", "/api/me/preferences", headers=auth).json()
        if mine.get("topics") != topics:  # the owner answers: its own write, at once
            self.failures.append(f"preferences of {username}: {mine} after {topics}")
        self.expect(201, "POST", f"/api/posts/{post}/tags", json={"tag": tag}, headers=auth)
        if n % 2:
            self.expect(204, "DELETE", f"/api/posts/{post}/tags/{tag}", headers=auth)
        for path in [*QUESTIONS, f"/api/posts/{post}", f"/api/tags/{tag}/posts"]:
            self.expect(200, "GET", path, headers=auth if n % 2 else {})
        for page in ["/", "/search?q=python", f"/posts/{post}"]:
            self.expect(200, "GET", page)
        job = self.expect(202, "POST", "/api/ingest", json=listing(n), headers=self.importer)
        if job.status_code == 202:
            done = self.expect(200, "GET", f"/api/jobs/{job.json()['job_id']}").json()
            if done.get("state") != "done":
                self.failures.append(f"job of round {n}: {done}")

    def wait_rounds(self, count: int) -> None:
        target = self.rounds + count
        eventually(lambda: self.rounds, lambda rounds: rounds >= target or not self.is_alive(),
                   within=120.0)  # fmt: skip
        assert self.rounds >= target, "the traffic stopped going round"


def listing(n: int, title: str = "") -> dict[str, object]:
    """Return a listing of one post of the traffic's own, far from the sample's answers."""
    record = {"id": f"{MARK}{n}", "title": title or f"strangler{MARK} {n}",
              "subreddit": "sandbox", "author": "tester", "created_utc": 1.0e9, "score": 0,
              "ups": 0, "downs": 0, "num_comments": 0, "is_self": "True", "selftext": "",
              "edited": "False", "permalink": f"/r/sandbox/comments/{MARK}{n}/",
              "url": "https://example.org/"}  # fmt: skip
    return {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": record}]}}


def served_by(base: str, method: str, path: str, **kwargs) -> str:
    answer = requests.request(method, base + path, timeout=30, **kwargs)
    return answer.headers.get("X-Served-By", "").split("@")[0]


def workshop(runner: StageRunner, *args: str) -> subprocess.CompletedProcess:
    """Run `workshop strangler ARGS` on this stage, as an attendee does in a terminal."""
    command = [WORKSHOP, "strangler", *args, "--port", str(runner.port)]
    return subprocess.run(command, capture_output=True, text=True, timeout=scaled(120))


def test_every_verb_moves_with_traffic_running_and_nothing_fails(migration):
    base = front(migration)
    routes = migration.data_dir / ROUTES_FILE
    moving = Migration(migration.stage.ports(migration.port), routes)
    post_id = requests.get(f"{base}/api/search?q=python", timeout=30).json()["items"][0]["id"]
    importer = register(base, IMPORTER)
    # Written at the monolith before anything moves, and part of every answer compared.
    keeper = register(base, f"keeper{MARK}")
    kept = f"k{MARK}"
    tagged = requests.post(f"{base}/api/posts/{post_id}/tags", json={"tag": kept},
                           headers=keeper, timeout=30)  # fmt: skip
    assert tagged.status_code == 201, tagged.text
    before = answers(base, post_id)
    assert {"tag": kept, "count": 1} in before["/api/tags"]["items"]
    assert served_by(base, "GET", "/api/search?q=python") == "monolith"
    with pytest.raises(StranglerError, match="move search and recommend first"):
        moving.move("tag", say=lambda _: None)
    traffic = Traffic(base, post_id, importer)
    traffic.start()
    try:
        traffic.wait_rounds(ROUNDS_PER_STEP)
        # The commands an attendee types; a reader goes back as easily as it came.
        for args in [("move", "search"), ("back", "search"), ("move", "search")]:
            done = workshop(migration, *args)
            assert done.returncode == 0, done.stderr
            traffic.wait_rounds(1)
        assert answers(base, post_id) == before, "after moving search"
        for verb in ORDER[1:]:
            if verb == "tag":  # the monolith's tagging reads its posts: tag leaves first
                with pytest.raises(StranglerError, match="move tag first"):
                    moving.move("ingest", say=lambda _: None)
            moved = workshop(migration, "move", verb, "--wait", str(scaled(60)))
            assert moved.returncode == 0, moved.stderr
            assert f"{verb}: the gateway now sends it to" in moved.stdout, moved.stdout
            traffic.wait_rounds(ROUNDS_PER_STEP)
            # The same questions, the same answers: from the monolith, or from the copy.
            assert answers(base, post_id) == before, f"after moving {verb}"
    finally:
        traffic.stopping.set()
        traffic.join(scaled(120))
    assert traffic.failures == [], f"{len(traffic.failures)} of {traffic.calls} calls failed"
    assert traffic.rounds > ROUNDS_PER_STEP * len(ORDER)
    # Nothing written was lost: every account logs in, every user's tag the traffic left
    # counts on the post (a tag on a post is counted once per user who gave it).
    for n in range(traffic.rounds):
        token(base, f"u{MARK}{n}")
    left = collections.Counter(f"s{MARK}{n % 3}" for n in range(0, traffic.rounds, 2))
    posts = {t["tag"]: t["count"] for t in requests.get(f"{base}/api/tags").json()["items"]}
    assert {tag: posts.get(tag) for tag in left} == dict.fromkeys(left, 1), "on one post"
    copy = eventually(lambda: requests.get(f"{base}/api/posts/{post_id}", timeout=30).json(),
                      lambda post: {t["tag"]: t["count"] for t in post["tags"]
                                    if t["tag"] in left} == dict(left))  # fmt: skip
    assert {t["tag"]: t["count"] for t in copy["tags"] if t["tag"] in left} == dict(left)
    settled = eventually(lambda: requests.get(f"{base}/readyz", timeout=30).json(),
                         lambda ready: ready.get("settled") is True)  # fmt: skip
    assert settled.get("settled") is True, settled
    status = workshop(migration, "status")
    assert status.returncode == 0, status.stderr
    assert sorted(status.stdout.split()) == sorted(ORDER * 2), status.stdout
    # Each verb is its service's now, and the owners hold what was written at the monolith.
    auth = token(base, f"u{MARK}0")  # registered at the monolith, logs in at users
    assert served_by(base, "GET", "/api/me/preferences", headers=auth) == "users"
    assert served_by(base, "GET", "/api/tags") == "tag"
    assert served_by(base, "GET", "/api/search?q=python") == "search"
    assert served_by(base, "GET", "/api/recommendations?limit=3") == "recommend-v1"
    # Imported at the monolith; imported again at ingest, which knows it: an update.
    job = requests.post(f"{base}/api/ingest", json=listing(0, f"strangler{MARK} again"),
                        headers=importer, timeout=60).json()["job_id"]  # fmt: skip
    done = requests.get(f"{base}/api/jobs/{job}", timeout=30).json()
    assert (done["state"], done["new"], done["updated"]) == ("done", 0, 1), done
    again = eventually(lambda: requests.get(f"{base}/api/posts/{MARK}0", timeout=30).json(),
                       lambda post: post.get("title") == f"strangler{MARK} again")  # fmt: skip
    assert again["title"] == f"strangler{MARK} again"
    # Tagged at the monolith; taken back at tag, which knows who tagged it.
    untagged = requests.delete(f"{base}/api/posts/{post_id}/tags/{kept}", headers=keeper,
                               timeout=30)  # fmt: skip
    assert untagged.status_code == 204
    assert {"tag": kept, "count": 1} not in requests.get(f"{base}/api/tags").json()["items"]
    left = eventually(lambda: requests.get(f"{base}/api/posts/{post_id}", timeout=30).json(),
                      lambda post: kept not in {t["tag"] for t in post["tags"]})  # fmt: skip
    assert kept not in {t["tag"] for t in left["tags"]}
    # The moves are kept with the data: a gateway and a monolith started again keep them.
    migration.restart_processes({"web", "monolith"})
    assert eventually(lambda: is_ready(base), bool, within=START_WITHIN)
    assert served_by(base, "GET", "/api/tags") == "tag"
    # What cannot be done is refused, and changes nothing.
    moved = routes.read_bytes()
    for args, why in [(("move", "comment"), "no verb 'comment'"),
                      (("back", "search"), "own their data now")]:  # fmt: skip
        refused = workshop(migration, *args)
        assert refused.returncode == 1 and why in refused.stderr, refused.stderr
    assert routes.read_bytes() == moved
