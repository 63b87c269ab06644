"""The signing secret: a stage never runs with an empty, short or (in production) weak one."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer

from tests.acceptance.stage import Client, assert_error
from tests.timing import scaled
from tooling.launcher import LaunchedStage
from tooling.runner import free_base_port
from tooling.stages import all_stages, get_stage

WORKSHOP = str(Path(sys.executable).with_name("workshop"))
STAGES = [stage.name for stage in all_stages()]


def run_up(stage_name: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run `workshop up`; a stage that starts anyway is stopped (and the test fails)."""
    port = free_base_port(len(get_stage(stage_name).processes()))
    process = subprocess.Popen(
        [WORKSHOP, "up", stage_name, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env}, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=scaled(60))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        out, err = process.communicate(timeout=scaled(30))
        pytest.fail(f"{stage_name} started with an unsound secret:\n{err[-500:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("stage_name", STAGES)
@pytest.mark.parametrize(
    ("secret", "production"), [("short", False), ("changeme" * 4, True)], ids=["short", "weak"]
)
def test_a_stage_refuses_to_start_with_an_unsound_secret(stage_name, secret, production):
    env = {"SECRET_KEY": secret, "WORKSHOP_ENV": "production" if production else "development"}
    refused = run_up(stage_name, env)
    assert refused.returncode != 0
    assert "SECRET_KEY" in refused.stderr.strip().splitlines()[-1], refused.stderr[-500:]


@pytest.mark.parametrize("stage_name", ["01-monolith", "04-async"])  # Flask's and Quart's
def test_an_empty_secret_file_is_replaced_and_nothing_signs_with_it(stage_name, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "secret_key").write_text("")  # an interrupted first run, a careless edit
    env = {"WORKSHOP_STATE_DIR": str(state), "SECRET_KEY": ""}
    stage = LaunchedStage(stage_name, tmp_path, env=env)
    stage.start()
    try:
        assert len((state / "secret_key").read_text().strip()) >= 32
        client = Client(stage.url)
        forged = URLSafeTimedSerializer("", salt="api-token").dumps({"user": "mallory"})
        assert_error(client.get("/api/me/preferences", token=forged), 401)
        assert client.get("/login").status_code == 200  # sessions sign with the new secret
    finally:
        assert stage.stop() == 0
