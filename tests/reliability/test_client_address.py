"""A client cannot escape the per-client login limit by claiming another address.

Login failures are counted per client address (workshop/logins.py), which a front door
takes from the TCP peer, or from X-Forwarded-For only behind WORKSHOP_PROXY_HOPS trusted
proxies. uvicorn rewrites the peer itself from X-Forwarded-For when the request comes from
127.0.0.1 (its default --forwarded-allow-ips), so on stage 04 anyone on the machine could
name a new address with every try and guess passwords without limit.

Each stage runs on its own here: the attacker comes from 127.0.0.1 and ends up limited.
"""

import concurrent.futures
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.acceptance.stage import eventually
from tests.running import running_stage
from tests.timing import scaled
from tooling.runner import StageRunner
from tooling.stages import all_stages
from workshop import logins


@pytest.fixture(params=[stage.name for stage in all_stages()])
def stage(request: pytest.FixtureRequest) -> Iterator[StageRunner]:
    with running_stage(request.param, {"REGISTRY_URL": ""}) as runner:
        yield runner


def test_a_forwarded_address_does_not_make_a_new_client(stage):
    url = f"http://127.0.0.1:{stage.port}/api/tokens"
    tries = logins.PER_CLIENT.amount

    def fail_once(number: int) -> int:
        claimed = f"198.51.{number // 250}.{number % 250 + 1}"  # a new address each try
        body = {"username": f"fa_{uuid.uuid4().hex[:10]}", "password": "wrong password"}
        answer = requests.post(
            url, json=body, headers={"X-Forwarded-For": claimed}, timeout=scaled(30)
        )
        return answer.status_code

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(fail_once, range(tries)))
    assert set(statuses) <= {401, 429}, statuses
    last = eventually(lambda: fail_once(tries), lambda status: status == 429, within=5)
    assert last == 429, "a new X-Forwarded-For made a new client: the limit never applied"
