"""While a stage starts, a search through the front door is complete or says the service
is starting: the gateway sends no call to an instance that is still loading its start-up
data, without a registry as with one. (It sent them: 200 with 0, then 116, then 310 posts.)

Before search listens at all, the gateway cannot tell it from a search that is down, and
says it is not answering: uvicorn (04) opens its port only once the app has started, and on
a busy machine the gateway may be up first. Either answer is a 503; a partial result never is.
"""

import re
import time
from collections.abc import Iterator

import pytest
import requests

from tests.acceptance.stage import eventually
from tests.running import START_WITHIN, SYNCED_STAGES
from tests.timing import scaled
from tooling.runner import StageRunner, free_base_port, is_ready
from tooling.stages import get_stage

# A sample large enough that search loads for a while after the gateway answers.
SAMPLE_POSTS = 8000
WORD = "python"  # a subreddit of the sample: many posts match
SETTLE_WITHIN = 60.0
RESULT_COUNT = re.compile(r'<p class="result-count">(\d+) result')


@pytest.fixture(params=SYNCED_STAGES)
def starting_stage(request: pytest.FixtureRequest) -> Iterator[StageRunner]:
    """A stage with a large sample, just started (no registry: the addresses it was given)."""
    stage = get_stage(request.param)
    env = {"WORKSHOP_SEED_SAMPLE": "1", "WORKSHOP_SAMPLE_POSTS": str(SAMPLE_POSTS)}
    runner = StageRunner(stage, free_base_port(len(stage.processes())), env)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


def ask(url: str, path: str) -> requests.Response | None:
    try:
        return requests.get(f"{url}{path}", params={"q": WORD}, timeout=scaled(10))
    except requests.RequestException:
        return None  # the gateway is not listening yet


def test_a_search_while_the_stage_starts_is_complete_or_says_it_is_starting(starting_stage):
    url = f"http://127.0.0.1:{starting_stage.port}"
    totals: list[int] = []  # of every 200, from the API and the search page
    starting: list[str] = []  # what every other answer said
    deadline = time.monotonic() + scaled(START_WITHIN)
    while time.monotonic() < deadline and not is_ready(url):
        assert starting_stage.failed() is None, f"{starting_stage.failed()} exited"
        api, page = ask(url, "/api/search"), ask(url, "/search")
        if api is not None and api.status_code == 200:
            totals.append(api.json()["total"])
        elif api is not None:
            assert api.status_code == 503, (api.status_code, api.text[:300])
            starting.append(api.json()["error"]["code"])
        if page is not None and page.status_code == 200:
            totals.append(int(RESULT_COUNT.search(page.text)[1]))
        elif page is not None:
            assert page.status_code == 503, (page.status_code, page.text[:300])
            starting.append(
                "page says starting" if "is starting" in page.text
                else "page says not answering" if "is not answering" in page.text
                else page.text
            )  # fmt: skip
        time.sleep(0.05)
    assert is_ready(url), f"{starting_stage.stage.name} did not start"
    assert eventually(lambda: is_settled(url), bool, within=SETTLE_WITHIN)  # eventually scales it
    full = ask(url, "/api/search").json()["total"]
    assert full > 0
    wrong = sorted({total for total in totals if total != full})
    assert not wrong, f"while starting, searches answered 200 with {wrong} of {full} posts"
    not_yet = {"upstream_unavailable", "page says not answering"}  # not listening yet
    assert set(starting) <= {"service_starting", "page says starting", *not_yet}, set(starting)
    assert set(starting) - not_yet, "no answer while search was loading (nothing was tested)"


def is_settled(url: str) -> bool:
    try:
        answer = requests.get(f"{url}/readyz", timeout=scaled(5))
    except requests.RequestException:
        return False
    return answer.status_code == 200 and answer.json().get("settled", True)
