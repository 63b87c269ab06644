"""The acceptance suite runs every test against every stage, through its front door."""

import pytest

from tests.acceptance.stage import Client, RunningStage

# Adding a stage to the suite is one line here.
STAGES = [
    "01-monolith",
    "02-rest-api",
    "03-services",
]


@pytest.fixture(scope="session", params=STAGES)
def stage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A whole stage, started with `workshop up` on free ports, for the session."""
    running = RunningStage(request.param, tmp_path_factory.mktemp("stage-logs"))
    running.start()
    yield running
    returncode = running.stop()
    assert returncode == 0, f"{running.name} did not stop cleanly:\n{running.log_tail()}"


@pytest.fixture
def client(stage: RunningStage) -> Client:
    return Client(stage.url)


@pytest.fixture
def user(client: Client) -> tuple[str, str, str]:
    """A freshly registered user: (username, password, token)."""
    return client.new_user()
