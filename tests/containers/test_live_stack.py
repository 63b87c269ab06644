"""The images for real, where a Docker engine answers: each stage built and started with
Compose, waited on until every container is healthy, the acceptance suite run through its
nginx, and everything torn down again. Where no engine answers (these tests' usual
machines) each test skips, saying so; the static checks of test_files.py stand in.

An instructor runs it the week before (docker/README.md):
    .venv/bin/pytest tests/containers/test_live_stack.py          # every stage, ~10 min each
    .venv/bin/pytest tests/containers/test_live_stack.py -k 01    # one

The Docker SDK for Python (`docker`) asks the engine (is it there, are the containers
healthy, is anything left); Compose builds and starts, as a reader does: the images need
BuildKit (RUN --mount), which the SDK's build API does not speak. A stage runs as a Compose
project of its own (its own containers, networks and volumes, removed after), with its
nginx on a free port and a secret, passwords and importer made for the run; the images keep
the tags the compose files give them, as `docker compose up --build` would.
"""

import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import DockerException

from tests.acceptance.stage import IMPORTER_ENV, STAGE_ENV, URL_ENV
from tests.containers.project import COMPOSE_FILES, ROOT, compose_binary, env_file, free_port
from tests.timing import scaled

BUILD_SECONDS = 1800
HEALTHY_WITHIN = 300.0
SUITE_SECONDS = 3600


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient:
    """The Docker engine, or skip the module saying why there is none."""
    try:
        client = docker.from_env(timeout=scaled(10))
        client.ping()
    except DockerException as error:
        pytest.skip(f"no Docker engine answers (docker.from_env().ping(): {error})")
    return client


class Project:
    """One stage as a Compose project of its own: its .env, its name, its containers."""

    def __init__(self, compose_file: Path, folder: Path) -> None:
        self.compose_file = compose_file
        self.name = f"workshop-live-{compose_file.stem}-{uuid.uuid4().hex[:6]}"
        self.port = free_port()
        self.importer = (f"importer_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}")
        # A secret and passwords of the run's own, as docker/make-secrets.py makes them.
        self.env = env_file(folder, secret=secrets.token_urlsafe(32),
                            passwords=lambda name: secrets.token_urlsafe(32))  # fmt: skip
        with self.env.open("a") as settings:  # later lines win
            settings.write(f"\nPORT={self.port}\nWORKSHOP_IMPORTERS={self.importer[0]}\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        """Run Compose on this project: its file, its .env, its own name."""
        command = [str(compose_binary()), "-p", self.name, "-f", str(self.compose_file),
                   "--env-file", str(self.env), *args]  # fmt: skip
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    def containers(self, engine: docker.DockerClient) -> list:
        label = f"com.docker.compose.project={self.name}"
        return engine.containers.list(all=True, filters={"label": label})


def health(container) -> str:
    """Return a container's health ("healthy", "starting", ...), or its state if it has none."""
    container.reload()
    state = container.attrs["State"]
    return state.get("Health", {}).get("Status") or state["Status"]


def wait_healthy(project: Project, engine: docker.DockerClient) -> list[str]:
    """Wait until every container of the project is healthy; return those that are not."""
    deadline = time.monotonic() + scaled(HEALTHY_WITHIN)
    while True:
        states = {c.name: health(c) for c in project.containers(engine)}
        unhealthy = [f"{name}: {state}" for name, state in sorted(states.items())
                     if state != "healthy"]  # fmt: skip
        if states and not unhealthy or time.monotonic() > deadline:
            return unhealthy
        if any(state in ("unhealthy", "exited", "dead") for state in states.values()):
            return unhealthy  # it will not get better by waiting
        time.sleep(2)


@pytest.fixture(params=COMPOSE_FILES, ids=lambda path: path.stem)
def running(request, engine, tmp_path) -> Iterator[Project]:
    """A stage built and started from its compose file; torn down, volumes and all, after."""
    project = Project(request.param, tmp_path)
    try:
        built = project.compose("build", timeout=scaled(BUILD_SECONDS))
        assert built.returncode == 0, f"the images did not build:\n{built.stderr[-4000:]}"
        started = project.compose("up", "--detach", timeout=scaled(HEALTHY_WITHIN))
        assert started.returncode == 0, f"compose up failed:\n{started.stderr[-4000:]}"
        unhealthy = wait_healthy(project, engine)
        if unhealthy:
            logs = project.compose("logs", "--no-color", "--tail", "30", timeout=scaled(60)).stdout
            pytest.fail(
                f"not healthy in {scaled(HEALTHY_WITHIN):.0f} s: {unhealthy}\n{logs[-6000:]}"
            )
        yield project
    finally:
        down = project.compose("down", "--volumes", "--remove-orphans", timeout=scaled(300))
        assert down.returncode == 0, down.stderr[-2000:]
        assert not project.containers(engine), f"{project.name} left containers behind"


@pytest.mark.timeout(BUILD_SECONDS + SUITE_SECONDS)
def test_the_acceptance_suite_passes_through_the_stage_s_nginx(running, engine):
    # Only nginx publishes a port, and the app image runs as its unprivileged user.
    published = {c.name: c.ports for c in running.containers(engine) if any(c.ports.values())}
    assert len(published) == 1 and "nginx" in next(iter(published)), published
    for container in running.containers(engine):
        if container.image.tags and container.image.tags[0].startswith("workshop-app:"):
            assert container.image.attrs["Config"]["User"] == "10001:10001", container.name
    suite = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/acceptance", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=scaled(SUITE_SECONDS),
        env={**os.environ, URL_ENV: running.url, STAGE_ENV: running.compose_file.stem,
             IMPORTER_ENV: ":".join(running.importer)},
    )  # fmt: skip
    assert suite.returncode == 0, f"{suite.stdout[-6000:]}\n{suite.stderr[-2000:]}"
