"""`workshop doctor`: each check says ok, warn or FAIL with the fix, and only what blocks
the day fails the command."""

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.timing import scaled
from tooling import doctor
from tooling.runner import free_base_port
from tooling.stages import get_stage

ROOT = Path(__file__).resolve().parents[2]
WORKSHOP = str(Path(sys.executable).with_name("workshop"))


def run_doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([WORKSHOP, "doctor", *args], capture_output=True, text=True,
                          timeout=scaled(120), env={**os.environ, **(env or {})})  # fmt: skip


def fake_program(folder: Path, name: str, script: str) -> Path:
    """Write an executable shell script standing in for a program."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def report_lines(output: str) -> dict[str, str]:
    """Return the report's check lines by what they are about: {found text: status}."""
    lines = {}
    for line in output.splitlines():
        words = line.split(maxsplit=1)
        if line.startswith("  ") and words and words[0] in ("ok", "warn", "FAIL"):
            lines[words[1]] = words[0]
    return lines


def test_python_older_than_3_11_blocks_the_day():
    assert doctor.check_python((3, 11, 0)).status == "ok"
    assert doctor.check_python((3, 14, 1)).status == "ok"
    old = doctor.check_python((3, 10, 12))
    assert old.blocks and "3.10.12 is too old" in old.found and "make setup" in old.fix


def test_disk_space_fails_only_when_almost_full(tmp_path):
    assert doctor.check_disk(100 * doctor.GB, tmp_path).status == "ok"
    assert doctor.check_disk(2 * doctor.GB, tmp_path).status == "warn"
    assert doctor.check_disk(100 * 1024**2, tmp_path).blocks


def test_the_lock_check_compares_installed_versions_with_the_pins(tmp_path):
    requirements = tmp_path / "runtime.txt"
    requirements.write_text(
        "flask==3.1.2 \\\n    --hash=sha256:00\n"
        "Async_Timeout==5.0.1 ; python_full_version < '3.0' \\\n    --hash=sha256:00\n"
        "colorama==0.4.6 ; sys_platform == 'no-such-platform' \\\n"
        "requests==2.34.2 \\\n    --hash=sha256:00\n"
    )
    # Pins whose markers do not hold here are not wanted (async-timeout, colorama).
    assert doctor.locked_versions(requirements) == {"flask": "3.1.2", "requests": "2.34.2"}
    exact = {"flask": "3.1.2", "requests": "2.34.2"}
    assert doctor.check_lock(requirements, exact.get).status == "ok"
    other = doctor.check_lock(requirements, {"flask": "3.0.0"}.get)
    assert other.blocks and "make setup" in other.fix
    assert "flask 3.0.0, not 3.1.2" in other.found and "requests 2.34.2 missing" in other.found
    assert doctor.check_lock(tmp_path / "none.txt").blocks


def test_a_docker_client_without_an_engine_is_a_warning(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    fake_program(folder, "docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1")
    monkeypatch.setenv("PATH", str(folder))
    check = doctor.check_docker()
    assert check.status == "warn" and "no engine answers" in check.found
    assert "optional" not in check.found and check.optional  # said as optional, with its use
    fake_program(folder, "docker", "echo 28.2.2")
    assert doctor.check_docker() == doctor.ok("Docker engine 28.2.2 answers", check.optional)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert doctor.check_docker().found == "Docker not found"


def test_compose_v2_is_the_plugin_or_named_as_the_other_command(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    monkeypatch.setenv("PATH", str(folder))
    fake_program(folder, "docker", 'echo "docker: unknown command: docker $1" >&2; exit 1')
    assert doctor.check_compose().found == "Docker Compose v2 not found"
    fake_program(folder, "docker-compose", "echo 'Docker Compose version v2.29.7'")
    standalone = doctor.check_compose()
    assert standalone.status == "warn" and "docker-compose" in standalone.fix
    fake_program(folder, "docker", "echo 'Docker Compose version v2.30.1'")
    assert doctor.check_compose().found == "Docker Compose 2.30.1 (`docker compose`)"


def test_chromium_elsewhere_than_the_browser_test_looks_says_how_to_point_at_it(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("CHROMIUM_PATH", raising=False)
    monkeypatch.setattr(doctor, "BROWSER_TEST_CHROMIUM", str(tmp_path / "none"))
    chrome = fake_program(tmp_path / "bin", "google-chrome", "exit 0")
    monkeypatch.setenv("PATH", str(chrome.parent))
    found = doctor.check_chromium()
    assert found.status == "warn" and found.fix == f"export CHROMIUM_PATH='{chrome}'"
    monkeypatch.setenv("CHROMIUM_PATH", str(chrome))
    assert doctor.check_chromium().status == "ok"


def test_a_taken_port_of_the_stage_blocks_the_day_and_says_how_to_move():
    stage = get_stage("03-services")
    base = free_base_port(len(stage.processes()))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", stage.ports(base)["search"]))
        holder.listen()
        check = doctor.check_ports(stage, base)
    assert check.blocks and f"taken: {stage.ports(base)['search']}" in check.found
    assert "PORT=" in check.fix and "--stage 03-services" in check.fix
    assert doctor.check_ports(stage, base).status == "ok"


def test_doctor_here_reports_every_check_and_passes_without_a_docker_engine(tmp_path):
    if doctor.check_lock(ROOT / "requirements" / "runtime.txt").blocks:
        pytest.skip("this virtualenv is not the runtime lock (make floors installs the floors)")
    # This machine has a Docker client and no engine (a stand-in says so where it has none).
    fake_program(
        tmp_path / "bin", "docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1"
    )
    stage = get_stage("01-monolith")
    port = free_base_port(len(stage.processes()))
    done = run_doctor("--port", str(port), env={"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = report_lines(done.stdout)
    assert len(lines) == 10, done.stdout  # python, ports, disk, lock, test tools, 5 optional
    docker = [text for text in lines if text.startswith("Docker: the client is installed")]
    assert docker and lines[docker[0]] == "warn", done.stdout
    assert "[optional: " in docker[0]
    assert done.stdout.splitlines()[-1].startswith("ready: nothing blocks")


def test_doctor_exits_1_when_the_stage_cannot_start(tmp_path):
    stage = get_stage("01-monolith")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = run_doctor("--stage", stage.name, "--port", str(port))
    assert done.returncode == 1
    assert (
        report_lines(done.stdout)[f"01-monolith needs ports {port} (web); taken: {port}"] == "FAIL"
    )
    assert "fix: stop what listens there" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("not ready: ")


@pytest.mark.parametrize("name", ["07", "nope"])
def test_an_unknown_stage_is_a_failure_naming_the_stages(name):
    done = run_doctor("--stage", name, "--port", str(free_base_port(1)))
    assert done.returncode == 1 and f"no stage {name!r}" in done.stdout
    assert "01-monolith" in done.stdout


def test_make_doctor_checks_the_stage_and_port_it_is_given():
    stage = get_stage("03-services")
    port = free_base_port(len(stage.processes()))
    done = subprocess.run(["make", "doctor", f"STAGE={stage.name}", f"PORT={port}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=scaled(600))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ports free for 03-services: {port} (web), {port + 100} (users)" in done.stdout
