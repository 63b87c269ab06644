"""`workshop lab`: failure labs that check themselves.

A lab starts a stage of its own (its own data folder, on --port or free ports), says what
it will break, breaks it, tells the attendee what to look at while it is broken, checks
what a reader of the stage's README should see (the page degraded and said why, /readyz
named the culprit, nothing acknowledged was lost), repairs it, and checks that the stage
caught up. Each check prints PASS or FAIL; the command exits 0 when every one held.
The stage runs with restarts off, as `workshop up --no-restart` does: the lab breaks
and repairs it itself, so what the attendee watches is the failure, not the supervisor.
"""

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
import requests

from workshop.tools.runner import StageRunner, free_base_port, port_is_free
from workshop.tools.stages import get_stage

CHECK_WITHIN = 30.0  # how long a lab waits for what it expects to see (a busy laptop)
CAUGHT_UP_WITHIN = 60.0  # after a repair: start-up, and the copies catching up


@dataclass
class Session:
    """One run of a lab: the stage it breaks, and what each check found."""

    runner: StageRunner
    results: list[tuple[str, bool]] = field(default_factory=list)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))  # the lab's users'

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

    def user(self, name: str) -> str:
        """Register a user through the front door; return a token."""
        credentials = {"username": name, "password": self.password}
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
    session.check("lab_ada still logs in: the API kept its data", lambda: requests.post(
        f"{session.url}/api/tokens", json={"username": "lab_ada", "password": session.password},
        timeout=10).status_code == 200)  # fmt: skip


def service_down_and_back(session: Session) -> None:
    """Stage 03: search stops; the rest serves on, a tag made meanwhile reaches it later."""
    token = session.user("lab_grace")
    post_id = session.get("/api/search", q="flask").json()["items"][0]["id"]
    session.say("break: stop the search service; the gateway, tag and recommend keep running")
    session.runner.stop_process("search")
    session.look(f"{session.url}/   (the home page needs recommend and tag only)",
                 f"{session.url}/search?q=flask   (the page says search is down)",
                 f"curl -s {session.url}/readyz")  # fmt: skip
    _check_search_is_down(session, "search")
    session.check("the home page still answers 200", lambda: session.get("/").status_code == 200)
    session.say(f"while search is down, tag post {post_id} 'lab-while-down' (tag accepts it)")
    tagged = requests.post(f"{session.url}/api/posts/{post_id}/tags", timeout=10,
                           headers={"Authorization": f"Bearer {token}"},
                           json={"tag": "lab-while-down"})  # fmt: skip
    session.check("the tag is accepted (201) with search down",
                  lambda: tagged.status_code == 201, within=0)  # fmt: skip
    session.say("repair: start search again; it catches up from its queue")
    session.runner.restart_process("search")
    session.check("the stage is ready again", lambda: session.get("/readyz").status_code == 200,
                  CAUGHT_UP_WITHIN)  # fmt: skip
    session.check("search's copy of the post has the tag made while it was down", lambda: (
        "lab-while-down" in {t["tag"] for t in session.get(f"/api/posts/{post_id}").json()["tags"]}
    ), CAUGHT_UP_WITHIN)  # fmt: skip


def worker_killed_mid_job(session: Session) -> None:
    """Stage 04: the Celery worker dies mid-job; /readyz says so, a new worker finishes it."""
    from workshop.data.sample import export_line, sample_posts

    token = session.user("lab_linus")
    posts = sample_posts(4000, seed=17)  # another seed: posts new to the stage
    body = "".join(export_line({**p, "id": f"lab{p['id']}"}, i) + "\n"
                   for i, p in enumerate(posts)).encode()  # fmt: skip
    upload = requests.post(f"{session.url}/api/ingest", data=body, timeout=60,
                           headers={"Authorization": f"Bearer {token}",
                                    "Content-Type": "application/x-ndjson"})  # fmt: skip
    upload.raise_for_status()
    job_id = upload.json()["job_id"]

    def job() -> dict[str, Any]:
        return session.get(f"/api/jobs/{job_id}").json()

    session.say(f"import of {len(posts)} posts queued as job {job_id}")
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


@dataclass(frozen=True)
class Lab:
    """A failure lab: its stage, how long it takes in class, and what it does."""

    name: str
    stage: str
    minutes: int
    run: Callable[[Session], None]

    @property
    def summary(self) -> str:
        return (self.run.__doc__ or "").split(": ", 1)[-1].strip()


LABS = [
    Lab("rest-api-down", "02-rest-api", 10, rest_api_down),
    Lab("service-down", "03-services", 10, service_down_and_back),
    Lab("worker-killed", "04-async", 15, worker_killed_mid_job),
]


def find(name: str) -> Lab:
    for lab in LABS:
        if lab.name == name:
            return lab
    raise click.ClickException(f"no lab {name!r} (labs: {', '.join(lab.name for lab in LABS)})")


def run(lab: Lab, port: int | None) -> bool:
    """Start the lab's stage, run the lab, stop the stage; tell whether every check held."""
    stage = get_stage(lab.stage)
    base = port or free_base_port(len(stage.processes()))
    busy = [p for p in stage.ports(base).values() if not port_is_free(p)]
    if busy:
        raise click.ClickException(f"port {busy[0]} is in use: stop what holds it or pick --port")
    runner = StageRunner(stage, base, {"WORKSHOP_SEED_SAMPLE": "1"})  # a data folder of its own
    runner.restart = False
    runner.echo = False  # the lab's own lines only; each process's output is in its log
    click.echo(f"lab {lab.name}: starting {stage.name} on http://127.0.0.1:{base}/ ...")
    runner.start()
    session = Session(runner)
    try:
        if not runner.wait_ready():
            raise click.ClickException(f"{stage.name} did not start (see its log above)")
        lab.run(session)
    finally:
        runner.stop()
    held = sum(passed for _, passed in session.results)
    click.echo(f"lab {lab.name}: {held} of {len(session.results)} checks held")
    return held == len(session.results) and bool(session.results)
