"""`workshop up` looks after its processes, as compose's restart policy and Kubernetes do.

A process of a ready stage killed with SIGKILL is started again after a short pause, and
the log says so; the stage is ready again with the same data. With --no-restart it stays
down and the log says that too, for the labs and exercises that want the failure to last.
"""

import os
import signal
from pathlib import Path

import psutil
import requests

from tests.acceptance.stage import eventually
from tests.timing import scaled
from tooling.launcher import LaunchedStage
from tooling.stages import get_stage

STAGE = "03-services"
VICTIM = "search"


def process_on(port: int) -> psutil.Process | None:
    """Return the server process listening on a loopback port (gunicorn's master), or None."""
    for connection in psutil.net_connections("tcp"):
        if connection.laddr.port == port and connection.status == psutil.CONN_LISTEN:
            process = psutil.Process(connection.pid)
            parent = process.parent()
            return parent if parent and "gunicorn" in " ".join(parent.cmdline()) else process
    return None


def ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=scaled(5)).status_code == 200
    except requests.RequestException:
        return False


def found(url: str) -> int | None:
    try:
        return requests.get(f"{url}/api/search", params={"q": "python"}, timeout=scaled(5)).json()[
            "total"
        ]
    except (requests.RequestException, ValueError, KeyError):
        return None


def test_a_process_that_exits_is_started_again_unless_told_not_to(tmp_path: Path) -> None:
    stage = LaunchedStage(STAGE, tmp_path, env={"MONGO_URL": ""})
    stage.start()
    try:
        before = found(stage.url)
        port = get_stage(STAGE).ports(stage.port)[VICTIM]
        killed = process_on(port)
        assert killed is not None
        os.killpg(killed.pid, signal.SIGKILL)
        log = Path(stage.log_path)
        assert eventually(lambda: "starting it again" in log.read_text(), bool, 20)
        assert eventually(lambda: "'search' started again" in log.read_text(), bool, 20)
        back = eventually(lambda: process_on(port), lambda p: p and p.pid != killed.pid, 60)
        assert back is not None and back.pid != killed.pid
        assert eventually(lambda: ready(stage.url), bool, 60), stage.log_tail()
        assert eventually(lambda: found(stage.url), lambda n: n == before, 30) == before
    finally:
        assert stage.stop() == 0

    held = LaunchedStage(STAGE, tmp_path / "held", env={"MONGO_URL": ""},
                         options=["--no-restart"])  # fmt: skip
    (tmp_path / "held").mkdir()
    held.start()
    try:
        port = get_stage(STAGE).ports(held.port)[VICTIM]
        victim = process_on(port)
        assert victim is not None
        os.killpg(victim.pid, signal.SIGKILL)
        log = Path(held.log_path)
        assert eventually(lambda: "(--no-restart)" in log.read_text(), bool, 20)
        assert eventually(lambda: not ready(held.url), bool, 20)
        assert "starting it again" not in log.read_text()
        assert process_on(port) is None, "the killed process is back although --no-restart"
    finally:
        held.stop()


def readiness(url: str) -> tuple[int, dict]:
    """Return a /readyz answer's status and body ((0, {}) if nothing answers)."""
    try:
        answer = requests.get(f"{url}/readyz", timeout=scaled(10))
        return answer.status_code, answer.json()
    except (requests.RequestException, ValueError):
        return 0, {}


def test_04_is_not_ready_while_its_worker_is_stopped_or_dead(tmp_path: Path) -> None:
    """Without its Celery worker every job stays pending: ingest's /readyz names the worker
    and the stage's is 503 within seconds of a SIGSTOP (the port still takes connections,
    nothing answers), ready again after SIGCONT, and 503 again once it is killed."""
    stage = LaunchedStage("04-async", tmp_path, env={"MONGO_URL": ""}, options=["--no-restart"])
    stage.start()
    try:
        ports = get_stage("04-async").ports(stage.port)
        ingest = f"http://127.0.0.1:{ports['ingest']}"
        assert readiness(ingest)[1]["dependencies"]["worker"]["ok"] is True
        worker = process_on(ports["worker"])
        assert worker is not None and "celery" in " ".join(worker.cmdline())

        def worker_down(body: dict) -> bool:
            return body.get("dependencies", {}).get("worker", {}).get("ok") is False

        os.kill(worker.pid, signal.SIGSTOP)
        try:
            status, body = eventually(lambda: readiness(ingest), lambda a: worker_down(a[1]),
                                      10)  # fmt: skip
            assert status == 503 and worker_down(body), body
            status, body = eventually(lambda: readiness(stage.url), lambda a: a[0] == 503,
                                      10)  # fmt: skip
            assert status == 503, body
            assert body["dependencies"]["ingest"]["ok"] is False
            assert "worker" in body["dependencies"]["ingest"]["failing"], body
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        assert eventually(lambda: ready(stage.url), bool, 30), stage.log_tail()

        os.killpg(worker.pid, signal.SIGKILL)  # --no-restart: it stays down
        status, body = eventually(lambda: readiness(ingest), lambda a: worker_down(a[1]),
                                  10)  # fmt: skip
        assert status == 503 and body["dependencies"]["worker"]["error"], body
        assert eventually(lambda: readiness(stage.url)[0], lambda s: s == 503, 10) == 503
    finally:
        stage.stop()
