"""Stage 02: when the REST API stops, the front says so (503) and recovers when it is back."""

import pytest
import requests

from tests.acceptance.stage import assert_error, eventually
from tests.running import START_WITHIN
from tests.timing import scaled
from tooling.runner import StageRunner, free_base_port
from tooling.stages import get_stage

RECOVERY_WITHIN = 30.0


@pytest.fixture
def running_stage():
    stage = get_stage("02-rest-api")
    runner = StageRunner(
        stage, free_base_port(len(stage.processes())), {"WORKSHOP_SEED_SAMPLE": "1"}
    )
    runner.start()
    try:
        assert runner.wait_ready(scaled(START_WITHIN)), "the stage did not become ready"
        yield runner
    finally:
        runner.stop()


def test_the_front_answers_503_while_the_rest_api_is_down_and_recovers(running_stage):
    front = f"http://127.0.0.1:{running_stage.port}"
    assert (
        requests.get(f"{front}/api/search", params={"q": "flask"}, timeout=scaled(5)).status_code
        == 200
    )

    running_stage.stop_process("restapi")
    assert_error(requests.get(f"{front}/api/search", params={"q": "flask"}, timeout=scaled(5)), 503)
    assert_error(requests.get(f"{front}/api/recommendations", timeout=scaled(5)), 503)
    page = requests.get(f"{front}/search", params={"q": "flask"}, timeout=scaled(5))
    assert page.status_code == 503 and "Traceback" not in page.text
    ready = requests.get(f"{front}/readyz", timeout=scaled(5))
    assert ready.status_code == 503 and ready.json()["dependencies"]["restapi"]["ok"] is False
    assert requests.get(f"{front}/healthz", timeout=scaled(5)).status_code == 200, (
        "alive, just not ready"
    )

    running_stage.restart_process("restapi")
    answer = eventually(
        lambda: requests.get(f"{front}/api/search", params={"q": "flask"}, timeout=scaled(5)),
        lambda a: a.status_code == 200,
        within=RECOVERY_WITHIN,
    )
    assert answer.status_code == 200 and answer.json()["total"] > 0
