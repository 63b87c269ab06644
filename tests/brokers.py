"""The brokers the tests use, and the one they must leave alone: the machine's own Redis.

A person's Redis on 127.0.0.1:6379 holds their data: the tests never connect to it (nor
start a process told to) unless TEST_REDIS_URL points them there. They use:

- Redis: TEST_REDIS_URL's server when it is set, else a redis-server of their own
  (`RedisServer`: a free port, its own folder, no persistence unless a test asks), stopped
  when the session ends. On either, a test takes databases that are empty, marks them as
  its own (`RedisDatabases.claim`), and empties only those when it is done.
- RabbitMQ: TEST_RABBITMQ_URL when it is set, else the machine's (127.0.0.1:5672,
  guest/guest) in a virtual host the test creates and deletes (`rabbitmq_vhost`), never
  the default one; where no RabbitMQ answers or no virtual host can be made, the test skips
  and says why.

`MachineRedisGuard` makes the first rule hold: in the pytest process, a connection to a
loopback address on port 6379, or a process started with a Redis URL for it in its
environment or arguments, raises MachineRedisTouched before anything is sent.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import redis
import requests

from tests.acceptance.stage import eventually
from tests.timing import scaled

TEST_REDIS_ENV = "TEST_REDIS_URL"
TEST_RABBITMQ_ENV = "TEST_RABBITMQ_URL"
MACHINE_REDIS_PORT = 6379
# What a stage reads to find a broker: the tests give each stage its own, never the shell's.
BROKER_VARIABLES = ("BROKER_URL", "REGISTRY_URL", "CELERY_RESULT_BACKEND")
# The key that marks a database as taken by a test run (and by which one).
CLAIM_KEY = "workshop-tests:claimed"
PRIVATE_DATABASES = 64  # a private server's: room for every test of a session at once


class RedisUnavailable(RuntimeError):
    """No redis-server to start here."""


class RedisServer:
    """A redis-server of the tests' own on 127.0.0.1: a free port and a folder of its own.

    Without persistence (`--save "" --appendonly no`) unless asked for (`--appendonly yes`:
    what it acknowledged survives `kill` and a start again, on the same port and folder).
    """

    def __init__(self, folder: Path, persistence: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable(
                "redis-server is not installed (`make test` installs it with apt-get; or set "
                f"{TEST_REDIS_ENV} to a Redis the tests may use)"
            )
        self.binary, self.folder, self.persistence = binary, folder, persistence
        self.port = 0
        self.process: subprocess.Popen | None = None

    def url(self, database: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start it (on a free port the first time, on the same one after) and wait for it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(1 if self.port else 5):  # a free port may be taken before we bind it
            port = self.port or free_port()
            if self._start_on(port):
                self.port = port
                return
        raise RuntimeError(f"redis-server did not start:\n{self.log_tail()}")

    def _start_on(self, port: int) -> bool:
        persistence = ["--appendonly", "yes"] if self.persistence else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "", *persistence, "--databases", str(PRIVATE_DATABASES),
             "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=port, socket_connect_timeout=1)

        def answers() -> bool:
            if self.process is None or self.process.poll() is not None:
                return True  # it exited: stop waiting
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        eventually(answers, bool, within=10)
        client.close()
        if self.process.poll() is None:
            return True
        self.process = None
        return False

    def kill(self) -> None:
        """SIGKILL: what it held only in memory is gone."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: it exits as a service manager stops it."""
        self._end(signal.SIGTERM)

    def _end(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.folder / "redis.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisDatabases:
    """The databases a session takes on one Redis server, one per test (or module) at a time.

    A database is taken only if it is empty, and marked with CLAIM_KEY at once (another run
    on the same server skips it); given back, it is emptied: everything in it is the tests'.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.first = int(parts.path.strip("/") or 0)
        self.run = uuid.uuid4().hex
        self.held: set[int] = set()

    def url(self, database: int) -> str:
        return f"{self.base}/{database}"

    def claim(self) -> str:
        """Take an empty database and return its URL."""
        for database in self._candidates():
            if database in self.held:
                continue
            client = redis.Redis.from_url(self.url(database))
            try:
                if client.dbsize() or not client.set(CLAIM_KEY, self.run, nx=True):
                    continue
                if client.dbsize() != 1:  # something else wrote there meanwhile: not ours
                    client.delete(CLAIM_KEY)
                    continue
            finally:
                client.close()
            self.held.add(database)
            return self.url(database)
        raise RuntimeError(f"no empty Redis database left on {self.base} for the tests")

    def _candidates(self) -> Iterator[int]:
        count = self._count()
        yield from range(self.first, count)
        yield from range(0, min(self.first, count))

    def _count(self) -> int:
        """How many databases the server has (where CONFIG is refused: SELECT until one fails)."""
        with redis.Redis.from_url(self.url(0)) as client:
            try:
                return int(client.config_get("databases")["databases"])
            except (redis.ResponseError, KeyError, ValueError):
                pass
        count = 0
        while count < 1024:
            try:
                with redis.Redis.from_url(self.url(count)) as client:
                    client.ping()
            except redis.ResponseError:  # "DB index is out of range"
                break
            count += 1
        return count

    def release(self, url: str) -> None:
        """Empty a database this session took, and give it back."""
        database = int(urlsplit(url).path.strip("/"))
        assert database in self.held, f"{url} is not one this session took"
        client = redis.Redis.from_url(url)
        try:
            if client.get(CLAIM_KEY) == self.run.encode():  # still ours: empty it
                client.flushdb()
        finally:
            client.close()
        self.held.discard(database)

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        url = self.claim()
        try:
            yield url
        finally:
            self.release(url)


# --- RabbitMQ ---------------------------------------------------------------------------------

RABBITMQ = ("127.0.0.1", 5672)
RABBITMQ_MANAGEMENT = "http://127.0.0.1:15672/api"


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """Yield an amqp:// URL of the tests' own: TEST_RABBITMQ_URL, or a virtual host made for
    the block on the machine's RabbitMQ (and deleted after it, with every queue in it)."""
    given = os.environ.get(TEST_RABBITMQ_ENV, "")
    if given:
        yield given
        return
    with socket.socket() as probe:
        probe.settimeout(scaled(1))
        if probe.connect_ex(RABBITMQ) != 0:
            pytest.skip(f"no RabbitMQ answers at 127.0.0.1:5672 (or set {TEST_RABBITMQ_ENV})")
    vhost = f"workshop-tests-{uuid.uuid4().hex[:8]}"
    refused: list[str] = []
    for way in (_Rabbitmqctl(), _Management()):
        reason = way.add(vhost)
        if reason is None:
            try:
                yield f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
            finally:
                way.delete(vhost)
            return
        refused.append(reason)
    pytest.skip(
        "cannot make a virtual host of the tests' own on the RabbitMQ at 127.0.0.1:5672 "
        f"({'; '.join(refused)}); they do not share its default one. Run them where "
        f"rabbitmqctl may change it (as root), enable rabbitmq_management, or set "
        f"{TEST_RABBITMQ_ENV}"
    )


class _Rabbitmqctl:
    """The local node, through rabbitmqctl (root, or the rabbitmq user: it needs the cookie)."""

    def __init__(self) -> None:
        self.binary = shutil.which("rabbitmqctl")

    def run(self, *arguments: str) -> subprocess.CompletedProcess | str:
        if self.binary is None:
            return "rabbitmqctl is not installed"
        try:
            done = subprocess.run(
                [self.binary, *arguments], capture_output=True, text=True, timeout=scaled(60)
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"rabbitmqctl {arguments[0]}: {error}"
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or [""]
            return f"rabbitmqctl {arguments[0]} failed: {lines[-1]}"
        return done

    def add(self, vhost: str) -> str | None:
        done = self.run("add_vhost", vhost)
        if isinstance(done, str):
            return done
        granted = self.run("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        if isinstance(granted, str):
            self.delete(vhost)
            return granted
        return None

    def delete(self, vhost: str) -> None:
        self.run("delete_vhost", vhost)


class _Management:
    """RabbitMQ's HTTP API, where the management plugin is enabled (guest may use it)."""

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> str | None:
        try:
            answer = requests.request(
                method, f"{RABBITMQ_MANAGEMENT}{path}", json=body or {},
                auth=("guest", "guest"), timeout=scaled(10),
            )  # fmt: skip
        except requests.RequestException as error:
            return f"management API {method} {path}: {error}"
        if answer.status_code >= 300:
            return f"management API {method} {path}: {answer.status_code} {answer.text[:200]}"
        return None

    def add(self, vhost: str) -> str | None:
        name = quote(vhost, safe="")
        reason = self.call("PUT", f"/vhosts/{name}")
        if reason is None:
            everything = {"configure": ".*", "write": ".*", "read": ".*"}
            reason = self.call("PUT", f"/permissions/{name}/guest", everything)
            if reason is not None:
                self.delete(vhost)
        return reason

    def delete(self, vhost: str) -> None:
        self.call("DELETE", f"/vhosts/{quote(vhost, safe='')}")


# --- the machine's Redis ----------------------------------------------------------------------


class MachineRedisTouched(RuntimeError):
    """A test went for the machine's Redis (127.0.0.1:6379) without TEST_REDIS_URL saying so."""


REDIS_URL = re.compile(r"rediss?://[^\s'\",;]*")
LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback", "", "0.0.0.0", "::"}


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host.startswith("::ffff:"):
        host = host[len("::ffff:") :]
    return host in LOOPBACK_NAMES or host == "::1" or host.startswith("127.")


def names_machine_redis(text: str) -> bool:
    """Tell whether a text holds a Redis URL for this machine's port 6379 (the default)."""
    for found in REDIS_URL.findall(text):
        parts = urlsplit(found)
        try:
            port = parts.port or MACHINE_REDIS_PORT
        except ValueError:
            continue
        if port == MACHINE_REDIS_PORT and is_loopback(parts.hostname or ""):
            return True
    return False


class MachineRedisGuard:
    """An audit hook (sys.addaudithook) in the pytest process that refuses, by raising
    MachineRedisTouched, a connection to a loopback address on port 6379 and the start of a
    process whose environment or arguments name a Redis URL there.

    Off where TEST_REDIS_URL itself names that server: the person running the tests chose it.
    """

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.environ = environ
        self.active = not names_machine_redis(environ.get(TEST_REDIS_ENV, ""))
        # The shell's own variables, as the session started (the broker ones scrubbed): one
        # that names the machine's Redis for something else of the person's passes unchanged.
        self.baseline = {k: v for k, v in environ.items() if k not in BROKER_VARIABLES}
        self.refused: list[str] = []

    def install(self) -> None:
        sys.addaudithook(self.hook)  # for the whole process: audit hooks cannot be removed

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "socket.connect":
            self.check_address(args[1])
        elif event == "subprocess.Popen":
            _, argv, _, env = args
            self.check_process(argv, self.environ if env is None else env)

    def check_address(self, address: Any) -> None:
        if (
            isinstance(address, tuple)
            and len(address) >= 2
            and address[1] == MACHINE_REDIS_PORT
            and isinstance(address[0], str)
            and is_loopback(address[0])
        ):
            self.refuse(f"a connection to {address[0]}:{address[1]}")

    def check_process(self, argv: Any, env: Mapping[Any, Any]) -> None:
        for name, value in env.items():
            text = os.fsdecode(value) if isinstance(value, bytes) else str(value)
            key = os.fsdecode(name) if isinstance(name, bytes) else str(name)
            if self.baseline.get(key) == text:
                continue
            if names_machine_redis(text):
                self.refuse(f"a process started with {os.fsdecode(name)}={text}")
        arguments = [argv] if isinstance(argv, (str, bytes)) else list(argv or [])
        for argument in arguments:
            if isinstance(argument, (str, bytes)) and names_machine_redis(os.fsdecode(argument)):
                self.refuse(f"a process started with the argument {os.fsdecode(argument)}")

    def refuse(self, what: str) -> None:
        self.refused.append(what)
        raise MachineRedisTouched(
            f"{what}: the tests leave the machine's Redis (127.0.0.1:{MACHINE_REDIS_PORT}) "
            f"alone; use the redis_url fixture (a database of a private redis-server), or set "
            f"{TEST_REDIS_ENV} to that server to let them use it"
        )
