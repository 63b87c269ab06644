"""`workshop lab`: failure labs that check themselves.

A lab runs against the stage the attendee runs (`workshop up` in another terminal, found
on --port or as the newest of the lab's stage), or starts a stage of its own (its own data
folder, on --port or free ports; always with --own, and for a lab that needs settings or a
broker of its own). It says what it will break, breaks it, tells the attendee what to look
at while it is broken, checks what a reader of the stage's README should see (the page
degraded and said why, /readyz named the culprit, nothing acknowledged was lost), repairs
it, and checks that the stage caught up. Each check prints PASS or FAIL; the command exits
0 when every one held. What the lab stops stays down until it starts it again, as with
`workshop up --no-restart`: what the attendee watches is the failure, not the supervisor.
On a stage it attached to, its users, posts and tags carry a mark of their own, so a lab
can run twice, and they stay (`workshop reset` forgets them with the rest).
"""

import json
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import requests

from tooling import strangler
from tooling.control import AttachedStage, ControlError
from tooling.runner import StageRunner, free_base_port, port_is_free, running_stages
from tooling.stages import get_stage
from workshop import config
from workshop.platform import latency

CHECK_WITHIN = 30.0  # how long a lab waits for what it expects to see (a busy laptop)
CAUGHT_UP_WITHIN = 60.0  # after a repair: start-up, and the copies catching up


@dataclass
class Session:
    """One run of a lab: the stage it breaks, and what each check found."""

    runner: StageRunner | AttachedStage
    results: list[tuple[str, bool]] = field(default_factory=list)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))  # the lab's users'
    broker: "PrivateRedis | None" = None
    # This run's mark on the names and ids it makes: on a stage it attached to, a lab that
    # ran before left its users and posts.
    mark: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.runner.port}"

    def say(self, text: str) -> None:
        click.echo(text)

    def look(self, *where: str) -> None:
        """Tell the attendee what to look at while the stage is broken."""
        self.say("  look: " + "\n        ".join(where))

    def check(self, claim: str, holds: Callable[[], bool], within: float = CHECK_WITHIN) -> bool:
        """Wait until a claim holds (at most `within` s); print PASS or FAIL for it."""
        deadline = time.monotonic() + within
        while True:
            try:
                passed = bool(holds())
            except (requests.RequestException, ValueError, KeyError, IndexError, TypeError):
                passed = False
            if passed or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        self.results.append((claim, passed))
        click.secho(f"  {'PASS' if passed else 'FAIL'}  {claim}", fg="green" if passed else "red")
        return passed

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", params=params or None, timeout=10)

    def readiness(self) -> dict[str, Any]:
        return self.get("/readyz").json()

    def settled(self) -> bool:
        """Tell whether the stage is ready and nothing waits in any queue or outbox."""
        answer = self.get("/readyz")
        return answer.status_code == 200 and answer.json()["settled"] is True

    def address(self, process: str) -> str:
        """Return where one of the stage's processes listens (sync, ingest, ...)."""
        return f"http://127.0.0.1:{self.runner.stage.ports(self.runner.port)[process]}"

    def username(self, name: str) -> str:
        """Return this run's name for one of the lab's users (lab_ada: lab_ada_3f2a)."""
        return f"{name}_{self.mark}"

    def user(self, name: str) -> str:
        """Register a user through the front door; return a token."""
        credentials = {"username": self.username(name), "password": self.password}
        requests.post(f"{self.url}/api/users", json=credentials, timeout=10)
        answer = requests.post(f"{self.url}/api/tokens", json=credentials, timeout=10)
        answer.raise_for_status()
        return answer.json()["token"]


def _check_search_is_down(session: Session, culprit: str) -> None:
    """Check what the front door says while what answers searches is down."""

    def not_ready_naming_it() -> bool:
        answer = session.get("/readyz")
        return answer.status_code == 503 and answer.json()["dependencies"][culprit]["ok"] is False

    session.check(f"/readyz answers 503 and names {culprit}", not_ready_naming_it)
    session.check("/api/search answers 503 upstream_unavailable", lambda: (
        session.get("/api/search", q="flask").json()["error"]["code"] == "upstream_unavailable"
    ))  # fmt: skip


def rest_api_down(session: Session) -> None:
    """Stage 02: the REST API stops; the front says so, and recovers when it is back."""
    token = session.user("lab_ada")
    assert token
    session.say("break: stop the REST API (restapi), the one process that holds the data")
    session.runner.stop_process("restapi")
    session.look(f"{session.url}/search?q=flask   (the page says what is down)",
                 f"curl -s {session.url}/readyz",
                 f"workshop logs --port {session.runner.port} restapi")  # fmt: skip
    _check_search_is_down(session, "restapi")
    session.check("the search page is an error page (503) that names the REST API", lambda: (
        (page := session.get("/search", q="flask")).status_code == 503 and "REST API" in page.text
    ))  # fmt: skip
    session.check("/healthz still answers 200: alive, only not ready",
                  lambda: session.get("/healthz").status_code == 200)  # fmt: skip
    session.say("repair: start the REST API again (with the stage's data folder)")
    session.runner.restart_process("restapi")
    session.check("the stage is ready again", lambda: session.get("/readyz").status_code == 200,
                  CAUGHT_UP_WITHIN)  # fmt: skip
    ada = session.username("lab_ada")
    session.check(f"{ada} still logs in: the API kept its data", lambda: requests.post(
        f"{session.url}/api/tokens", json={"username": ada, "password": session.password},
        timeout=10).status_code == 200)  # fmt: skip


def service_down_and_back(session: Session) -> None:
    """Stage 03: search stops; the rest serves on, a tag made meanwhile reaches it later."""
    token = session.user("lab_grace")
    found = session.get("/api/search", q="flask").json()["items"]
    if not found:
        raise click.ClickException("no post about flask: run the stage with its sample")
    post_id = found[0]["id"]
    session.say("break: stop the search service; the gateway, tag and recommend keep running")
    session.runner.stop_process("search")
    session.look(f"{session.url}/   (the home page needs recommend and tag only)",
                 f"{session.url}/search?q=flask   (the page says search is down)",
                 f"curl -s {session.url}/readyz")  # fmt: skip
    _check_search_is_down(session, "search")
    session.check("the home page still answers 200", lambda: session.get("/").status_code == 200)
    made = f"lab-while-down-{session.mark}"
    session.say(f"while search is down, tag post {post_id} '{made}' (tag accepts it)")
    tagged = requests.post(f"{session.url}/api/posts/{post_id}/tags", timeout=10,
                           headers={"Authorization": f"Bearer {token}"},
                           json={"tag": made})  # fmt: skip
    session.check("the tag is accepted (201) with search down",
                  lambda: tagged.status_code == 201, within=0)  # fmt: skip
    session.say("repair: start search again; it catches up from its queue")
    session.runner.restart_process("search")
    session.check("the stage is ready again", lambda: session.get("/readyz").status_code == 200,
                  CAUGHT_UP_WITHIN)  # fmt: skip
    session.check("search's copy of the post has the tag made while it was down", lambda: (
        made in {t["tag"] for t in session.get(f"/api/posts/{post_id}").json()["tags"]}
    ), CAUGHT_UP_WITHIN)  # fmt: skip


def _ndjson(posts: list[dict[str, Any]]) -> bytes:
    from workshop.data.sample import export_line

    return "".join(export_line(post, i) + "\n" for i, post in enumerate(posts)).encode()


def _import(
    session: Session, token: str, posts: list[dict[str, Any]]
) -> tuple[str, Callable[[], dict[str, Any]]]:
    """Queue an import of posts; return its job's id and a function that reads the job."""
    upload = requests.post(f"{session.url}/api/ingest", data=_ndjson(posts), timeout=60,
                           headers={"Authorization": f"Bearer {token}",
                                    "Content-Type": "application/x-ndjson"})  # fmt: skip
    upload.raise_for_status()
    job_id = upload.json()["job_id"]
    session.say(f"import of {len(posts)} posts queued as job {job_id}")
    return job_id, lambda: session.get(f"/api/jobs/{job_id}").json()


def worker_killed_mid_job(session: Session) -> None:
    """Stage 04: the Celery worker dies mid-job; /readyz says so, a new worker finishes it."""
    from workshop.data.sample import sample_posts

    token = session.user("lab_linus")
    posts = [{**p, "id": f"l{session.mark}{p['id']}"} for p in sample_posts(4000, seed=17)]
    job_id, job = _import(session, token, posts)
    session.check("the worker starts the job", lambda: job()["ingested"] > 0)
    session.say("break: kill the worker (SIGKILL) in the middle of the job")
    session.runner.kill_process("worker")
    session.look(f"curl -s {session.url}/api/jobs/{job_id}   (it stays running)",
                 f"curl -s {session.url}/readyz   (ingest names the worker)")  # fmt: skip
    session.check("/readyz answers 503: ingest names the worker", lambda: (
        session.get("/readyz").status_code == 503
        and "worker" in json.dumps(session.readiness()["dependencies"]["ingest"])
    ))  # fmt: skip
    session.check("the job is not done without a worker", lambda: job()["state"] != "done",
                  within=0)  # fmt: skip
    session.say("repair: start a worker again; the task the dead one held goes back to it")
    session.runner.restart_process("worker")
    session.check(f"the job ends done with {len(posts)} new posts, none twice", lambda: (
        job()["state"] == "done" and job()["new"] == len(posts) and job()["unchanged"] == 0
    ), CAUGHT_UP_WITHIN * 3)  # fmt: skip
    session.check("the stage is ready again", lambda: session.get("/readyz").status_code == 200,
                  CAUGHT_UP_WITHIN)  # fmt: skip


def sync_killed_mid_import(session: Session) -> None:
    """Stage 03: sync dies while an import flows through it; every copy gets every post once."""
    from workshop.data.sample import sample_posts

    word = f"labsynced{session.mark}"  # in every title: a search for it counts what search holds
    posts = [{**p, "id": f"s{session.mark}{p['id']}", "title": f"{p['title']} {word}"}
             for p in sample_posts(2000, seed=23)]  # fmt: skip

    def logged() -> int:
        return requests.get(f"{session.address('sync')}/stats", timeout=10).json()["collections"][
            "log"
        ]

    token = session.user("lab_barbara")
    session.check("the stage is settled before the import", session.settled,
                  CAUGHT_UP_WITHIN)  # fmt: skip
    before = logged()
    _, job = _import(session, token, posts)
    session.check("sync logs the first changes of the import", lambda: logged() - before >= 100)
    partly = logged() - before
    session.say(f"break: kill sync (SIGKILL) while the import flows through it ({partly} logged)")
    session.runner.kill_process("sync")
    session.check(f"sync was killed mid-import: it had logged {partly} of {len(posts)}",
                  lambda: partly < len(posts), within=0)  # fmt: skip
    session.look(f"curl -s {session.url}/readyz   (sync unreachable, not settled)",
                 f"curl -s '{session.url}/api/search?q={word}'   (total stays short)",
                 f"workshop logs --port {session.runner.port} ingest")  # fmt: skip
    session.check("/readyz names sync as unreachable", lambda: (
        session.readiness()["dependencies"]["sync"]["ok"] is False
    ))  # fmt: skip
    session.check(f"the import finishes without sync: {len(posts)} new posts", lambda: (
        job()["state"] == "done" and job()["new"] == len(posts)
    ), CAUGHT_UP_WITHIN * 3)  # fmt: skip
    session.check("search does not have them all: nothing carries them to it", lambda: (
        session.get("/api/search", q=word).json()["total"] < len(posts)
    ), within=0)  # fmt: skip
    session.say("repair: start sync again; the batch it held goes back to its queue")
    session.runner.restart_process("sync")
    session.check("the stage settles again", session.settled, CAUGHT_UP_WITHIN * 3)
    session.check(f"search finds all {len(posts)} posts", lambda: (
        session.get("/api/search", q=word).json()["total"] == len(posts)
    ), CAUGHT_UP_WITHIN)  # fmt: skip
    session.check(f"sync's log holds each of them once: {len(posts)} more entries",
                  lambda: logged() == before + len(posts), within=0)  # fmt: skip


def canary_split(session: Session) -> None:
    """Stage 03: a new recommend version takes a share of the calls; a header pins one."""
    calls = 200
    share = int(session.runner.env["RECOMMEND_CANARY_PERCENT"])
    session.say(f"recommend v2 runs beside v1; the gateway sends it {share} % of the calls")
    session.look(f"curl -si '{session.url}/api/recommendations?limit=3' | grep ^X-",
                 f"curl -si '{session.url}/api/recommendations?limit=3' "
                 "-H 'X-Recommend-Version: 2' | grep ^X-")  # fmt: skip

    def versions(**headers: str) -> list[str]:
        return [requests.get(f"{session.url}/api/recommendations", params={"limit": 3},
                             headers=headers, timeout=10).headers["X-Recommend-Version"]
                for _ in range(calls)]  # fmt: skip

    drawn = versions()
    seen = 100 * drawn.count("2") / calls
    session.say(f"{calls} calls: {seen:.0f} % answered by v2")
    # A draw per call: 200 draws of 20 % land within 8-32 % but once in ten thousand runs.
    session.check(f"v2 answers about {share} % of {calls} calls (between {share * 0.4:.0f} and "
                  f"{share * 1.6:.0f} %)", lambda: share * 0.4 <= seen <= share * 1.6,
                  within=0)  # fmt: skip
    session.check(
        "X-Recommend-Version: 2 pins every call to v2",
        lambda: set(versions(**{"X-Recommend-Version": "2"})) == {"2"},
        within=0,
    )
    session.check(
        "X-Recommend-Version: 1 pins every call to v1",
        lambda: set(versions(**{"X-Recommend-Version": "1"})) == {"1"},
        within=0,
    )
    session.say("break: stop v2, the canary (a bad release, rolled back)")
    session.runner.stop_process("recommend_v2")
    session.look(f"curl -s {session.url}/readyz   (recommend-v2 down)", f"{session.url}/")
    session.check("/readyz answers 503 and names recommend-v2", lambda: (
        session.get("/readyz").status_code == 503
        and session.readiness()["dependencies"]["recommend-v2"]["ok"] is False
    ))  # fmt: skip
    failed = [requests.get(f"{session.url}/api/recommendations", params={"limit": 3},
                           timeout=10).status_code for _ in range(calls)]  # fmt: skip
    lost = 100 * failed.count(503) / calls
    session.say(f"{calls} calls, none pinned: {lost:.0f} % answered 503 (drawn for v2)")
    session.check("the canary's share of the calls fails with it (503), the rest answer 200",
                  lambda: set(failed) <= {200, 503} and share * 0.4 <= lost <= share * 1.6,
                  within=0)  # fmt: skip
    session.check("calls pinned to v1 still answer 200", lambda: all(
        requests.get(f"{session.url}/api/recommendations", params={"limit": 3}, timeout=10,
                     headers={"X-Recommend-Version": "1"}).status_code == 200
        for _ in range(20)
    ))  # fmt: skip
    session.say("repair: start v2 again; it kept its copy, and catches up from its queue")
    session.runner.restart_process("recommend_v2")
    session.check("the stage is ready again", lambda: session.get("/readyz").status_code == 200,
                  CAUGHT_UP_WITHIN)  # fmt: skip


def replay_into_new_version(session: Session) -> None:
    """Stage 03: a new copy of recommend v2 starts empty; sync's log fills it by replay."""
    name = "recommend-v2-lab"
    port = free_base_port(1)

    def stats(url: str) -> dict[str, int]:
        return requests.get(f"{url}/stats", timeout=10).json()["collections"]

    def top(url: str, **headers: str) -> list[str]:
        answer = requests.get(f"{url}/api/recommendations", params={"limit": 20},
                              headers=headers, timeout=10)  # fmt: skip
        return [post["id"] for post in answer.json()["items"]]

    session.check("the stage is settled", session.settled, CAUGHT_UP_WITHIN)
    owned = stats(session.address("ingest"))["posts"]
    session.say(f"start: {name}, recommend v2's code with an empty store of its own, on "
                f"port {port}; it asks sync for every change from the start")  # fmt: skip
    session.runner.start_extra("recommend_lab", "recommend_v2", port, {"RECOMMEND_NAME": name})
    session.look(f"curl -s http://127.0.0.1:{port}/readyz   (503 bootstrap until it is in)",
                 f"workshop sync status --port {session.runner.port}   (its checkpoint)",
                 f"curl -s http://127.0.0.1:{port}/stats")  # fmt: skip
    session.check(f"it says ready once its copy holds all {owned} posts", lambda: (
        requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        and stats(f"http://127.0.0.1:{port}")["posts"] == owned
    ), CAUGHT_UP_WITHIN * 2)  # fmt: skip
    session.check("its recommendations are v2's, post for post", lambda: (
        top(f"http://127.0.0.1:{port}") == top(session.url, **{"X-Recommend-Version": "2"})
    ))  # fmt: skip
    session.say("replay again, on demand: `workshop sync replay recommend-v2` sends v2 the "
                "whole log once more")  # fmt: skip
    before = top(session.url, **{"X-Recommend-Version": "2"})
    replay = f"{session.address('sync')}/api/sync/subscribers/recommend-v2/replay"
    sent = requests.post(replay, timeout=60)
    session.check(
        f"sync sends recommend-v2 every change again (at least {owned})",
        lambda: sent.status_code == 202 and sent.json()["sent"] >= owned,
        within=0,
    )
    session.check("the stage settles", session.settled, CAUGHT_UP_WITHIN)
    session.check("nothing changed: applying a change twice is applying it once", lambda: (
        stats(session.address("recommend_v2"))["posts"] == owned
        and top(session.url, **{"X-Recommend-Version": "2"}) == before
    ))  # fmt: skip
    session.runner.stop_process("recommend_lab")


class PrivateRedis:
    """A redis-server of the lab's own on a free loopback port, keeping nothing on disk:
    stopped and started again, it comes back empty, as a broker without persistence does."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise click.ClickException(
                "this lab needs redis-server (Debian/Ubuntu: apt-get install redis-server; "
                "macOS: brew install redis)"
            )
        self.binary = binary
        self.folder = Path(tempfile.mkdtemp(prefix="workshop-lab-broker-"))
        self.port = free_base_port(1)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.folder), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + CHECK_WITHIN
        while port_is_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)  # until it listens
        if self.process.poll() is not None or port_is_free(self.port):
            raise click.ClickException(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # SIGKILL: what it held in memory is gone
            self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def broker_outage(session: Session) -> None:
    """Stages 03 and 04: the broker dies and comes back empty; the stage finds what it lost."""
    broker = session.broker
    assert broker is not None
    token = session.user("lab_edsger")
    found = session.get("/api/search", q="python").json()["items"]
    first, second, third = (post["id"] for post in found[:3])

    def tags(post_id: str) -> set[str]:
        return {t["tag"] for t in session.get(f"/api/posts/{post_id}").json()["tags"]}

    def tag(post_id: str, name: str) -> int:
        return requests.post(f"{session.url}/api/posts/{post_id}/tags", json={"tag": name},
                             headers={"Authorization": f"Bearer {token}"},
                             timeout=10).status_code  # fmt: skip

    def sent_to_search() -> int:
        """Return how far sync has sent search's queue, if that is the log's head."""
        log = requests.get(f"{session.address('sync')}/api/sync/subscribers", timeout=10).json()
        search = next(item for item in log["items"] if item["queue"] == "search")
        return search["checkpoint"] if search["checkpoint"] >= log["head"] else -1

    session.check("the stage is settled", session.settled, CAUGHT_UP_WITHIN)
    before = sent_to_search()
    session.say("break 1: stop search; a tag made now waits for it in the broker (search's queue)")
    session.runner.stop_process("search")
    session.check(f"a tag on post {first} is accepted (201)",
                  lambda: tag(first, "lab-in-queue") == 201, within=0)  # fmt: skip
    session.check("sync logs it and sends it on to search's queue",
                  lambda: sent_to_search() > before)  # fmt: skip
    session.say(f"break 2: kill the broker (redis-server on port {broker.port}, no "
                "persistence): search's queue, and the tag in it, are gone")  # fmt: skip
    broker.stop()
    session.look(f"curl -s {session.url}/readyz   (every service: broker down)",
                 f"workshop logs --port {session.runner.port} --no-follow --lines 20")  # fmt: skip
    session.check("/readyz answers 503 and says the broker is down", lambda: (
        session.get("/readyz").status_code == 503 and '"broker"' in session.get("/readyz").text
    ))  # fmt: skip
    session.check("the home page still answers 200 (it needs recommend and tag)",
                  lambda: session.get("/").status_code == 200)  # fmt: skip
    session.check(f"a tag on post {second} made with the broker down is accepted (201): the "
                  "owner's outbox keeps it", lambda: tag(second, "lab-no-broker") == 201,
                  within=0)  # fmt: skip
    session.say("repair: start the broker again (empty: its queues are gone), then search")
    broker.start()
    session.runner.restart_process("search")
    session.check("the stage settles by itself", session.settled, CAUGHT_UP_WITHIN * 3)
    session.check("the tag lost with search's queue reached search (sync sent it again)",
                  lambda: "lab-in-queue" in tags(first))  # fmt: skip
    session.check("the tag made while the broker was down reached search",
                  lambda: "lab-no-broker" in tags(second))  # fmt: skip
    session.check(f"a tag on post {third} made now is accepted",
                  lambda: tag(third, "lab-broker-back") == 201, within=0)  # fmt: skip
    session.check("and reaches search within a few seconds",
                  lambda: "lab-broker-back" in tags(third), within=5)  # fmt: skip


def _message_counts(url: str) -> dict[tuple[str, str, str], float]:
    """Return a service's message counts from /metrics: (read|refused, type, version) -> n."""
    from prometheus_client.parser import text_string_to_metric_families

    names = {"consumer_messages_read": "read", "consumer_messages_dead_lettered": "refused"}
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        (names[s.name], s.labels["type"], s.labels["version"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in names
    }


def _publish(broker_url: str, queue_name: str, message: dict[str, Any]) -> None:
    """Put one envelope on a service's queue, as sync would (the lab's stand-in for it)."""
    import kombu

    from workshop.platform.broker import queue

    with kombu.Connection(broker_url) as connection:
        producer = connection.Producer(serializer="json")
        producer.publish({"messages": [message]}, exchange="", routing_key=queue_name,
                         declare=[queue(queue_name)], delivery_mode=2)  # fmt: skip


def message_versions(session: Session) -> None:
    """Stage 03: ingest writes post.upserted v2; recommend-v1 keeps reading v1; search refuses
    a version nobody knows."""
    from workshop.platform.messages import POST_UPSERTED, Message, first_version
    from workshop.platform.schemas import example, newest

    broker = session.broker
    assert broker is not None
    sync, search, v1, v2 = (
        session.address(p) for p in ("sync", "search", "recommend_v1", "recommend_v2")
    )
    session.check("the stage is settled", session.settled, CAUGHT_UP_WITHIN)
    session.say("post.upserted has a schema per version (workshop/platform/schemas/"
                "post.upserted.v1.json, .v2.json: v2 adds upvote_ratio); ingest writes the "
                "newest")  # fmt: skip
    session.look(f"curl -s {sync}/api/sync/subscribers   (what each subscriber reads)",
                 f"curl -s {v1}/metrics | grep consumer_messages",
                 f"curl -s {v2}/metrics | grep consumer_messages")  # fmt: skip

    def reads(queue: str) -> set[int]:
        items = requests.get(f"{sync}/api/sync/subscribers", timeout=10).json()["items"]
        return set(next(item for item in items if item["queue"] == queue)["reads"][POST_UPSERTED])

    session.check("recommend-v2 declared it reads post.upserted v1 and v2 (at least)",
                  lambda: {1, 2} <= reads("recommend-v2"))  # fmt: skip
    session.check("recommend-v1 and search declared they read v1 only",
                  lambda: reads("recommend-v1") == reads("search") == {1})  # fmt: skip
    session.check("recommend-v2 took post.upserted in v2 or later", lambda: any(
        kind == "read" and int(version) >= 2 and n > 0
        for (kind, _, version), n in _message_counts(v2).items()
    ))  # fmt: skip
    session.check("recommend-v1 took it in v1 only (sync took the newer fields off)", lambda: (
        {version for (kind, t, version) in _message_counts(v1) if kind == "read"
         and t == POST_UPSERTED} == {"1"}
    ))  # fmt: skip

    unknown = newest(POST_UPSERTED) + 1
    post_id = "labahead"
    payload = example(POST_UPSERTED, title="A post from a producer ahead of its readers")
    ahead = Message(POST_UPSERTED, post_id, first_version(), {**payload, "flair": "news"},
                    "lab", schema_version=unknown)  # fmt: skip
    session.say(f"break: search is handed post {post_id} as post.upserted v{unknown}, a version "
                "with no schema in the repository (a producer ahead of its readers)")  # fmt: skip
    _publish(broker.url, "search", ahead.to_dict())
    session.look(f"curl -s {search}/readyz   (dependencies.dead_letters)",
                 f"redis-cli -p {broker.port} lrange search.dead-letter 0 -1   (the message, "
                 "and why)")  # fmt: skip

    def dead_letters() -> dict[str, Any]:
        answer = requests.get(f"{search}/readyz", timeout=10).json()
        return answer["dependencies"]["dead_letters"]

    session.check("search refuses it to its dead-letter queue, and /readyz says why", lambda: (
        dead_letters()["refused"] == 1 and f"post.upserted v{unknown}" in dead_letters()["last"]
    ))  # fmt: skip
    counted = ("refused", POST_UPSERTED, str(unknown))
    session.check(f"search's /metrics counts it (consumer_messages_dead_lettered, v{unknown})",
                  lambda: _message_counts(search)[counted] == 1)  # fmt: skip
    session.check(f"post {post_id} is nowhere (nothing was applied)",
                  lambda: session.get(f"/api/posts/{post_id}").status_code == 404)  # fmt: skip
    session.check("search still answers, and the stage is settled: a refused message waits "
                  "for a person, not for a retry", lambda: (
                      session.get("/api/search", q="python").status_code == 200
                      and session.settled()
                  ))  # fmt: skip
    session.check("nobody else refused anything", lambda: not any(
        n for url in (v1, v2, sync, session.address("tag"))
        for (kind, _, _), n in _message_counts(url).items() if kind == "refused"
    ))  # fmt: skip


SLOW_MS = 500  # the knob's wait for recommend and for tag in the slow-upstream lab
SLOW_KNOB = {latency.SETTING: f"recommend={SLOW_MS},tag={SLOW_MS}"}


def slow_upstream(session: Session) -> None:
    """Stages 03 and 04: recommend and tag answer slowly; 03's page waits for each in turn."""
    turns, wait = 8, SLOW_MS / 1000
    knob = session.runner.env[latency.SETTING]
    stage = get_stage("04-async")
    other = StageRunner(stage, free_base_port(len(stage.processes())),
                        {"WORKSHOP_SEED_SAMPLE": "1", latency.SETTING: knob})  # fmt: skip
    other.restart, other.echo = False, False
    session.say(f"both stages run with {latency.SETTING}={knob}: each call to recommend or "
                f"tag waits {SLOW_MS} ms; starting 04 beside 03")  # fmt: skip
    other.start()
    try:
        if not other.wait_ready():
            raise click.ClickException("04-async did not start")
        fronts = {"03": session.url, "04": f"http://127.0.0.1:{other.port}"}
        session.look(*(f"for i in 1 2 3; do curl -s -o /dev/null -w '%{{time_total}}\\n' {url}/; "
                       f"done   ({name})" for name, url in fronts.items()))  # fmt: skip
        took: dict[str, list[float]] = {"03": [], "04": []}
        for _ in range(turns):  # in turn, so that both see the same load
            for name, url in fronts.items():
                answer = requests.get(f"{url}/", timeout=30)
                if answer.status_code == 200:
                    took[name].append(answer.elapsed.total_seconds())
        fastest = {name: min(times, default=float("inf")) for name, times in took.items()}
        session.say("home page, fastest of {}: 03 {:.0f} ms, 04 {:.0f} ms".format(
            turns, fastest["03"] * 1000, fastest["04"] * 1000))  # fmt: skip
        session.check(
            f"every home page answered 200 ({turns} each)",
            lambda: all(len(times) == turns for times in took.values()),
            within=0,
        )
        session.check(f"03's page waits for both in turn: never under {2 * SLOW_MS} ms",
                      lambda: fastest["03"] >= 2 * wait, within=0)  # fmt: skip
        session.check(f"04's page waits for both at once: its fastest at least {SLOW_MS // 2} ms "
                      "under 03's", lambda: fastest["04"] <= fastest["03"] - wait / 2,
                      within=0)  # fmt: skip
    finally:
        other.stop()


class _Traffic(threading.Thread):
    """A user at work through the front door until stopped: reads, pages, a tag added and
    taken back, preferences; every answer that is not the contract's is counted."""

    def __init__(self, session: Session, post_id: str) -> None:
        super().__init__(daemon=True)
        self.session, self.post_id = session, post_id
        self.token = session.user("lab_wren")
        self.calls, self.failed = 0, []
        self.stopping = threading.Event()

    def _call(self, status: int, method: str, path: str, **kwargs: Any) -> None:
        try:
            answer = requests.request(method, self.session.url + path, timeout=30, **kwargs)
            code: int | str = answer.status_code
        except requests.RequestException as error:
            code = type(error).__name__
        self.calls += 1
        if code != status:
            self.failed.append(f"{method} {path}: {code}")

    def run(self) -> None:
        auth = {"Authorization": f"Bearer {self.token}"}
        post, tag = self.post_id, f"lab-traffic-{self.session.mark}"
        while not self.stopping.is_set():
            self._call(200, "GET", "/api/search?q=python")
            self._call(200, "GET", "/")
            self._call(201, "POST", f"/api/posts/{post}/tags", json={"tag": tag}, headers=auth)
            self._call(204, "DELETE", f"/api/posts/{post}/tags/{tag}", headers=auth)
            self._call(200, "PUT", "/api/me/preferences", json={"topics": ["web"]}, headers=auth)
            self._call(200, "GET", "/api/recommendations?limit=5", headers=auth)


ROUND_OF_CALLS = 6  # what _Traffic sends in one round


def _wait_for_calls(traffic: _Traffic, count: int) -> None:
    """Wait until the user has made `count` more calls (or stopped), at most CHECK_WITHIN s."""
    target, deadline = traffic.calls + count, time.monotonic() + CHECK_WITHIN
    while traffic.calls < target and traffic.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)


def strangler_fig(session: Session) -> None:
    """Stage 03 as a migration: the verbs leave the running monolith one by one while a
    user works on; no call fails, and what the monolith stored stays."""
    migration = strangler.Migration(
        session.runner.stage.ports(session.runner.port),
        Path(session.runner.env[config.DATA_DIR_ENV]) / strangler.ROUTES_FILE,
    )
    token = session.user("lab_ada")
    auth = {"Authorization": f"Bearer {token}"}
    post_id = session.get("/api/search", q="python").json()["items"][0]["id"]
    kept = f"lab-at-the-monolith-{session.mark}"

    def search() -> Any:
        """Search's answer without the lab's own tags (the user adds and removes one)."""
        answer = session.get("/api/search", q="python").json()
        for item in answer["items"]:
            item["tags"] = [t for t in item["tags"] if session.mark not in t["tag"]]
        return answer

    before = search()

    def served_by(path: str) -> str:
        return session.get(path).headers.get("X-Served-By", "").split("@")[0]

    session.check("the monolith answers every verb at first",
                  lambda: served_by("/api/search?q=python") == "monolith", within=0)  # fmt: skip
    requests.post(f"{session.url}/api/posts/{post_id}/tags", json={"tag": kept},
                  headers=auth, timeout=10).raise_for_status()  # fmt: skip
    session.say(f"lab_ada tagged post {post_id} '{kept}' at the monolith; a user works on")
    traffic = _Traffic(session, post_id)
    traffic.start()
    session.look(f"curl -sI '{session.url}/api/search?q=python' | grep X-Served-By",
                 f"workshop strangler status --port {session.runner.port}")  # fmt: skip
    try:
        for verb in ("search", "recommend", "tag", "users", "ingest"):
            session.say(f"move: {verb}")
            migration.move(verb, lambda line: session.say("  " + line))
            _wait_for_calls(traffic, ROUND_OF_CALLS)  # a round of the user's on the new route
    except strangler.StranglerError as error:
        session.check(f"every verb moved ({error})", lambda: False, within=0)
    finally:
        traffic.stopping.set()
        traffic.join(60)
    session.check(f"none of the user's {traffic.calls} calls failed during the moves",
                  lambda: not traffic.failed, within=0)  # fmt: skip
    for path, service in [("/api/search?q=python", "search"), ("/api/tags", "tag"),
                          ("/api/recommendations", "recommend-v1")]:  # fmt: skip
        session.check(f"{path} is answered by {service}", lambda p=path, s=service: (
            served_by(p) == s), within=0)  # fmt: skip
    session.check("search answers as the monolith did",
                  lambda: search() == before)  # fmt: skip
    login = {"username": session.username("lab_ada"), "password": session.password}
    session.check("lab_ada, registered at the monolith, logs in at the users service",
                  lambda: requests.post(f"{session.url}/api/tokens", json=login,
                                        timeout=10).status_code == 200, within=0)  # fmt: skip
    untag = requests.delete(f"{session.url}/api/posts/{post_id}/tags/{kept}", headers=auth,
                            timeout=10)  # fmt: skip
    session.check("the tag service knows the monolith's tag, and takes it back (204)",
                  lambda: untag.status_code == 204 and kept not in {
                      t["tag"] for t in session.get(f"/api/posts/{post_id}").json()["tags"]
                  })  # fmt: skip


@dataclass(frozen=True)
class Lab:
    """A failure lab: its stage, how long it takes in class, and what it does."""

    name: str
    stage: str
    minutes: int
    run: Callable[[Session], None]
    env: dict[str, str] = field(default_factory=dict)  # the stage's settings for the lab
    broker: bool = False  # a Redis of the lab's own as the broker (the lab stops it)
    own_stage: str = ""  # why else it needs a stage of its own (empty: it can use yours)
    mode: str = ""  # the stage run another way (strangler: its Procfile.strangler)

    @property
    def summary(self) -> str:
        return " ".join((self.run.__doc__ or "").split(": ", 1)[-1].split())

    @property
    def needs_own_stage(self) -> str | None:
        """Say why the lab cannot run on a stage the attendee runs (None: it can)."""
        if self.own_stage:
            return self.own_stage
        if self.broker:
            return "it stops the broker: a Redis of its own"
        if self.env:
            return "it needs settings of its own: " + ", ".join(f"{k}={v}" for k, v in
                                                                 self.env.items())  # fmt: skip
        return None


LABS = [
    Lab("rest-api-down", "02-rest-api", 10, rest_api_down),
    Lab("service-down", "03-services", 10, service_down_and_back),
    Lab("sync-killed", "03-services", 15, sync_killed_mid_import),
    Lab("canary-split", "03-services", 10, canary_split, {"RECOMMEND_CANARY_PERCENT": "20"}),
    Lab(
        "replay",
        "03-services",
        10,
        replay_into_new_version,
        own_stage="the new copy it starts would stay subscribed to your stage's sync",
    ),
    Lab(
        "strangler-fig",
        "03-services",
        15,
        strangler_fig,
        own_stage="it runs the stage as a migration, and an owner that moved stays moved",
        mode=strangler.MODE,
    ),
    Lab("broker-outage", "03-services", 15, broker_outage, broker=True),
    Lab("broker-outage-async", "04-async", 15, broker_outage, broker=True),
    Lab("message-versions", "03-services", 15, message_versions, broker=True),
    Lab("slow-upstream", "03-services", 15, slow_upstream, SLOW_KNOB),
    Lab("worker-killed", "04-async", 15, worker_killed_mid_job),
]


def find(name: str) -> Lab:
    for lab in LABS:
        if lab.name == name:
            return lab
    raise click.ClickException(f"no lab {name!r} (labs: {', '.join(lab.name for lab in LABS)})")


def running_for(lab: Lab, port: int | None) -> dict[str, Any] | None:
    """Return the record of the stage the lab would attach to: the lab's stage that
    `workshop up` runs on `port`, or the newest it runs (None: there is none)."""
    for record in running_stages():
        if record["stage"] == lab.stage and port in (None, record["port"]):
            return record
    return None


def run(lab: Lab, port: int | None, own: bool = False) -> bool:
    """Run the lab on the stage the attendee runs, or on a stage of its own; tell whether
    every check held."""
    running = None if own else running_for(lab, port)
    if running is not None and lab.needs_own_stage:
        click.echo(f"lab {lab.name}: not on your {lab.stage} on port {running['port']}: "
                   f"{lab.needs_own_stage}")  # fmt: skip
        if port is not None:
            raise click.ClickException("run it without --port, or with a free one")
        running = None
    if running is not None:
        if not running.get("up"):
            raise click.ClickException(f"{lab.stage} on port {running['port']} is not up yet")
        return _run_attached(lab, AttachedStage.from_record(running))
    return _run_on_own_stage(lab, port)


def _run_attached(lab: Lab, stage: AttachedStage) -> bool:
    click.echo(f"lab {lab.name}: on your {stage.stage.name} at http://127.0.0.1:{stage.port}/ "
               "(watch its `workshop up` output too)")  # fmt: skip
    session = Session(stage)
    try:
        lab.run(session)
    except ControlError as error:
        raise click.ClickException(f"the lab could not go on: {error}") from None
    finally:
        left = stage.release()  # what the lab stopped starts again, however the lab ended
        if left:
            click.echo(f"lab {lab.name}: could not start again {'; '.join(left)}: stop your "
                       "stage and run `workshop up` again", err=True)  # fmt: skip
    return _said(lab, session)


def _said(lab: Lab, session: Session) -> bool:
    held = sum(passed for _, passed in session.results)
    click.echo(f"lab {lab.name}: {held} of {len(session.results)} checks held")
    return held == len(session.results) and bool(session.results)


def _run_on_own_stage(lab: Lab, port: int | None) -> bool:
    """Start the lab's stage, run the lab, stop the stage."""
    stage = get_stage(lab.stage)
    if lab.mode:
        stage = stage.in_mode(lab.mode)
    base = port or free_base_port(len(stage.processes()))
    busy = [p for p in stage.ports(base).values() if not port_is_free(p)]
    if busy:
        raise click.ClickException(f"port {busy[0]} is in use: stop what holds it or pick --port")
    env = {"WORKSHOP_SEED_SAMPLE": "1", **lab.env}
    runner = StageRunner(stage, base, env)  # a data folder of its own
    broker = PrivateRedis() if lab.broker else None
    if broker is not None:
        broker.start()
        runner.env["BROKER_URL"] = broker.url
    runner.restart = False
    runner.echo = False  # the lab's own lines only; each process's output is in its log
    click.echo(f"lab {lab.name}: starting {stage.name} on http://127.0.0.1:{base}/ ...")
    session = Session(runner, broker=broker)
    try:
        runner.start()
        if not runner.wait_ready():
            raise click.ClickException(f"{stage.name} did not start (see its log above)")
        lab.run(session)
    finally:
        runner.stop()
        if broker is not None:
            broker.remove()
    return _said(lab, session)
