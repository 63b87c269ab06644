"""`workshop up`'s control folder: what a lab asks of a running stage, and what it refuses.

A runner that starts no stage serves the requests here; one process of its own (a sleeper)
stands for a service.
"""

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.timing import scaled
from tooling import control
from tooling.runner import StageRunner
from tooling.stages import get_stage


@pytest.fixture
def runner(tmp_path: Path):
    run_dir = tmp_path / "run"
    served = StageRunner(get_stage("03-services"), 18000, {"WORKSHOP_RUN_DIR": str(run_dir)},
                         data_dir=tmp_path / "data")  # fmt: skip
    control.make_folder(run_dir)
    served.children["sleeper"] = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield served
    served.kill_process("sleeper")
    served.children["sleeper"].wait()


def answers(runner: StageRunner, *requests: bytes) -> list[dict]:
    folder = Path(runner.env["WORKSHOP_RUN_DIR"]) / control.CONTROL
    for number, request in enumerate(requests):
        (folder / f"{number:02}.json").write_bytes(request)
    runner.serve_control()
    assert not list(folder.glob("*.json")), "every request is taken off the queue"
    return [json.loads((folder / f"{n:02}.answer").read_text()) for n in range(len(requests))]


def test_what_is_not_a_request_is_answered_and_changes_nothing(runner, capsys):
    said = answers(
        runner,
        b"not json",
        b"[1, 2]",
        b'{"name": "sleeper"}',
        b'{"do": ["stop"], "name": "sleeper"}',
        b'{"do": "stop", "name": "../../sleeper"}',
        b'{"do": "start_extra", "name": "x", "process": "search", "port": -1, "env": {}}',
        b'{"do": "stop", "name": {"$ne": null}}',
    )
    assert [a["ok"] for a in said] == [False] * 7
    assert "not a request" in said[0]["error"] and "no process of that name" in said[4]["error"]
    assert runner.children["sleeper"].poll() is None, "the sleeper still runs"
    assert capsys.readouterr().err.count("workshop: cannot") == 7


def test_a_stop_asked_is_done_and_the_process_stays_down(runner):
    run_dir = Path(runner.env["WORKSHOP_RUN_DIR"])
    asking = threading.Thread(target=control.ask, args=(run_dir, os.getpid(), {
        "do": "stop", "name": "sleeper", "by": "a test"}))  # fmt: skip
    asking.start()
    deadline = time.monotonic() + scaled(30)
    while asking.is_alive() and time.monotonic() < deadline:
        runner.serve_control()
        time.sleep(0.05)
    asking.join(1)
    assert not asking.is_alive()
    assert runner.children["sleeper"].poll() is not None
    later = time.monotonic() + 3600
    runner.supervise(later)  # a crash would be started again on the second look
    runner.supervise(later + 3600)
    assert runner.children["sleeper"].poll() is not None, "the supervisor left it down"


def test_asking_a_stage_that_stopped_fails_at_once_and_takes_the_request_back(runner):
    gone = subprocess.Popen(["true"])
    gone.wait()
    run_dir = Path(runner.env["WORKSHOP_RUN_DIR"])
    # "stopped", not "did not answer in 60 s": it looked at the pid, not at the clock.
    with pytest.raises(control.ControlError, match="the stage stopped"):
        control.ask(run_dir, gone.pid, {"do": "stop", "name": "sleeper"})
    assert not list((run_dir / control.CONTROL).glob("*.json"))
