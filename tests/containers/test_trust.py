"""What one container may do to another (issue 18, item 8), read from the compose files as
Compose renders them, with the stores' own start scripts run for real where their programs
are on hand:

- MongoDB asks every client to log in, and each process logs in as its database's own
  user, whom docker/stores/mongo-users.js lets use that database and nothing else (the
  script run by Node with a stand-in for mongosh's `db`: what users it makes, with what
  rights);
- Redis asks for a password, and each process's URLs name the user of its role, whose
  rights docker/stores/redis-users.sh sets (the script run with a private redis-server,
  and each process's URLs used by the same client libraries the stages use: what each
  user may do, and what it may not);
- the networks: each container reaches only what it uses, and only nginx's network, the
  UIs' and the way out of the process that fetches from reddit leave the host;
- no container can gain a privilege or keep a capability, and each root file system is
  read-only, with a tmpfs for what the process writes;
- docker/make-secrets.py gives every secret a value of its own, and compose refuses to
  start without one.
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from importlib import util
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import yaml
from celery import Celery

from tests.containers.project import (
    COMPOSE_FILES,
    DOCKER,
    ROOT,
    compose,
    credentials,
    database_of,
    env_file,
    everything,
    free_port,
    password_names,
    resolved,
    service_name,
    stage_of,
    static_password,
    variable,
)
from tests.timing import scaled
from workshop import config, logins
from workshop.platform import broker

APP_DOCKERFILE = "docker/app.Dockerfile"
STORES = DOCKER / "stores"
MONGO_USERS = STORES / "mongo-users.js"
REDIS_USERS = STORES / "redis-users.sh"
MAKE_SECRETS = DOCKER / "make-secrets.py"
STORE_URLS = ("MONGO_URL", "BROKER_URL", "REGISTRY_URL", "CELERY_RESULT_BACKEND")
# The processes that fetch posts from reddit (workshop.ingestion.collect): the only ones
# with a way out of the host. 04's ingest web process only queues the job its worker does.
FETCHES = {("01-monolith", "web"), ("02-rest-api", "restapi"), ("03-services", "ingest"),
           ("04-async", "worker")}  # fmt: skip
# The networks that leave the host: nginx's published port, the way out, the UIs'.
OUTSIDE = {"edge", "egress", "observability"}
UIS = {"jaeger", "prometheus"}
REDIS_START_SECONDS = 10.0

compose_files = pytest.mark.parametrize("compose_file", COMPOSE_FILES, ids=lambda p: p.stem)
# The stages with a Redis (03, 04).
WITH_REDIS = [path for path in COMPOSE_FILES
              if "redis" in yaml.safe_load(path.read_text())["services"]]  # fmt: skip


def apps(services: dict[str, Any]) -> dict[str, Any]:
    """Return the services built from the app image: the stage's processes."""
    return {name: s for name, s in services.items()
            if s.get("build", {}).get("dockerfile") == APP_DOCKERFILE}  # fmt: skip


def processes_by_service(compose_file: Path) -> dict[str, Any]:
    stage = stage_of(compose_file)
    return {service_name(p.name): p for p in stage.processes()}


# --- MongoDB ----------------------------------------------------------------------------------


@compose_files
def test_mongodb_asks_every_client_to_log_in(compose_file, tmp_path):
    """--auth, a root user from docker/.env (required), and no process holds root's password."""
    services = resolved(compose_file, tmp_path)["services"]
    mongo = services["mongo"]
    assert "--auth" in mongo["command"] and "--noauth" not in mongo["command"]
    environment = mongo["environment"]
    assert environment["MONGO_INITDB_ROOT_USERNAME"] == "root"
    root_password = static_password("MONGO_ROOT_PASSWORD")
    assert environment["MONGO_INITDB_ROOT_PASSWORD"] == root_password
    for name, service in apps(services).items():
        assert root_password not in json.dumps(service["environment"]), f"{name} has root's"
    mounted = {v["target"]: v for v in mongo["volumes"]}
    script = mounted["/docker-entrypoint-initdb.d/mongo-users.js"]
    assert Path(script["source"]) == MONGO_USERS and script["read_only"] is True


def mongo_users(environment: dict[str, str]) -> list[dict[str, Any]]:
    """Run docker/stores/mongo-users.js as the mongo image's entrypoint does (in mongosh, with
    the container's environment) with a stand-in for `db`; return the users it makes."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("no Node.js here to run docker/stores/mongo-users.js (mongosh's language)")
    harness = """
        const made = [];
        globalThis.print = () => {};
        globalThis.db = {getSiblingDB: (name) => ({createUser: (user) => made.push({db: name, ...user})})};
        require("vm").runInThisContext(require("fs").readFileSync(process.argv[1], "utf8"));
        process.stdout.write(JSON.stringify(made));
    """  # noqa: E501
    answer = subprocess.run([node, "-e", harness, str(MONGO_USERS)], capture_output=True,
                            text=True, env={"PATH": os.environ["PATH"], **environment},
                            timeout=scaled(60))  # fmt: skip
    if answer.returncode != 0:
        raise AssertionError(f"mongo-users.js failed:\n{answer.stderr}")
    return json.loads(answer.stdout)


@compose_files
def test_each_process_may_use_its_own_database_and_no_other(compose_file, tmp_path):
    """The users mongo-users.js makes from the mongo container's environment: one per
    database, in it, with readWrite on it alone; each process's MONGO_URL logs in as its
    database's user with that user's password. So no process can use another's database:
    it has no other user's password, and its own user may use nothing else."""
    services = resolved(compose_file, tmp_path)["services"]
    made = mongo_users(services["mongo"]["environment"])
    users = {user["user"]: user for user in made}
    assert len(users) == len(made), "a user made twice"
    for user in made:
        assert user["db"] == user["user"], user  # defined in its own database
        assert user["roles"] == [{"role": "readWrite", "db": user["user"]}], user
    stage = stage_of(compose_file)
    wanted = {database_of(stage, p) for p in stage.processes()} - {None}
    assert set(users) == wanted, "a user for each database a process uses, and no other"
    logins_by_user = {}
    for name, service in apps(services).items():
        url = service["environment"].get("MONGO_URL")
        if url is None:
            continue
        parts = urlsplit(url)
        database = parts.path.lstrip("/")
        assert parts.username == database == parse_qs(parts.query)["authSource"][0], url
        assert parts.password == users[parts.username]["pwd"], f"{name}: not its user's password"
        assert database == database_of(stage, processes_by_service(compose_file)[name])
        logins_by_user.setdefault(parts.username, []).append(name)
    assert all(len(names) == 1 for names in logins_by_user.values()), logins_by_user
    assert set(logins_by_user) == set(users), "a user no process logs in as"


def test_the_users_script_refuses_what_it_cannot_make_safely():
    """No user at all, or a password that would break the URL it goes into: it stops."""
    with pytest.raises(AssertionError, match="no MONGO_PASSWORD_"):
        mongo_users({})
    with pytest.raises(AssertionError, match="MONGO_PASSWORD_USERS must be"):
        mongo_users({"MONGO_PASSWORD_USERS": "p@ss word"})


# --- Redis ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compose_file", WITH_REDIS, ids=lambda p: p.stem)
def test_every_redis_url_names_its_user_and_password(compose_file, tmp_path):
    """Each process's Redis URLs log in as the user of its role (project.redis_access), with
    the password the redis container gives that user; the redis container runs
    redis-users.sh, and its healthcheck is the PING a client may send without one."""
    services = resolved(compose_file, tmp_path)["services"]
    redis_service = services["redis"]
    assert redis_service["command"][:2] == ["sh", "/usr/local/etc/redis/redis-users.sh"]
    mounted = {v["target"]: v for v in redis_service["volumes"]}
    script = mounted["/usr/local/etc/redis/redis-users.sh"]
    assert Path(script["source"]) == REDIS_USERS and script["read_only"] is True
    assert redis_service["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    passwords = redis_service["environment"]
    stage = stage_of(compose_file)
    for name, service in apps(services).items():
        process = processes_by_service(compose_file)[name]
        environment = service["environment"]
        wanted = {k: v for k, v in credentials(stage, process).items() if k != "MONGO_URL"}
        got = {k: environment[k] for k in STORE_URLS[1:] if k in environment}
        assert got == wanted, name
        for url in got.values():
            parts = urlsplit(url)
            assert parts.password == passwords[variable("REDIS", parts.username)], (name, url)


class PrivateRedis:
    """docker/stores/redis-users.sh run as the redis container runs it (its command, its
    environment), starting a redis-server of the test's own on a free loopback port."""

    def __init__(self, folder: Path, command: list[str], environment: dict[str, str]):
        server = shutil.which("redis-server")
        if server is None:
            pytest.skip("no redis-server here (scripts/install-system-deps.sh installs it)")
        self.port = free_port()
        script = command.index("/usr/local/etc/redis/redis-users.sh")
        arguments = [*command[:script], str(REDIS_USERS), *command[script + 1 :]]
        arguments += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder),
                      "--save", "", "--appendonly", "no"]  # fmt: skip
        self.log = folder / "redis.log"
        path = f"{Path(server).parent}:{os.environ['PATH']}"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                arguments, stdout=log, stderr=subprocess.STDOUT,
                env={"PATH": path, "TMPDIR": str(folder), **environment},
            )  # fmt: skip
        deadline = time.monotonic() + scaled(REDIS_START_SECONDS)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"redis-users.sh stopped:\n{self.log.read_text()}")
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"Redis did not answer:\n{self.log.read_text()}")

    def here(self, url: str) -> str:
        """Return a container's URL pointed at this server instead of redis:6379."""
        return url.replace("@redis:6379/", f"@127.0.0.1:{self.port}/")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module", params=WITH_REDIS, ids=lambda p: p.stem)
def stage_redis(request, tmp_path_factory) -> Iterator[tuple[PrivateRedis, dict[str, Any]]]:
    """The stage's Redis, run here from its compose service; and its app containers'
    environments, by service."""
    folder = tmp_path_factory.mktemp(f"redis-{request.param.stem}")
    services = resolved(request.param, folder)["services"]
    server = PrivateRedis(folder, services["redis"]["command"], services["redis"]["environment"])
    try:
        yield server, {name: s["environment"] for name, s in apps(services).items()}
    finally:
        server.stop()


def refused(call, *args: Any) -> bool:
    """Tell whether Redis refused a call for want of permission (NOPERM, NOAUTH)."""
    try:
        call(*args)
    except (redis.exceptions.NoPermissionError, redis.exceptions.AuthenticationError):
        return True
    except redis.exceptions.ResponseError as error:
        return "NOPERM" in str(error) or "NOAUTH" in str(error)
    return False


def load_registry():
    """Return 03's chassis/registry.py (the registry's heartbeat and reader), loaded alone."""
    path = ROOT / "03-services" / "chassis" / "registry.py"
    spec = util.spec_from_file_location(f"registry_{uuid.uuid4().hex}", path)
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def client_of(server: PrivateRedis, url: str) -> redis.Redis:
    return redis.Redis.from_url(server.here(url), socket_timeout=2)


def registering(environments: dict[str, dict[str, str]]) -> dict[str, str]:
    """Return the REGISTRY_URL of each service that registers itself."""
    return {name: env["REGISTRY_URL"] for name, env in environments.items()
            if "ADVERTISE_URL" in env}  # fmt: skip


def test_a_client_without_a_password_may_only_ping(stage_redis):
    server, _ = stage_redis
    anonymous = redis.Redis(port=server.port, socket_timeout=2)
    assert anonymous.ping()  # the healthcheck
    assert refused(anonymous.get, "registry:users:x")
    assert refused(anonymous.set, "k", "v")
    assert refused(anonymous.lpush, "sync", "x")
    assert refused(anonymous.keys, "*")
    assert refused(anonymous.execute_command, "SELECT", "2")
    assert refused(anonymous.publish, "/0.celery.pidbox", "x")
    assert refused(anonymous.config_get, "*")
    assert refused(anonymous.flushall)


def test_each_service_writes_its_own_registry_entries_only(stage_redis):
    """A service registers itself, as its heartbeat does; not another service (which
    would take that service's traffic: its logins), nor anything else."""
    server, environments = stage_redis
    registry = load_registry()
    services = registering(environments)
    assert len(services) > 1, "no services register"
    for name, url in services.items():
        heartbeat = registry.Heartbeat(server.here(url), name, f"http://{name}:8000")
        heartbeat.client.set(heartbeat.key, heartbeat.value, ex=60)  # what its thread does
        client = client_of(server, url)
        other = next(service for service in services if service != name)
        assert refused(client.set, f"registry:{other}:http://{name}:8000", "{}"), name
        assert refused(client.delete, f"registry:{other}:http://{other}:8000"), name
        assert refused(client.get, "LIMITS:x"), name
        assert refused(client.lpush, "sync", "x"), name
        assert client.get(heartbeat.key) == heartbeat.value.encode(), name


def test_the_gateway_reads_the_registry_and_counts_failed_logins_only(stage_redis, monkeypatch):
    server, environments = stage_redis
    registry = load_registry()
    services = registering(environments)
    for name, url in services.items():  # every service up (test order does not matter)
        registry.Heartbeat(server.here(url), name, f"http://{name}:8000").client.set(
            f"registry:{name}:http://{name}:8000", "{}", ex=60
        )
    gateways = {name: env["REGISTRY_URL"] for name, env in environments.items()
                if "REGISTRY_URL" in env and name not in services}  # fmt: skip
    assert list(gateways) == ["web"]
    url = gateways["web"]
    reader = registry.Registry(server.here(url))
    for service in services:
        assert reader.instances(service) == [f"http://{service}:8000"], service
    client = client_of(server, url)
    assert refused(client.set, "registry:users:http://evil:8000", "{}")
    assert refused(client.delete, "registry:users:http://users:8000")
    assert refused(client.lpush, "sync", "x")
    assert refused(client.lrange, "sync", 0, -1)
    assert refused(client.publish, "/0.celery.pidbox", "x")
    monkeypatch.setenv("REGISTRY_URL", server.here(url))  # workshop/logins.py's store
    limiter = logins.LoginLimiter()
    for _ in range(logins.PER_USER.amount):
        limiter.failed("ada", "203.0.113.7")
    assert limiter.retry_after("ada", "203.0.113.7") > 0, "failed logins are not counted"


def round_trip(url: str, name: str) -> list[Any]:
    """Send a message to a queue and take it back, with the stages' own broker connection
    (workshop.platform.broker, kombu's Redis transport) on BROKER_URL; return what came back."""
    queue = f"check-{name}"
    got: list[Any] = []

    def take(body: Any, message: Any) -> None:
        got.append(body)
        message.ack()

    with broker.connect() as connection:
        producer = connection.Producer(serializer="json")
        producer.publish({"from": name}, exchange="", routing_key=queue,
                         declare=[broker.queue(queue)], delivery_mode=2)  # fmt: skip
        with connection.Consumer([broker.queue(queue)], callbacks=[take]):
            connection.drain_events(timeout=5)
    return got


def test_the_services_send_and_take_messages_and_reach_nothing_of_celery(stage_redis, monkeypatch):
    """As `broker`: their messages, in database 0; not Celery's results (database 2), the
    registry (1), nor any channel (Celery's remote control, results' notices)."""
    server, environments = stage_redis
    users = {name: env["BROKER_URL"] for name, env in environments.items()
             if urlsplit(env.get("BROKER_URL", "")).username == "broker"}  # fmt: skip
    assert users, "no process sends messages as broker"
    for name, url in users.items():
        monkeypatch.setenv("BROKER_URL", server.here(url))
        assert round_trip(url, name) == [{"from": name}], name
        client = client_of(server, url)
        assert refused(client.execute_command, "SELECT", "2"), name  # Celery's results
        assert refused(client.execute_command, "SELECT", "1"), name  # the registry
        assert refused(client.execute_command, "MOVE", "sync", "2"), name
        assert refused(client.publish, "/0.celery.pidbox", "x"), name  # remote control
        assert refused(client.execute_command, "SUBSCRIBE", "celery-task-meta-x"), name


def test_celery_s_user_runs_tasks_remote_control_and_results(stage_redis, monkeypatch):
    """As `celery` (04's ingest web process, worker, beat): tasks queued, the remote control
    the healthchecks ping through, results stored and read; and its messages to sync."""
    server, environments = stage_redis
    users = {name: env for name, env in environments.items()
             if urlsplit(env.get("BROKER_URL", "")).username == "celery"}  # fmt: skip
    if not users:
        pytest.skip("no Celery in this stage")
    assert set(users) == {"ingest", "worker", "beat"}
    for name, env in users.items():
        url, results = server.here(env["BROKER_URL"]), env.get("CELERY_RESULT_BACKEND")
        monkeypatch.setenv("BROKER_URL", url)
        assert round_trip(url, name) == [{"from": name}], name  # the worker's relay, ingest's
        app = Celery("check", broker=url, backend=server.here(results) if results else None)
        app.send_task("ingest.check", queue="ingest-jobs")
        assert app.control.ping(timeout=scaled(0.5)) == []  # no worker here: nobody answers
        if results:  # the worker stores, the ingest web process reads
            task = uuid.uuid4().hex
            app.backend.store_result(task, {"new": 1}, "SUCCESS")
            assert app.AsyncResult(task).get(timeout=scaled(5)) == {"new": 1}, name


def test_nobody_administers_the_server(stage_redis):
    server, environments = stage_redis
    urls = {url for env in environments.values() for name, url in env.items()
            if name in STORE_URLS[1:]}  # fmt: skip
    assert urls
    for url in urls:
        client = client_of(server, url)
        assert refused(client.keys, "*"), url
        assert refused(client.flushall), url
        assert refused(client.config_set, "appendonly", "no"), url
        assert refused(client.execute_command, "ACL", "SETUSER", "someone", "on"), url
        assert refused(client.execute_command, "SHUTDOWN"), url


def test_the_redis_script_refuses_a_user_with_no_role(tmp_path):
    """A REDIS_PASSWORD_ variable for a user the script gives no rights stops the start,
    rather than making a user with rights nobody decided."""
    with pytest.raises(AssertionError, match="no role"):
        PrivateRedis(tmp_path, ["sh", "/usr/local/etc/redis/redis-users.sh"],
                     {"REDIS_PASSWORD_ADMIN": "a-password"})  # fmt: skip


# --- networks ---------------------------------------------------------------------------------


def network_members(described: dict[str, Any]) -> dict[str, set[str]]:
    """Return each network's containers (a container on none is on `default`)."""
    members: dict[str, set[str]] = {}
    for name, service in described["services"].items():
        for network in service.get("networks") or {"default": None}:
            members.setdefault(network, set()).add(name)
    return members


def reachable(described: dict[str, Any]) -> dict[str, set[str]]:
    """Return whom each container reaches: those it shares a network with."""
    found: dict[str, set[str]] = {name: set() for name in described["services"]}
    for members in network_members(described).values():
        for name in members:
            found[name] |= members - {name}
    return found


@compose_files
def test_each_container_reaches_only_what_it_uses(compose_file, tmp_path):
    """nginx reaches the front door only; MongoDB is reached by the processes that have a
    database and by nothing else; Redis by those with a Redis URL; the front door reaches
    what it calls; no process reaches a store it does not use (the gateways and Celery beat
    no MongoDB, 01's and 02's processes no Redis).

    Docker cannot do finer: containers on one network reach each other, so the processes
    that share the broker's network (or the store's) reach one another's ports. What keeps
    each out of another's data there is its own user (the tests above and below)."""
    described = everything(compose_file, tmp_path)
    reach = reachable(described)
    stage = stage_of(compose_file)
    front_door = service_name(stage.processes()[0].name)
    environment = {name: s["environment"] for name, s in apps(described["services"]).items()}
    assert reach["nginx"] == {front_door}
    with_database = {name for name, env in environment.items() if "MONGO_URL" in env}
    assert reach["mongo"] == with_database
    with_redis = {name for name, env in environment.items()
                  if {"BROKER_URL", "REGISTRY_URL"} & set(env)}  # fmt: skip
    assert reach.get("redis", set()) == with_redis
    called = {service_name(p.name) for p in stage.processes()[1:] if f"{p.name.upper()}_URL"
              in environment[front_door]}  # fmt: skip
    assert called <= reach[front_door], "the front door cannot reach what it calls"
    for name in environment:  # no store but its own (the two above, from the other side)
        own = {"mongo"} & ({"mongo"} if name in with_database else set())
        own |= {"redis"} & ({"redis"} if name in with_redis else set())
        assert reach[name] & {"mongo", "redis"} == own, name
    for ui in UIS & set(reach):  # Jaeger and Prometheus: the processes, no store
        assert not {"mongo", "redis", "nginx"} & reach[ui], ui


@compose_files
def test_only_nginx_the_uis_and_the_fetching_process_have_a_way_out(compose_file, tmp_path):
    """Every network is internal (no way in or out of the host) but edge (nginx's published
    port), observability (the UIs') and egress (the process that fetches from reddit)."""
    described = everything(compose_file, tmp_path)
    networks = described["networks"]
    outside = {name for name, n in networks.items() if not n.get("internal")}
    assert outside <= OUTSIDE, f"{outside - OUTSIDE} leave the host"
    members = network_members(described)
    assert members["edge"] == {"nginx"}
    assert members.get("observability", set()) == UIS & set(described["services"])
    stage = stage_of(compose_file)
    fetching = {service_name(p.name) for p in stage.processes() if (stage.name, p.name) in FETCHES}
    assert members["egress"] == fetching, "egress is for the process that fetches, only"
    for name, service in described["services"].items():
        if service.get("ports"):  # a published port needs a network that leaves the host
            assert set(service["networks"]) & outside, name


# --- privileges and file systems --------------------------------------------------------------


def tmpfs_mounts(service: dict[str, Any]) -> dict[str, int]:
    """Return a service's tmpfs mounts and their sizes in bytes (0: no size given)."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    found = {}
    for entry in service.get("tmpfs", []):
        path, _, options = entry.partition(":")
        size = 0
        for option in filter(None, options.split(",")):
            key, _, value = option.partition("=")
            if key == "size":
                number = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
                size = int(number.group(1)) * units.get(number.group(2), 1)
        found[path] = size
    return found


def memory_bytes(service: dict[str, Any]) -> int:
    return int(service["deploy"]["resources"]["limits"]["memory"])


@compose_files
def test_no_container_gains_a_privilege_or_writes_its_root(compose_file, tmp_path):
    """Every container, the profiles' too: no-new-privileges, every capability dropped and
    none added back, a read-only root file system, a tmpfs /tmp of bounded size."""
    for name, service in everything(compose_file, tmp_path)["services"].items():
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("cap_drop") == ["ALL"] and not service.get("cap_add"), name
        assert service.get("read_only") is True, f"{name}: a writable root file system"
        assert service.get("privileged") is not True, name
        mounts = tmpfs_mounts(service)
        assert mounts.get("/tmp"), f"{name}: no /tmp of bounded size"
        assert sum(mounts.values()) < memory_bytes(service), f"{name}: tmpfs is memory"


@compose_files
def test_what_each_process_writes_has_a_place(compose_file, tmp_path):
    """A read-only root holds up only if each process's writable places are mounted: the
    app's data folder (WORKSHOP_DATA_DIR) on its tmpfs; nginx's rendered site and its
    temporary files, where a 32 MiB body waits; the stores' data in their volumes."""
    services = everything(compose_file, tmp_path)["services"]
    for name, service in apps(services).items():
        data_dir = Path(service["environment"]["WORKSHOP_DATA_DIR"])
        assert any(data_dir.is_relative_to(m) for m in tmpfs_mounts(service)), name
    nginx = tmpfs_mounts(services["nginx"])
    assert nginx.get("/etc/nginx/conf.d"), "the site is rendered into conf.d at start"
    nginx_conf = (DOCKER / "nginx" / "nginx.conf").read_text()
    for path in re.findall(r"(?m)^\s*(?:pid|\w+_temp_path)\s+(/\S+?);", nginx_conf):
        assert any(Path(path).is_relative_to(m) for m in nginx), f"nginx writes {path}"
    assert nginx["/tmp"] > config.MAX_INGEST_BYTES, "a body up to the limit must fit in /tmp"
    for store, data in (("mongo", "/data/db"), ("redis", "/data")):
        if store in services:
            targets = {v["target"]: v["type"] for v in services[store]["volumes"]}
            assert targets[data] == "volume", store


# --- the secrets ------------------------------------------------------------------------------


def test_make_secrets_gives_every_secret_its_own_value_and_keeps_what_is_set(tmp_path):
    settings = tmp_path / ".env"
    shutil.copy(DOCKER / ".env.example", settings)
    settings.write_text(settings.read_text().replace("MONGO_PASSWORD_TAG=\n",
                                                     "MONGO_PASSWORD_TAG=mine_own\n"))  # fmt: skip
    done = subprocess.run([sys.executable, str(MAKE_SECRETS), str(settings)],
                          capture_output=True, text=True, timeout=scaled(60))  # fmt: skip
    assert done.returncode == 0, done.stderr
    values = dict(re.findall(r"(?m)^([A-Z0-9_]+)=(.*)$", settings.read_text()))
    secrets = ["SECRET_KEY", *password_names()]
    assert len(secrets) > 10 and values["MONGO_PASSWORD_TAG"] == "mine_own"
    made = [values[name] for name in secrets if name != "MONGO_PASSWORD_TAG"]
    assert len(set(made)) == len(made), "two secrets share a value"
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", value) for value in made)  # URL-safe
    config.check_secret(values["SECRET_KEY"], production=True)
    assert values["PORT"] == "8000", "what is not a secret is left alone"
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    assert values["SECRET_KEY"] not in done.stdout + done.stderr
    again = subprocess.run([sys.executable, str(MAKE_SECRETS), str(settings)],
                           capture_output=True, text=True, timeout=scaled(60))  # fmt: skip
    assert (
        again.returncode == 0
        and dict(re.findall(r"(?m)^([A-Z0-9_]+)=(.*)$", settings.read_text())) == values
    ), "a second run changes nothing"
    for compose_file in COMPOSE_FILES:
        answer = compose(compose_file, settings, "config", "-q")
        assert answer.returncode == 0, (compose_file.name, answer.stderr)


def test_make_secrets_adds_the_passwords_to_a_kubernetes_secret_file(tmp_path):
    """docker/k8s/secret.env starts with SECRET_KEY only (docker/README.md): the passwords are
    added, the key kept; a file that does not exist is made."""
    secret_env = tmp_path / "secret.env"
    secret_env.write_text("SECRET_KEY=kept-as-it-is\n")
    subprocess.run([sys.executable, str(MAKE_SECRETS), str(secret_env)], check=True,
                   capture_output=True, timeout=scaled(60))  # fmt: skip
    values = dict(re.findall(r"(?m)^([A-Z0-9_]+)=(.*)$", secret_env.read_text()))
    assert values["SECRET_KEY"] == "kept-as-it-is"
    assert set(values) == {"SECRET_KEY", *password_names()}
    fresh = tmp_path / "fresh.env"
    subprocess.run([sys.executable, str(MAKE_SECRETS), str(fresh)], check=True,
                   capture_output=True, timeout=scaled(60))  # fmt: skip
    assert set(re.findall(r"(?m)^([A-Z0-9_]+)=", fresh.read_text())) == set(values)


@compose_files
def test_compose_refuses_to_start_without_a_password_it_needs(compose_file, tmp_path):
    """Every password a compose file uses is required (${NAME:?...}): none has a default."""
    text = compose_file.read_text()
    used = sorted(set(re.findall(r"\$\{([A-Z0-9_]*PASSWORD[A-Z0-9_]*)", text)))
    assert used, f"{compose_file.name} uses no password"
    assert set(used) <= set(password_names()), "a password .env.example does not name"
    for name in used:
        assert re.search(rf"\$\{{{name}:\?run python3 docker/make-secrets\.py", text), name
    for name in (used[0], used[-1]):
        folder = tmp_path / name
        folder.mkdir()
        settings = env_file(folder, passwords=lambda n, gone=name: None if n == gone else "pw")
        answer = compose(compose_file, settings, "config", "-q")
        assert answer.returncode != 0 and name in answer.stderr, (name, answer.stderr)
