"""The acceptance suite runs every test against every stage, through its front door."""

import pytest

from tests.acceptance.stage import Client, RunningStage
from workshop.tools.stages import all_stages

# Every stage folder, in order: a new stage is in the suite as soon as it has a Procfile.
STAGES = [stage.name for stage in all_stages()]


@pytest.fixture(scope="session", params=STAGES)
def stage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A whole stage, started with `workshop up` on free ports, for the session."""
    # One user may ingest (WORKSHOP_IMPORTERS): the suite checks that others may not.
    running = RunningStage(request.param, tmp_path_factory.mktemp("stage-logs"), importers=True)
    running.start()
    yield running
    returncode = running.stop()
    assert returncode == 0, f"{running.name} did not stop cleanly:\n{running.log_tail()}"


@pytest.fixture
def client(stage: RunningStage) -> Client:
    return Client(stage.url, stage.importer)


@pytest.fixture
def user(client: Client) -> tuple[str, str, str]:
    """A freshly registered user: (username, password, token)."""
    return client.new_user()


@pytest.fixture
def importer(client: Client) -> tuple[str, str, str]:
    """The stage's importer, the one user who may ingest: (username, password, token)."""
    return client.new_importer()
