"""`workshop lab`: each lab runs green, as an attendee runs it (the command), on a stage of
its own (--own: a test never attaches to a stage a person runs) and on a stage `workshop up`
runs; a check that does not hold is a FAIL line and a non-zero exit."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.reliability.test_supervision import process_on
from tests.timing import scaled
from tooling import labs
from tooling.control import AttachedStage, ControlError
from tooling.launcher import LaunchedStage
from tooling.runner import running_stages
from tooling.stages import get_stage
from workshop.config import ROOT

WORKSHOP = str(Path(sys.executable).with_name("workshop"))


def test_lab_list_names_every_lab_with_its_stage_and_time():
    listed = subprocess.run([WORKSHOP, "lab", "list"], cwd=ROOT, capture_output=True,
                            text=True, timeout=scaled(60))  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    for lab in labs.LABS:
        assert f"{lab.name}" in listed.stdout and lab.stage in listed.stdout
        assert f"{lab.minutes} min" in listed.stdout


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", [lab.name for lab in labs.LABS])
def test_the_lab_runs_green(name):
    ran = subprocess.run([WORKSHOP, "lab", "run", name, "--own"], cwd=ROOT,
                         capture_output=True, text=True, timeout=scaled(600))  # fmt: skip
    said = ran.stdout + ran.stderr
    assert ran.returncode == 0, said
    assert "FAIL" not in ran.stdout and "PASS" in ran.stdout, said
    assert "checks held" in ran.stdout


def test_a_claim_that_does_not_hold_is_a_fail():
    session = labs.Session(runner=SimpleNamespace(port=1))  # nothing listens there
    assert session.check("the stage answers", lambda: session.get("/readyz"), within=0.5) is False
    assert session.check("true is true", lambda: True) is True
    assert session.results == [("the stage answers", False), ("true is true", True)]


def test_an_unknown_lab_is_refused():
    ran = subprocess.run([WORKSHOP, "lab", "run", "no-such-lab"], cwd=ROOT,
                         capture_output=True, text=True, timeout=scaled(60))  # fmt: skip
    assert ran.returncode != 0 and "no lab 'no-such-lab'" in ran.stderr


@pytest.mark.timeout(900)
def test_a_lab_attaches_to_the_stage_you_run_and_leaves_it_whole(tmp_path: Path) -> None:
    """`workshop up` in one terminal, the lab in another: the lab breaks and repairs that
    stage through `workshop up` (whose output says so), can run again, and leaves it up."""
    stage = LaunchedStage("03-services", tmp_path, env={"MONGO_URL": ""})
    stage.start()
    try:
        search_port = get_stage(stage.name).ports(stage.port)["search"]
        search = process_on(search_port)
        for _ in range(2):  # its users, tags and posts are its own: it runs again
            ran = subprocess.run([WORKSHOP, "lab", "run", "service-down", "--port",
                                  str(stage.port)], cwd=ROOT, capture_output=True, text=True,
                                 timeout=scaled(300))  # fmt: skip
            assert ran.returncode == 0, ran.stdout + ran.stderr
            assert f"on your 03-services at {stage.url}/" in ran.stdout
            assert "FAIL" not in ran.stdout and "6 of 6 checks held" in ran.stdout
        log = Path(stage.log_path).read_text()
        assert log.count("process 'search' stopped (asked by workshop lab)") == 2
        assert log.count("process 'search' started (asked by workshop lab)") == 2
        back = process_on(search_port)
        assert search is not None and back is not None and back.pid != search.pid

        refused = subprocess.run([WORKSHOP, "lab", "run", "canary-split", "--port",
                                  str(stage.port)], cwd=ROOT, capture_output=True, text=True,
                                 timeout=scaled(60))  # fmt: skip
        assert refused.returncode != 0
        assert "needs settings of its own: RECOMMEND_CANARY_PERCENT=20" in refused.stdout
        assert "run it without --port, or with a free one" in refused.stderr

        record = next(r for r in running_stages() if r["port"] == stage.port)
        attached = AttachedStage.from_record(record)
        with pytest.raises(ControlError, match="no process of that name"):
            attached.stop_process("nothing")
        assert process_on(search_port).pid == back.pid  # a refused request changed nothing
        assert stage.process.poll() is None
    finally:
        assert stage.stop() == 0
