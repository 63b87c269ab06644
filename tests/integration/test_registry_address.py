"""An instance joins the registry at the address the others reach it at: ADVERTISE_URL when
set (a container's name, a pod's address), else http://127.0.0.1:$PORT, as `workshop up`
runs every process on one machine. Each case runs one service from its stage's Procfile,
on the real Redis."""

import pytest
import redis

from tests.acceptance.stage import eventually
from tooling.runner import StageRunner, free_base_port
from tooling.stages import get_stage

REGISTERED_WITHIN = 60.0  # a service process starts in a few seconds; the machine is shared
SERVICE = "users"  # subscribes to nothing, so it joins as soon as it serves
ADVERTISED = "http://users.example:8000"


@pytest.fixture
def registry_url(redis_url: str) -> str:
    """A Redis database of the test's own."""
    return redis_url


def registered(url: str, service: str) -> list[str]:
    """Return the addresses a service's live instances registered, as the gateway reads them."""
    keys = redis.Redis.from_url(url).scan_iter(match=f"registry:{service}:*")
    return sorted(key.decode().split(":", 2)[2] for key in keys)


@pytest.mark.parametrize("stage_name", ["03-services", "04-async"])
@pytest.mark.parametrize("advertised", [ADVERTISED, None], ids=["ADVERTISE_URL", "default"])
def test_an_instance_registers_the_address_it_is_reached_at(
    stage_name, advertised, registry_url, tmp_path
):
    stage = get_stage(stage_name)
    port = free_base_port(1)
    settings = {
        "REGISTRY_URL": registry_url,
        "BROKER_URL": registry_url,
        "WORKSHOP_DATA_DIR": str(tmp_path),
        "WORKSHOP_SEED_SAMPLE": "0",
    }
    if advertised:
        settings["ADVERTISE_URL"] = advertised
    runner = StageRunner(stage, port, settings)
    runner.start_extra(SERVICE, SERVICE, port, {})
    try:
        addresses = eventually(
            lambda: registered(registry_url, SERVICE),
            lambda found: bool(found) or runner.failed() is not None,
            within=REGISTERED_WITHIN,
        )
        assert runner.failed() is None, f"{stage_name} {SERVICE} exited at start"
    finally:
        runner.stop()
    assert addresses == [advertised or f"http://127.0.0.1:{port}"]
    assert registered(registry_url, SERVICE) == []  # a stopped instance leaves at once
