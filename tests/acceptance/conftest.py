"""The acceptance suite runs every test against every stage, through its front door.

With WORKSHOP_TEST_URL set it runs against that one stage instead, running elsewhere
(tests/containers/test_live_stack.py: containers behind nginx; see tests/acceptance/stage.py
for the other two variables), and the tests that need a stage `workshop up` runs here skip.
"""

import pytest

from tests.acceptance.stage import Client, RemoteStage, RunningStage
from tooling.stages import all_stages

REMOTE = RemoteStage.from_environment()
# Every stage folder, in order: a new stage is in the suite as soon as it has a Procfile.
STAGES = [REMOTE.name] if REMOTE else [stage.name for stage in all_stages()]
# Modules that start stages of their own, or need one's ports and run folder on this machine.
LOCAL_ONLY = {"test_cli.py", "test_docs.py", "test_secrets.py", "test_store_cost.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if REMOTE is None:
        return
    skip = pytest.mark.skip(reason=f"needs a stage `workshop up` runs here, not {REMOTE.url}")
    for item in items:
        if item.path.name in LOCAL_ONLY:
            item.add_marker(skip)


@pytest.fixture(scope="session", params=STAGES)
def stage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A whole stage, started with `workshop up` on free ports, for the session (or the
    one WORKSHOP_TEST_URL names, left as it is)."""
    if REMOTE is not None:
        yield REMOTE
        return
    # One user may ingest (WORKSHOP_IMPORTERS): the suite checks that others may not.
    running = RunningStage(request.param, tmp_path_factory.mktemp("stage-logs"), importers=True)
    running.start()
    yield running
    returncode = running.stop()
    assert returncode == 0, f"{running.name} did not stop cleanly:\n{running.log_tail()}"


@pytest.fixture
def client(stage: RunningStage | RemoteStage) -> Client:
    return Client(stage.url, stage.importer, own_addresses=stage.local)


@pytest.fixture
def user(client: Client) -> tuple[str, str, str]:
    """A freshly registered user: (username, password, token)."""
    return client.new_user()


@pytest.fixture
def importer(client: Client) -> tuple[str, str, str]:
    """The stage's importer, the one user who may ingest: (username, password, token)."""
    return client.new_importer()
