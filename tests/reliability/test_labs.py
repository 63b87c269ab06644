"""`workshop lab`: each lab runs green, as an attendee runs it (the command, on its own
stage), and a check that does not hold is a FAIL line and a non-zero exit."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.timing import scaled
from tooling import labs
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
    ran = subprocess.run([WORKSHOP, "lab", "run", name], cwd=ROOT, capture_output=True,
                         text=True, timeout=scaled(600))  # fmt: skip
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
