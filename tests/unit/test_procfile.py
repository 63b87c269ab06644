"""The Procfile is each stage's one list of services: what the gateways read from it."""

from pathlib import Path

import pytest

from tooling.stages import get_stage
from workshop.platform import procfile

SERVICES = ("users", "ingest", "search", "tag", "sync", "recommend-v1", "recommend-v2")


@pytest.mark.parametrize("stage", ["03-services", "04-async"])
def test_the_gateway_calls_every_service_of_its_stage_and_no_other_process(stage):
    """The seven services, in the Procfile's order (and one added in class after them)."""
    services = procfile.services(get_stage(stage).procfile)
    assert services[: len(SERVICES)] == SERVICES
    assert not {"web", "worker", "beat"} & set(services)


def test_a_service_is_a_process_told_its_port_however_it_is_written(tmp_path: Path):
    listed = tmp_path / "Procfile"
    listed.write_text(
        "# the front door first\n"
        "web: gunicorn --bind 127.0.0.1:$PORT 'gateway:create_app()'\n"
        "\n"
        "comment: gunicorn --bind 127.0.0.1:${PORT} 'comment:create_app()'\n"
        "recommend_v3: env RECOMMEND_VERSION=3 uvicorn --port $PORT 'recommend:create_app'\n"
        "worker: celery -A ingest.tasks worker\n"
    )
    assert procfile.services(listed) == ("comment", "recommend-v3")
    assert [name for name, _ in procfile.entries(listed)] == [
        "web", "comment", "recommend_v3", "worker"
    ]  # fmt: skip
