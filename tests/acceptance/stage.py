"""Start a stage as a user does (`workshop up`), and talk to it over real HTTP."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests

from workshop.tools.runner import free_base_port, is_ready
from workshop.tools.stages import get_stage

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 150.0
# Writes travel through a broker from stage 03 on: the contract gives them 2 seconds.
VISIBLE_WITHIN = 2.0

T = TypeVar("T")


class RunningStage:
    """A stage started with `workshop up` in a subprocess, stopped with SIGTERM."""

    def __init__(self, name: str, log_dir: Path) -> None:
        self.name = name
        self.port = free_base_port(len(get_stage(name).processes()))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        workshop = Path(sys.executable).with_name("workshop")
        with self.log_path.open("w") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                [str(workshop), "up", self.name, "--port", str(self.port)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Tests stay offline: a live fetch goes to a closed local port and fails fast.
                env={**os.environ, "PYTHONUNBUFFERED": "1", "REDDIT_URL": "http://127.0.0.1:9"},
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            if is_ready(self.url):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} not ready in {START_TIMEOUT} s:\n{self.log_tail()}")

    def stop(self) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # `workshop up` hung: take its servers down with it, or they keep their ports.
                for child in psutil.Process(self.process.pid).children(recursive=True):
                    child.kill()
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""


class Client:
    """HTTP to a stage's front door, with the contract's helpers."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any):
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", 30)
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
        token = eventually(
            lambda: self.post("/api/tokens", json={"username": username, "password": password}),
            lambda answer: answer.status_code == 200,
        ).json()["token"]
        return username, password, token


def eventually(
    action: Callable[[], T], accept: Callable[[T], bool], within: float = VISIBLE_WITHIN
) -> T:
    """Repeat an action until its result is accepted or the deadline passes; return it."""
    deadline = time.monotonic() + within
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
