"""Stage 04's Celery extras, with real processes only (the stage's Procfile: worker and
beat), on the broker-free default and on Redis; never Celery's eager mode.

The periodic re-tagging: Celery beat sends the worker `ingest.retag_topics`, which gives
every stored post the topics the current vocabulary assigns and publishes the ones that
changed. Sync's replay as a task: `workshop sync replay SERVICE` queues `sync.replay` and
follows it; the worker asks sync through the broker, and sync answers when it is done.

A post with stale topics is made as an older vocabulary would have left it: with the
worker stopped, its saved store (the embedded store of this run, reloaded at start) gets
other topics and a new version to publish, so search shows them. Beat must then put the
vocabulary's topics back, through the same outbox and sync as any change.
"""

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pytest
import redis
import requests
import yaml
from celery import Celery

from tests.acceptance.stage import eventually
from tests.containers.project import DOCKER, resolved
from tests.running import running_stage
from tests.timing import scaled
from tooling.runner import StageRunner, free_base_port
from tooling.stages import get_stage
from workshop import ingestion
from workshop.config import ROOT
from workshop.domain.topics import TOPICS

STAGE = get_stage("04-async")
RETAG_SECONDS = 3  # beat's interval here (an hour by default)
VISIBLE_WITHIN = 60.0  # a change reaches search through the outbox and sync
RETAG_WITHIN = 90.0  # beat's next run, the worker's pass over every post, then sync
TASK_WITHIN = 90.0
PROBE_SECONDS = 60


@pytest.fixture(scope="module", params=["default", "redis"])
def stage(request: pytest.FixtureRequest, redis_databases) -> Iterator[StageRunner]:
    """Stage 04 with beat re-tagging every few seconds, on one broker (a Redis database of
    the module's own)."""
    env = {"WORKSHOP_RETAG_SECONDS": str(RETAG_SECONDS), "WORKSHOP_SEED_SAMPLE": "1",
           "BROKER_URL": "", "CELERY_RESULT_BACKEND": "", "REGISTRY_URL": "",
           "MONGO_URL": ""}  # fmt: skip
    with redis_databases.database() as redis_url:
        if request.param == "redis":
            env["BROKER_URL"] = redis_url
        with running_stage(STAGE.name, env) as runner:
            yield runner


def post_topics(stage: StageRunner, post_id: str) -> list[str]:
    answer = requests.get(f"http://127.0.0.1:{stage.port}/api/posts/{post_id}", timeout=scaled(10))
    assert answer.status_code == 200, answer.text
    return answer.json()["topics"]


def log_head(stage: StageRunner) -> int:
    """Return the sync log's head: it moves with every change an owner publishes."""
    sync = stage.stage.ports(stage.port)["sync"]
    answer = requests.get(f"http://127.0.0.1:{sync}/api/sync/subscribers", timeout=scaled(10))
    return answer.json()["head"]


def give_stale_topics(stage: StageRunner, post_id: str, topics: list[str]) -> None:
    """With the worker stopped, change a post's topics in its saved store, as a change of
    its own (a new version, marked for publishing): what an older vocabulary left."""
    path = Path(stage.env["WORKSHOP_DATA_DIR"]) / "store" / "ingest.bson"
    entries = bson.decode_all(path.read_bytes())  # {"c": collection, "d": document} each
    (post,) = [e["d"] for e in entries if e["c"] == "posts" and e["d"]["_id"] == post_id]
    post.update(topics=topics, version=post["version"] + 1, outbox_pending=True)
    path.write_bytes(b"".join(bson.encode(entry) for entry in entries))


@contextlib.contextmanager
def celery_client(stage: StageRunner) -> Iterator[Celery]:
    """A Celery client with the worker's own settings (the stage's broker and result store)."""
    names = ("BROKER_URL", "CELERY_RESULT_BACKEND", "WORKSHOP_DATA_DIR")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: stage.env[name] for name in names})
    try:
        client = Celery("it-retag-client")
        client.conf.update(STAGE.load("ingest.tasks").celery_settings())
        yield client
        client.close()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_beat_gives_stale_posts_the_vocabulary_topics_and_a_second_run_changes_nothing(stage):
    post = next(p for p in ingestion.sample().posts if p["topics"])
    current = post["topics"]
    stale = [next(topic for topic in TOPICS if topic not in current)]
    assert post_topics(stage, post["id"]) == current

    stage.stop_process("beat")
    stage.stop_process("worker")  # a clean stop saves its store
    give_stale_topics(stage, post["id"], stale)
    stage.restart_process("worker")
    seen = eventually(lambda: post_topics(stage, post["id"]), lambda t: t == stale,
                      within=VISIBLE_WITHIN)  # fmt: skip
    assert seen == stale, "the stale topics never reached search"

    stage.restart_process("beat")
    fixed = eventually(lambda: post_topics(stage, post["id"]), lambda t: t == current,
                       within=RETAG_WITHIN)  # fmt: skip
    assert fixed == current, "beat did not re-tag the post"

    # Beat keeps sending the task; one more run, followed to its end, finds nothing to do.
    head = log_head(stage)
    with celery_client(stage) as client:
        result = client.send_task("ingest.retag_topics").get(timeout=scaled(TASK_WITHIN))
    assert result["retagged"] == 0 and result["checked"] >= len(ingestion.sample().posts)
    assert log_head(stage) == head, "a run that changed nothing published a change"
    assert post_topics(stage, post["id"]) == current


# --- sync's replay as a Celery task ------------------------------------------------------


def replay(stage: StageRunner, subscriber: str) -> subprocess.CompletedProcess:
    """Run `workshop sync replay SUBSCRIBER` on the stage, as an operator would."""
    workshop = Path(sys.executable).with_name("workshop")
    env = {**os.environ, "BROKER_URL": stage.env["BROKER_URL"]}
    return subprocess.run(
        [str(workshop), "sync", "replay", subscriber, "--port", str(stage.port)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=scaled(TASK_WITHIN),
    )  # fmt: skip


def test_a_replay_is_a_celery_task_that_ends_when_sync_has_sent_everything(stage):
    done = replay(stage, "search")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    task_id = lines[0].removeprefix("replay ").removesuffix(" queued")
    sent = int(lines[-1].removeprefix("sent ").removesuffix(" changes to search"))
    assert sent >= len(ingestion.sample().posts), lines  # every post, from the start
    # The task's own record in Celery's result store says what sync answered.
    with celery_client(stage) as client:
        result = client.AsyncResult(task_id)
        assert (result.state, result.result) == ("SUCCESS", {"queue": "search", "sent": sent})


def test_a_replay_for_no_subscriber_fails_with_sync_s_reason(stage):
    refused = replay(stage, "nobody")
    assert refused.returncode != 0
    assert "sync has no subscriber 'nobody'" in refused.stderr, refused.stdout + refused.stderr


# --- beat's health check in containers --------------------------------------------------


def probe_lines(tmp_path: Path) -> dict[str, str]:
    """Return beat's healthcheck (compose) and liveness probe (Kubernetes): shell lines."""
    services = resolved(DOCKER / "04-async.yaml", tmp_path)["services"]
    kind, line = services["beat"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    (deployment,) = yaml.safe_load_all((DOCKER / "k8s" / "beat.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    shell, flag, probe = container["livenessProbe"]["exec"]["command"]
    assert (shell, flag) == ("sh", "-c")
    # `config` writes $$ so that its output is a compose file again; the engine gets $.
    return {"compose": line.replace("$$", "$"), "kubernetes": probe}


def run_probe(line: str, broker_url: str, run_dir: Path) -> subprocess.CompletedProcess:
    """Run a probe's shell line as in the container (from the repository root, as /app)."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HOSTNAME": socket.gethostname(),
        "BROKER_URL": broker_url,
        "WORKSHOP_DATA_DIR": str(run_dir),
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    return subprocess.run(["sh", "-c", line], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=scaled(PROBE_SECONDS))  # fmt: skip


def test_the_beat_probes_ping_beat_over_the_broker(redis_url, tmp_path):
    """On a Redis database of the test's own: the module's Redis stage (its beat answers to
    the same name, celerybeat@<host>) may still run on another while it does."""
    lines = probe_lines(tmp_path)
    for line in lines.values():
        assert "celerybeat@$HOSTNAME" in line  # beat's own node, not a worker's
    broker_url = redis_url
    run_dir = tmp_path / "run"
    runner = StageRunner(STAGE, free_base_port(1), {"BROKER_URL": broker_url,
                                                    "WORKSHOP_DATA_DIR": str(run_dir)})  # fmt: skip
    runner.start_extra("beat", "beat", runner.port, {})
    try:
        for source, line in lines.items():
            answer: Any = eventually(
                lambda line=line: run_probe(line, broker_url, run_dir),
                lambda done: done.returncode == 0 or runner.failed() is not None,
                within=PROBE_SECONDS,
            )
            assert answer.returncode == 0, (source, answer.stdout + answer.stderr)
            assert runner.failed() is None, "beat exited"
    finally:
        runner.stop()
        redis.Redis.from_url(broker_url).flushdb()  # the test's own database
    for source, line in lines.items():
        gone = run_probe(line, broker_url, run_dir)
        assert gone.returncode != 0, (source, gone.stdout)
