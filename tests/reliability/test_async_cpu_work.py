"""Stage 04's services keep answering while one of them does slow CPU work.

A password hash is slow on purpose (scrypt). Run on the event loop, it would hold up every
other request of the users service, readiness pings included, for as long as it runs; run
in a worker thread (hashlib releases the GIL while it hashes), the loop keeps serving. The
users service runs here as `workshop up` runs it: uvicorn, on a loopback port.
"""

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.acceptance.stage import eventually
from tests.timing import scaled
from workshop.config import ROOT

REGISTRATIONS = 8
# While the registrations hash, a sequential client asks /healthz over and over. Served
# between hashes only, it gets at most about one answer per registration; served meanwhile,
# dozens (a hash takes tens of milliseconds, a health check about one).
ANSWERS_MEANWHILE = 3 * REGISTRATIONS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def users_service(tmp_path: Path) -> Iterator[str]:
    """Stage 04's users service on its own, as its Procfile line runs it."""
    port = free_port()
    uvicorn = Path(sys.executable).with_name("uvicorn")
    env = {**os.environ, "PORT": str(port), "WORKSHOP_DATA_DIR": str(tmp_path),
           "SECRET_KEY": uuid.uuid4().hex}  # fmt: skip
    env.pop("REGISTRY_URL", None)
    env.pop("BROKER_URL", None)
    command = [str(uvicorn), "--app-dir", "04-async", "--factory", "users:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]  # fmt: skip
    with (tmp_path / "users.log").open("w") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        up = eventually(lambda: alive(url), bool, within=60)
        assert up, (tmp_path / "users.log").read_text()[-2000:]
        yield url
    finally:
        server.terminate()
        server.wait(timeout=scaled(30))


def alive(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=scaled(2)).status_code == 200
    except requests.RequestException:
        return False


def register(url: str) -> int:
    credentials = {"username": f"u{uuid.uuid4().hex[:12]}", "password": f"pw-{uuid.uuid4().hex}"}
    return requests.post(f"{url}/api/users", json=credentials, timeout=scaled(120)).status_code


def test_the_users_service_answers_while_passwords_hash(users_service: str) -> None:
    health = requests.Session()
    answered_meanwhile = 0
    with ThreadPoolExecutor(REGISTRATIONS) as pool:
        registering = [pool.submit(register, users_service) for _ in range(REGISTRATIONS)]
        while not all(future.done() for future in registering):
            answer = health.get(f"{users_service}/healthz", timeout=scaled(120))
            assert answer.status_code == 200
            if not all(future.done() for future in registering):
                answered_meanwhile += 1
    assert [future.result() for future in registering] == [201] * REGISTRATIONS
    assert answered_meanwhile >= ANSWERS_MEANWHILE
