"""`workshop doctor`: the check an attendee runs the week before the workshop.

Each line is a check: ok, warn or FAIL, and for anything not ok, what to do about it.
Only what blocks the day fails (and makes the exit status 1): a Python older than 3.11, a
port the stage needs already taken, the runtime lock not installed, a disk almost full.
Everything else the workshop can use (Redis, RabbitMQ, Docker with Compose v2, Chromium, the
test tools) is optional, and a warning says what it is for.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import click

from tooling import stages
from tooling.runner import port_is_free, running_stages
from workshop import config
from workshop.config import DEFAULT_PORT

MIN_PYTHON = (3, 11)
GB = 1024**3
# The runtime .venv takes ~140 MB, the test tools ~0.7 GB more, Chromium ~0.3 GB, and the
# images of one stage ~1-2 GB: below the first figure nothing can be installed.
DISK_FAIL_BYTES = GB // 2
DISK_WARN_BYTES = 3 * GB
COMMAND_TIMEOUT_SECONDS = 15
# Where a system package's server lives when sbin is not on a user's PATH (Debian, Homebrew).
SBIN_FOLDERS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/opt/homebrew/bin")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_APPS = (
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
# Where the browser test looks unless CHROMIUM_PATH says (tests/acceptance/test_browser.py).
BROWSER_TEST_CHROMIUM = "/usr/bin/chromium"
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


@dataclass(frozen=True)
class Check:
    """One line of the report: how it went, what was found, and what to do if not ok."""

    status: str  # "ok", "warn" or "FAIL"
    found: str
    fix: str = ""
    optional: str = ""  # what an optional part is for; empty: the day needs it

    @property
    def blocks(self) -> bool:
        return self.status == "FAIL"


def ok(found: str, optional: str = "") -> Check:
    return Check("ok", found, optional=optional)


def warn(found: str, fix: str, optional: str = "") -> Check:
    return Check("warn", found, fix, optional)


def fail(found: str, fix: str) -> Check:
    return Check("FAIL", found, fix)


# --- what blocks the day ------------------------------------------------------------------


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    """Python 3.11 or newer: the code uses 3.11's standard library (datetime.UTC, ...)."""
    shown = ".".join(map(str, version))
    if tuple(version[:2]) >= MIN_PYTHON:
        return ok(f"Python {shown} (3.11 or newer)")
    return fail(
        f"Python {shown} is too old: the workshop needs 3.11 or newer",
        "install Python 3.11+ (python.org, pyenv, brew or apt), then "
        "`rm -rf .venv && make setup PYTHON=python3.11`",
    )


def check_ports(stage: stages.Stage, base: int) -> Check:
    """Every port the stage listens on is free on 127.0.0.1 (`workshop up` refuses otherwise)."""
    ports = stage.ports(base)
    shown = ", ".join(f"{port} ({name})" for name, port in ports.items())
    busy = [port for port in ports.values() if not port_is_free(port)]
    if not busy:
        return ok(f"ports free for {stage.name}: {shown}")
    ours = [r for r in running_stages() if set(r["ports"].values()) & set(busy)]
    holder = f": {ours[0]['stage']} runs there (`workshop up`)" if ours else ""
    other = free_base(stage)
    move = (
        f", or run it on other ports: `make run STAGE={stage.name} PORT={other}` "
        f"(check them with `workshop doctor --stage {stage.name} --port {other}`)"
        if other
        else ""
    )
    taken = ", ".join(map(str, busy))
    return fail(
        f"{stage.name} needs ports {shown}; taken: {taken}{holder}",
        f"stop what listens there (`lsof -i :{busy[0]}` names it){move}",
    )


def free_base(stage: stages.Stage) -> int | None:
    """Return a round front door port (9000, 10000, ...) with every port of the stage free."""
    for base in range(9000, 60000, 1000):
        if all(port_is_free(port) for port in stage.ports(base).values()):
            return base
    return None


def check_disk(free_bytes: int, where: Path) -> Check:
    """Room for the virtualenv, the test tools and (optionally) the images."""
    shown = f"{free_bytes / GB:.1f} GB free in {where}"
    if free_bytes < DISK_FAIL_BYTES:
        return fail(
            f"{shown}: not enough to install the workshop (~0.2 GB)",
            "free at least 1 GB (3 GB with Docker's images)",
        )
    if free_bytes < DISK_WARN_BYTES:
        return warn(
            f"{shown}: enough for `make run`, tight for the test tools and the images",
            "free 3 GB if you will run `make test` or the containers",
        )
    return ok(shown)


def locked_versions(requirements: Path) -> dict[str, str]:
    """Return the pins of a requirements file that apply to this Python and platform."""
    from packaging.markers import Marker  # in the runtime lock (gunicorn needs it)

    pins = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        found = REQUIREMENT.match(line.strip())
        if found and (not found.group(3) or Marker(found.group(3)).evaluate()):
            pins[canonical(found.group(1))] = found.group(2)
    return pins


def canonical(name: str) -> str:
    """Return a distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def differences(pins: dict[str, str], installed: Callable[[str], str | None]) -> list[str]:
    """Return each pinned package missing or at another version, as `name (wanted, found)`."""
    found = []
    for name, wanted in sorted(pins.items()):
        version = installed(name)
        if version is None:
            found.append(f"{name} {wanted} missing")
        elif canonical(version) != canonical(wanted):
            found.append(f"{name} {version}, not {wanted}")
    return found


def check_lock(
    requirements: Path, installed: Callable[[str], str | None] = installed_version
) -> Check:
    """The runtime lock is what this Python has installed (what `make setup` installs)."""
    where = sys.prefix
    if not requirements.is_file():
        return fail(
            f"no {requirements.name} at {requirements.parent}: cannot check the lock",
            "run this from the workshop's repository (its requirements/ folder)",
        )
    try:
        pins = locked_versions(requirements)
    except ImportError:  # packaging, which reads the pins' markers, is in the lock
        return fail(
            f"the runtime lock is not installed in {where} (no packaging)",
            "run `make setup` in the repository, then `.venv/bin/workshop doctor`",
        )
    wrong = differences(pins, installed)
    if not wrong:
        return ok(
            f"the runtime lock is installed in {where} ({len(pins)} packages as "
            f"requirements/{requirements.name} pins them)"
        )
    shown = "; ".join(wrong[:3]) + (f"; and {len(wrong) - 3} more" if len(wrong) > 3 else "")
    return fail(
        f"the runtime lock is not installed in {where}: {shown}",
        "run `make setup` in the repository, then `.venv/bin/workshop doctor`",
    )


# --- optional parts -----------------------------------------------------------------------


def find_program(name: str) -> str | None:
    """Return a program's path from PATH, or from the sbin folders servers install into."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN_FOLDERS))


def answers(port: int, greeting: bytes | None = None, reply: bytes = b"") -> bool:
    """Tell whether something listens on a loopback port (and, given a greeting, replies)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            if greeting is None:
                return True
            connection.sendall(greeting)
            return connection.recv(64).startswith(reply)
    except OSError:
        return False


def run(command: list[str]) -> subprocess.CompletedProcess | None:
    """Run a short command; None if it cannot be run or takes too long."""
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def check_test_tools(requirements: Path) -> Check:
    """The dev lock (pytest, Playwright, ...): `make test` installs it."""
    purpose = "`make test` runs them"
    if not requirements.is_file():
        return warn(
            f"test tools: no {requirements} to check",
            "run this from the workshop's repository",
            purpose,
        )
    try:
        wrong = differences(locked_versions(requirements), installed_version)
    except ImportError:
        wrong = ["packaging"]
    if not wrong:
        return ok("the test tools are installed (the dev lock)", purpose)
    return warn(
        "the test tools are not installed",
        "`make test` installs them (requirements/dev.txt) the first time it runs",
        purpose,
    )


def check_redis() -> Check:
    purpose = (
        "a real broker and the registry for stages 03 and 04, and the broker tests; "
        "without it the stages pass messages through files"
    )
    if answers(6379, b"PING\r\n", b"+PONG"):
        return ok("Redis answers on 127.0.0.1:6379", purpose)
    server = find_program("redis-server")
    if server:
        return warn(
            f"Redis is installed ({server}) but not running",
            "`redis-server --daemonize yes` starts one; `make test` starts its own",
            purpose,
        )
    return warn(
        "Redis not found",
        "`sudo apt-get install redis-server` or `brew install redis`; "
        "`make test` installs it on Debian/Ubuntu",
        purpose,
    )


def check_rabbitmq() -> Check:
    purpose = "the other broker stages 03 and 04 can use, BROKER_URL=amqp://..."
    if answers(5672):
        return ok("RabbitMQ answers on 127.0.0.1:5672", purpose)
    server = find_program("rabbitmq-server")
    if server:
        return warn(
            f"RabbitMQ is installed ({server}) but not running",
            "`sudo systemctl start rabbitmq-server` or `brew services start rabbitmq`",
            purpose,
        )
    return warn(
        "RabbitMQ not found",
        "`sudo apt-get install rabbitmq-server` or `brew install rabbitmq`",
        purpose,
    )


DOCKER_PURPOSE = "the stages in containers, docker/README.md"


def check_docker() -> Check:
    client = shutil.which("docker")
    if not client:
        return warn(
            "Docker not found",
            "install Docker Desktop, or Docker Engine (docs.docker.com/engine/install)",
            DOCKER_PURPOSE,
        )
    done = run([client, "version", "--format", "{{.Server.Version}}"])
    if done is None or done.returncode != 0 or not done.stdout.strip():
        return warn(
            f"Docker: the client is installed ({client}) but no engine answers",
            "start Docker Desktop, or the engine (`sudo systemctl start docker`); "
            "`docker info` says why it cannot connect",
            DOCKER_PURPOSE,
        )
    return ok(f"Docker engine {done.stdout.strip()} answers", DOCKER_PURPOSE)


def compose_v2_version(command: list[str]) -> str | None:
    """Return the Compose version a command reports if it is Compose v2, else None."""
    done = run([*command, "version"])
    found = re.search(r"\bv?(2\.\d+\.\d+)", done.stdout) if done and done.returncode == 0 else None
    return found.group(1) if found else None


def check_compose() -> Check:
    purpose = "`docker compose -f docker/STAGE.yaml up` starts a stage in containers"
    client = shutil.which("docker")
    plugin = compose_v2_version([client, "compose"]) if client else None
    if plugin:
        return ok(f"Docker Compose {plugin} (`docker compose`)", purpose)
    standalone = shutil.which("docker-compose")
    version = compose_v2_version([standalone]) if standalone else None
    if version:
        return warn(
            f"Compose {version} as `docker-compose` ({standalone}), not `docker compose`",
            "install the compose plugin (docker-compose-plugin), or type "
            "`docker-compose` where the docs say `docker compose`",
            purpose,
        )
    return warn(
        "Docker Compose v2 not found",
        "Docker Desktop has it; on Linux install docker-compose-plugin",
        purpose,
    )


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return next((app for app in CHROMIUM_APPS if os.access(app, os.X_OK)), None)


def check_chromium() -> Check:
    purpose = "the browser test of `make test`"
    named = os.environ.get("CHROMIUM_PATH", "")
    if named:
        if os.access(named, os.X_OK):
            return ok(f"Chromium at {named} (CHROMIUM_PATH)", purpose)
        return warn(
            f"CHROMIUM_PATH={named} is not a program",
            "point CHROMIUM_PATH at a Chromium or Chrome executable",
            purpose,
        )
    if os.access(BROWSER_TEST_CHROMIUM, os.X_OK):
        return ok(f"Chromium at {BROWSER_TEST_CHROMIUM}", purpose)
    found = find_chromium()
    if found:
        return warn(
            f"Chromium at {found}, where the browser test does not look",
            f"export CHROMIUM_PATH='{found}'",
            purpose,
        )
    return warn(
        "Chromium not found",
        "`make test` installs it with apt-get on Debian/Ubuntu; elsewhere install "
        "Chromium or Chrome and set CHROMIUM_PATH to it",
        purpose,
    )


# --- the report ---------------------------------------------------------------------------


def checks(stage_name: str, port: int) -> Iterable[Check]:
    """Run every check, in the order a reader fixes things: what blocks first."""
    yield check_python()
    try:
        yield check_ports(stages.get_stage(stage_name), port)
    except stages.NoStages as error:
        yield fail("no stage folders found", str(error))
    except KeyError:
        known = ", ".join(s.name for s in stages.all_stages())
        yield fail(f"no stage {stage_name!r}", f"pick one of: {known}")
    yield check_disk(shutil.disk_usage(config.ROOT).free, config.ROOT)
    requirements = config.ROOT / "requirements"
    yield check_lock(requirements / "runtime.txt")
    yield check_test_tools(requirements / "dev.txt")
    yield check_redis()
    yield check_rabbitmq()
    yield check_docker()
    yield check_compose()
    yield check_chromium()


COLOURS = {"ok": "green", "warn": "yellow", "FAIL": "red"}


def line(check: Check) -> str:
    """Return a check as the report prints it: status, what was found, the fix."""
    text = click.style(f"{check.status:<4}", fg=COLOURS[check.status], bold=True)
    optional = f" [optional: {check.optional}]" if check.optional else ""
    fix = f"\n        fix: {check.fix}" if check.fix else ""
    return f"  {text}  {check.found}{optional}{fix}"


@click.command("doctor")
@click.option(
    "--stage",
    "stage_name",
    default="01-monolith",
    show_default=True,
    help="The stage you will run (its ports are checked).",
)
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    help="The front door port you will run it on.",
)
def doctor(stage_name: str, port: int) -> None:
    """Check this machine for the workshop: ok, warn or FAIL, with the fix for each.

    Exits 1 only for what blocks the day (Python too old, the stage's ports taken, the
    runtime lock not installed, no disk space); optional parts only warn.
    """
    click.echo("workshop doctor: is this machine ready for the workshop?")
    found = []
    for check in checks(stage_name, port):
        found.append(check)
        click.echo(line(check))
    blocking = [c for c in found if c.blocks]
    warnings = [c for c in found if c.status == "warn"]
    if blocking:
        click.secho(
            f"not ready: {len(blocking)} to fix before the day (FAIL above), "
            f"{len(warnings)} optional",
            fg="red",
            bold=True,
        )
        sys.exit(1)
    click.secho(
        f"ready: nothing blocks; {len(warnings)} optional part(s) missing or off (warn above)",
        fg="green",
        bold=True,
    )
