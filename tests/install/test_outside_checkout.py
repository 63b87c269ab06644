"""The command with its package installed outside the repository (a plain `pip install .`).

The stages are folders of the repository, not part of the package: the command finds them
from where it runs (the current folder or a parent) or WORKSHOP_HOME, and elsewhere says in
one line where to get them. A copy of the package in a folder of the test's own, first on
PYTHONPATH, is such an install: its parent holds no stage, as site-packages' does not.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.doc_commands import wait_until
from tests.timing import scaled
from tooling.runner import free_base_port, is_ready
from tooling.stages import get_stage

ROOT = Path(__file__).resolve().parents[2]
CLI = "from tooling.cli import main; main(prog_name='workshop')"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder holding a copy of the package and nothing else."""
    site = tmp_path_factory.mktemp("site-packages")
    shutil.copytree(ROOT / "workshop", site / "workshop",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return site


def workshop(site: Path, cwd: Path, *args: str, home: str | None = None,
             **kwargs) -> subprocess.CompletedProcess:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("WORKSHOP_HOME", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), **({"WORKSHOP_HOME": home} if home else {}))
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=scaled(60), **kwargs)  # fmt: skip


def test_the_copy_is_the_package_the_command_runs(installed, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", "import workshop; print(workshop.__file__)"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(done.stdout.strip()).is_relative_to(installed)  # not the editable checkout


def test_outside_the_repository_it_says_in_one_line_where_to_get_the_stages(installed, tmp_path):
    for command in (("up", "01-monolith"), ("stages",), ("diff", "01", "02")):
        done = workshop(installed, tmp_path, *command)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"Error: no workshop stages in {tmp_path.resolve()}"), line
        assert "repository" in line and "WORKSHOP_HOME" in line, line


def test_a_wrong_workshop_home_is_named(installed, tmp_path):
    done = workshop(installed, tmp_path, "stages", home=str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"Error: WORKSHOP_HOME={tmp_path} holds no stage folder (NN-name/Procfile): point it at "
        "your copy of the workshop's repository"
    )


def test_inside_the_repository_or_with_workshop_home_it_finds_the_stages(installed, tmp_path):
    for cwd, home in ((ROOT, None), (ROOT / "docs" / "bench", None), (tmp_path, str(ROOT))):
        done = workshop(installed, cwd, "stages", home=home)
        assert done.returncode == 0, (cwd, done.stderr)
        assert done.stdout.splitlines()[0].startswith("01-monolith "), done.stdout


def test_from_a_subfolder_of_the_repository_a_stage_starts_and_serves(installed):
    stage = get_stage("01-monolith")
    port = free_base_port(len(stage.processes()))
    env = {k: v for k, v in os.environ.items() if k not in ("WORKSHOP_HOME", "PYTHONPATH")}
    up = subprocess.Popen(
        [sys.executable, "-c", CLI, "up", stage.name, "--port", str(port)], cwd=ROOT / "docs",
        env={**env, "PYTHONPATH": str(installed), "PATH": f"{Path(sys.executable).parent}"
             f"{os.pathsep}{env.get('PATH', '')}"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: up.poll() is None and is_ready(url), within=120), up.poll()
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        output, _ = up.communicate(timeout=scaled(60))
    assert up.returncode == 0, output[-3000:]
