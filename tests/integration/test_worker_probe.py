"""Stage 04's Celery worker answers /healthz on a thread of its own, which says the process
is alive, not that it takes tasks; so its container's healthcheck (compose) and liveness
probe (Kubernetes) ask the worker itself, over the broker: `celery inspect ping` to
its own node (celery@$HOSTNAME). Here the worker runs from its Procfile line on the real
Redis, and each probe's command runs as the container would run it: 0 while the worker
consumes, not 0 once it is gone."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.acceptance.stage import eventually
from tests.containers.project import DOCKER, resolved
from tests.timing import scaled
from tooling.runner import StageRunner, free_base_port
from tooling.stages import get_stage
from workshop.config import ROOT

WORKER_READY_WITHIN = 90.0  # the worker imports Celery and the stage; the machine is shared
PROBE_SECONDS = 60


@pytest.fixture
def broker_url(redis_url: str) -> str:
    """A Redis database of the test's own."""
    return redis_url


def compose_healthcheck(tmp_path: Path) -> str:
    """Return the worker's healthcheck in docker/04-async.yaml: a shell command line."""
    services = resolved(DOCKER / "04-async.yaml", tmp_path)["services"]
    kind, line = services["worker"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    # `config` writes $$ so that its output is a compose file again; the engine gets $.
    return line.replace("$$", "$")


def kubernetes_probe() -> str:
    """Return the worker's liveness probe in docker/k8s/worker.yaml: a shell command line."""
    documents = yaml.safe_load_all((DOCKER / "k8s" / "worker.yaml").read_text())
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    shell, flag, line = container["livenessProbe"]["exec"]["command"]
    assert (shell, flag) == ("sh", "-c")
    return line


def probe(line: str, broker_url: str) -> subprocess.CompletedProcess:
    """Run a probe's shell line as in the container: from the image's /app (the repository
    root here), with the worker's broker and the hostname Docker and Kubernetes set."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HOSTNAME": socket.gethostname(),
        "BROKER_URL": broker_url,
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    return subprocess.run(
        ["sh", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=scaled(PROBE_SECONDS),
    )  # fmt: skip


def test_the_worker_probes_ping_the_worker_over_the_broker(broker_url, tmp_path):
    lines = {"compose": compose_healthcheck(tmp_path), "kubernetes": kubernetes_probe()}
    for line in lines.values():
        assert "celery@$HOSTNAME" in line  # its own node: another worker's answer would not do
    stage = get_stage("04-async")
    port = free_base_port(1)
    settings = {"BROKER_URL": broker_url, "WORKSHOP_DATA_DIR": str(tmp_path / "run"),
                "WORKSHOP_SEED_SAMPLE": "0"}  # fmt: skip
    runner = StageRunner(stage, port, settings)
    runner.start_extra("worker", "worker", port, {})
    try:
        for source, line in lines.items():
            answer = eventually(
                lambda line=line: probe(line, broker_url),
                lambda done: done.returncode == 0 or runner.failed() is not None,
                within=WORKER_READY_WITHIN,
            )
            assert answer.returncode == 0, (source, answer.stdout + answer.stderr)
            assert runner.failed() is None, "the worker exited"
    finally:
        runner.stop()
    for source, line in lines.items():
        gone = probe(line, broker_url)
        assert gone.returncode != 0, (source, gone.stdout)
