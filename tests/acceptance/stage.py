"""Start a stage as a user does (`workshop up`), and talk to it over real HTTP."""

import os
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.timing import scaled
from tooling.launcher import START_TIMEOUT, LaunchedStage
from tooling.stages import get_stage

ROOT = Path(__file__).resolve().parents[2]
# Writes travel through a broker from stage 03 on: the contract gives them 2 seconds (on a
# quiet machine: `eventually` stretches every limit by WORKSHOP_TEST_SLOWDOWN).
VISIBLE_WITHIN = 2.0

T = TypeVar("T")


class RunningStage(LaunchedStage):
    """A stage for the tests: offline (a live fetch goes to a closed local port and fails fast).

    With `importers`, only one user may ingest (WORKSHOP_IMPORTERS names it): `importer`
    holds its (username, password), which `Client.new_importer` registers and logs in.
    Without, the development rule holds: every registered user may ingest.
    """

    local = True  # `workshop up` runs it here: its ports, run folder and logs are at hand

    def __init__(
        self, name: str, log_dir: Path, importers: bool = False, options: list[str] | None = None
    ) -> None:
        env = {"REDDIT_URL": "http://127.0.0.1:9"}
        self.importer: tuple[str, str] | None = None
        if importers:
            self.importer = (f"importer_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}")
            env["WORKSHOP_IMPORTERS"] = self.importer[0]
        super().__init__(name, log_dir, env=env, options=options)

    def start(self, timeout: float = START_TIMEOUT, fresh: bool = True) -> None:
        super().start(scaled(timeout), fresh)


# The suite against a stage that runs elsewhere (containers behind nginx, started by
# tests/containers/test_live_stack.py): its front door, its stage folder's name, and the
# importer its WORKSHOP_IMPORTERS names, as NAME:PASSWORD.
URL_ENV, STAGE_ENV, IMPORTER_ENV = (
    "WORKSHOP_TEST_URL",
    "WORKSHOP_TEST_STAGE",
    "WORKSHOP_TEST_IMPORTER",
)


class RemoteStage:
    """A stage already running elsewhere, reached at its URL: the suite talks to it, and
    neither starts nor stops it. Tests that need its ports or run folder skip."""

    local = False
    port = None

    def __init__(self, name: str, url: str, importer: tuple[str, str] | None) -> None:
        self.name = get_stage(name).name
        self.url = url.rstrip("/")
        self.importer = importer

    @classmethod
    def from_environment(cls) -> "RemoteStage | None":
        """Return the stage WORKSHOP_TEST_URL names, or None when it is unset."""
        url = os.environ.get(URL_ENV, "")
        if not url:
            return None
        name = os.environ.get(STAGE_ENV, "")
        assert name, f"{URL_ENV} is set: {STAGE_ENV} must say which stage runs there"
        importer = os.environ.get(IMPORTER_ENV, "")
        username, _, password = importer.partition(":")
        return cls(name, url, (username, password) if importer else None)

    def log_tail(self, lines: int = 40) -> str:
        return f"({self.name} runs elsewhere: its logs are there, e.g. `docker compose logs`)"


class Client:
    """HTTP to a stage's front door, with the contract's helpers."""

    def __init__(
        self,
        base_url: str,
        importer: tuple[str, str] | None = None,
        source: str | None = None,
        own_addresses: bool = True,
    ) -> None:
        self.base_url = base_url
        self.importer = importer
        # Whether another loopback address is another client to the stage: not behind a
        # proxy that sees every client of this machine as one address.
        self.own_addresses = own_addresses
        self.http = requests.Session()
        if source:  # another loopback address: a client of its own (login limits count it)
            self.http.mount("http://", SourceAddressAdapter(source))

    def elsewhere(self) -> "Client":
        """Return a client of the same stage from another loopback address of its own."""
        if not self.own_addresses:
            pytest.skip("behind the containers' proxy every client of this machine is one address")
        source = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        return Client(self.base_url, self.importer, source)

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any):
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", scaled(30))
        return self.http.request(method, self.base_url + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any):
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any):
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any):
        return self.request("DELETE", path, **kwargs)

    def new_user(self, prefix: str = "user") -> tuple[str, str, str]:
        """Register a fresh user and return (username, password, token)."""
        username = f"{prefix}_{uuid.uuid4().hex[:10]}"
        password = f"pw-{uuid.uuid4().hex}"
        created = self.post("/api/users", json={"username": username, "password": password})
        assert created.status_code == 201, created.text
        return username, password, self.token(username, password)

    def new_importer(self) -> tuple[str, str, str]:
        """Return the stage's importer, registered on first use: (username, password, token)."""
        assert self.importer, "this stage names no importer: every user may ingest"
        username, password = self.importer
        created = self.post("/api/users", json={"username": username, "password": password})
        assert created.status_code in (201, 409), created.text  # 409: an earlier test did
        return username, password, self.token(username, password)

    def token(self, username: str, password: str) -> str:
        """Log in (once the account is visible: from stage 03 it travels) and return a token."""
        token = eventually(
            lambda: self.post("/api/tokens", json={"username": username, "password": password}),
            lambda answer: answer.status_code == 200,
        ).json()["token"]
        return token


class SourceAddressAdapter(HTTPAdapter):
    """Connect from a given local address (any 127.x.y.z reaches a server on 127.0.0.1)."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def eventually(
    action: Callable[[], T], accept: Callable[[T], bool], within: float = VISIBLE_WITHIN
) -> T:
    """Repeat an action until its result is accepted or the deadline passes; return it.

    `within` is the limit on a quiet machine; the deadline is scaled(within) from now.
    """
    deadline = time.monotonic() + scaled(within)
    while True:
        result = action()
        if accept(result) or time.monotonic() >= deadline:
            return result
        time.sleep(0.05)


def assert_error(answer: requests.Response, status: int) -> dict[str, Any]:
    """Check an answer is the contract's error shape with the given status."""
    assert answer.status_code == status, (answer.status_code, answer.text[:300])
    body = answer.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]
