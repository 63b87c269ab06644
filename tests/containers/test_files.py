"""The Dockerfiles and compose files: linted, parsed by Compose itself, checked against the
Compose schema, and held to what `workshop up` runs (the same processes, commands and
environment as each stage's Procfile), without a Docker engine."""

import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from tests.containers.project import (
    COMPOSE_FILES,
    CONTAINER_PORT,
    DOCKER,
    DOCKERFILES,
    NGINX_DIR,
    ROOT,
    TEMPLATE,
    TEMPLATE_VARIABLES,
    address,
    addresses,
    app_package,
    compose,
    credentials,
    declared_profiles,
    env_file,
    everything,
    procfile_view,
    registers,
    resolved,
    serves_http,
    service_name,
    stage_folder,
    stage_of,
    workshop_up_names,
)
from tooling.stages import Stage, all_stages
from workshop import config
from workshop.platform import procfile

APP_DOCKERFILE = "docker/app.Dockerfile"
SECRET = "${SECRET_KEY:?set SECRET_KEY in docker/.env}"
# `--profile observability` (03, 04): Jaeger and Prometheus, each publishing its UI on
# 127.0.0.1 (the container port, and the docker/.env variable that moves it).
OBSERVABILITY = "observability"
UIS = {"jaeger": (16686, "JAEGER_PORT"), "prometheus": (9090, "PROMETHEUS_PORT")}
BIN = Path(sys.executable).parent

compose_files = pytest.mark.parametrize("compose_file", COMPOSE_FILES, ids=lambda p: p.stem)


def test_every_stage_has_a_compose_file():
    have = {path.stem for path in COMPOSE_FILES}
    wanted = {stage.name for stage in all_stages()}
    assert wanted and wanted <= have, f"no docker/<stage>.yaml for {sorted(wanted - have)}"
    assert have <= {stage.name for stage in all_stages()}, "a compose file names no stage"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    answer = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr


def test_hadolint_fails_on_a_warning(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\n")  # DL3007, DL3013, DL3042
    answer = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "warning", str(bad)],
        capture_output=True,
        text=True,
    )
    assert answer.returncode != 0 and "DL3007" in answer.stdout


@compose_files
def test_compose_accepts_the_file(compose_file, tmp_path):
    answer = compose(compose_file, env_file(tmp_path), "config", "-q")
    assert answer.returncode == 0, answer.stderr
    for profile in declared_profiles(compose_file):
        answer = compose(compose_file, env_file(tmp_path), "--profile", profile, "config", "-q")
        assert answer.returncode == 0, (profile, answer.stderr)


@pytest.mark.parametrize(
    ("broken", "complaint"),
    [
        (lambda text: text.replace("healthcheck:", "healtcheck:", 1), "healtcheck"),
        (
            lambda text: text.replace("mongo:\n        condition", "mongodb:\n        condition"),
            "mongodb",
        ),  # fmt: skip
    ],
    ids=["misspelled-key", "unknown-dependency"],
)
def test_compose_refuses_a_broken_file(broken, complaint, tmp_path):
    original = DOCKER / "01-monolith.yaml"
    copy = tmp_path / original.name
    copy.write_text(broken(original.read_text()))
    assert copy.read_text() != original.read_text()
    answer = compose(copy, env_file(tmp_path), "config", "-q")
    assert answer.returncode != 0 and complaint in answer.stderr, answer.stderr


@compose_files
def test_compose_file_matches_the_compose_schema(compose_file):
    answer = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(compose_file),
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr


def test_the_compose_schema_check_catches_a_misspelled_key(tmp_path):
    copy = tmp_path / "broken.yaml"
    copy.write_text((DOCKER / "01-monolith.yaml").read_text().replace("restart:", "restrat:", 1))
    answer = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(copy)],
        capture_output=True,
        text=True,
    )
    assert answer.returncode != 0, answer.stdout


@compose_files
def test_the_secret_has_no_default(compose_file, tmp_path):
    raw = compose_file.read_text()
    values = re.findall(r"SECRET_KEY:\s*(.+)", raw)
    assert values and all(value.strip() == SECRET for value in values), values
    assert re.search(r"(?m)^SECRET_KEY=$", (DOCKER / ".env.example").read_text())
    answer = compose(compose_file, env_file(tmp_path, secret=None), "config", "-q")
    assert answer.returncode != 0 and "set SECRET_KEY in docker/.env" in answer.stderr


@compose_files
def test_compose_runs_the_procfile(compose_file, tmp_path):
    """The same processes, commands and environment as `workshop up`, by container name.

    Rule for names: a Procfile process `recommend_v1` is the compose service
    `recommend-v1` (a hostname may not hold `_`); its address RECOMMEND_V1_URL is
    http://recommend-v1:8000. A process that serves no HTTP (04's Celery worker) has none.
    """
    stage = stage_of(compose_file)
    services = resolved(compose_file, tmp_path)["services"]
    apps = {name: s for name, s in services.items()
            if s.get("build", {}).get("dockerfile") == APP_DOCKERFILE}  # fmt: skip
    processes = stage.processes()
    assert set(apps) == {service_name(p.name) for p in processes}

    names = workshop_up_names(stage)
    for process in processes:
        service = apps[service_name(process.name)]
        assert service["build"]["args"]["STAGE"] == stage.name
        settings, command = procfile_view(process.command)
        assert service["command"] == command, process.name
        assert stage_folder(command) == stage.name
        assert app_package(command) == process.package
        environment = service["environment"]
        assert names <= set(environment), f"{process.name} lacks {names - set(environment)}"
        for name, value in settings.items():
            assert environment[name] == value, (process.name, name)
        assert environment["PORT"] == CONTAINER_PORT
        for name, url in addresses(stage).items():
            assert environment[name] == url, (process.name, name)
        # The address of a process that serves no app only where the code asks it (04's
        # ingest asks its worker's /healthz).
        silent = {f"{p.name.upper()}_URL" for p in processes} - set(addresses(stage))
        for name in set(environment) & silent:
            assert name in package_source(stage, app_package(command)), (process.name, name)


def package_source(stage: Stage, package: str) -> str:
    """Return the source of a stage's package, every module of it."""
    return "".join(path.read_text() for path in sorted((stage.path / package).rglob("*.py")))


@compose_files
def test_services_register_where_other_containers_reach_them(compose_file, tmp_path):
    """With a registry, each service registers its container's address, not 127.0.0.1."""
    stage = stage_of(compose_file)
    services = resolved(compose_file, tmp_path)["services"]
    for process in stage.processes():
        name = service_name(process.name)
        assert name in services, f"{compose_file.name} has no service {name} (Procfile)"
        environment = services[name]["environment"]
        wanted = credentials(stage, process).get("REGISTRY_URL")
        assert environment.get("REGISTRY_URL") == wanted, process.name
        wanted = address(process) if registers(stage, process) else None
        assert environment.get("ADVERTISE_URL") == wanted, process.name


@compose_files
def test_the_front_door_is_behind_nginx_the_only_published_port(compose_file, tmp_path):
    """Without a profile only nginx publishes a port; with --profile observability (03,
    04) the only others are the Jaeger and Prometheus UIs. All of them on 127.0.0.1."""
    services = resolved(compose_file, tmp_path)["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"nginx"}
    (port,) = services["nginx"]["ports"]
    assert port["host_ip"] == "127.0.0.1", port
    profiles = declared_profiles(compose_file)
    if stage_of(compose_file).name in ("03-services", "04-async"):
        assert profiles == (OBSERVABILITY,)
    assert set(profiles) <= {OBSERVABILITY}, profiles
    if profiles:
        observed = resolved(compose_file, tmp_path, profiles)["services"]
        assert set(observed) - set(services) == set(UIS)
        extra = {name: s["ports"] for name, s in observed.items()
                 if s.get("ports") and name != "nginx"}  # fmt: skip
        assert set(extra) == set(UIS), extra
        env = env_file(tmp_path).read_text()
        for name, (target, variable) in UIS.items():
            (ui,) = extra[name]
            assert ui["host_ip"] == "127.0.0.1", (name, ui)
            assert (ui["target"], ui["published"]) == (target, str(target)), (name, ui)
            assert re.search(rf"(?m)^{variable}={target}$", env), f"{variable} in .env.example"
            assert f"${{{variable}:-{target}}}" in compose_file.read_text(), variable
    front_door = service_name(stage_of(compose_file).processes()[0].name)
    servers = services["nginx"]["environment"]["UPSTREAM_SERVERS"]
    assert re.fullmatch(rf"server {front_door}:{CONTAINER_PORT} [^;]*;", servers), servers
    assert services["nginx"]["depends_on"][front_door]["condition"] == "service_healthy"


@compose_files
def test_every_service_is_watched_restarted_and_limited(compose_file, tmp_path):
    services = everything(compose_file, tmp_path)["services"]
    for name, service in services.items():
        health = service.get("healthcheck", {})
        assert health.get("test") and not health.get("disable"), f"{name}: no healthcheck"
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("memory") and limits.get("cpus"), f"{name}: no resource limits"
        for dependency in service.get("depends_on", {}).values():
            assert dependency["condition"] == "service_healthy", name


@compose_files
def test_databases_and_brokers_keep_data_in_named_volumes(compose_file, tmp_path):
    """Their data in named volumes; besides, only their start scripts, read-only."""
    described = resolved(compose_file, tmp_path)
    stores = {name: s for name, s in described["services"].items()
              if s["image"].startswith(("mongo:", "redis:"))}  # fmt: skip
    assert "mongo" in stores
    for name, service in stores.items():
        volumes = service.get("volumes", [])
        data = [v for v in volumes if v["target"].startswith("/data")]
        assert data and all(v["type"] == "volume" for v in data), name
        assert {v["source"] for v in data} <= set(described.get("volumes", {})), name
        for mount in volumes:
            if mount not in data:
                assert mount["type"] == "bind" and mount.get("read_only"), (name, mount)
                assert Path(mount["source"]).parent == DOCKER / "stores", (name, mount)


@compose_files
def test_each_process_has_its_own_database(compose_file, tmp_path):
    """The one its code names (project.DATABASES), as its own user: MONGO_URL names the
    database, the user and where the user is defined (authSource), all three the same."""
    services = resolved(compose_file, tmp_path)["services"]
    urls = {name: s["environment"]["MONGO_URL"] for name, s in services.items()
            if "MONGO_URL" in s.get("environment", {})}  # fmt: skip
    assert urls, "no service uses MongoDB"
    stage = stage_of(compose_file)
    wanted = {service_name(p.name): credentials(stage, p)["MONGO_URL"]
              for p in stage.processes() if "MONGO_URL" in credentials(stage, p)}  # fmt: skip
    assert urls == wanted
    assert len(set(urls.values())) == len(urls), "two processes share a database"


@compose_files
def test_a_gateway_stage_runs_two_gateways(compose_file, tmp_path):
    stage = stage_of(compose_file)
    front_door = stage.processes()[0]
    services = resolved(compose_file, tmp_path)["services"]
    replicas = services[service_name(front_door.name)].get("deploy", {}).get("replicas", 1)
    assert replicas >= (2 if front_door.package == "gateway" else 1)


def test_no_image_runs_as_root(tmp_path):
    for dockerfile in DOCKERFILES:
        users = re.findall(r"(?m)^USER\s+(\S+)", dockerfile.read_text())
        assert users, f"{dockerfile.name}: no USER"
        assert users[-1].split(":")[0] not in ("root", "0"), dockerfile.name
    for compose_file in COMPOSE_FILES:
        for name, service in everything(compose_file, tmp_path)["services"].items():
            user = str(service.get("user", "")).split(":")[0]
            assert user not in ("root", "0"), f"{compose_file.name}: {name} runs as root"
            if "build" in service:
                built = ROOT / service["build"]["dockerfile"]
                assert built in DOCKERFILES, f"{name} builds from {built}"
            else:
                # An image not built here (MongoDB, Redis, Jaeger, Prometheus): its own
                # non-root user is named here, so none runs as root unseen. (MongoDB's and
                # Redis's entrypoints would start as root to step down: with no capability
                # kept they could not, so they start as their user.)
                assert user.isdigit() and int(user) != 0, f"{name}: name its non-root user"


@compose_files
def test_every_image_not_built_here_is_pinned_by_tag_and_digest(compose_file, tmp_path):
    """An exact version for the reader, and the digest that version had when it was pinned
    (a tag can be pushed again)."""
    for name, service in everything(compose_file, tmp_path)["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]*\d[\w.-]*@sha256:[0-9a-f]{64}", image), (name, image)
        assert ":latest@" not in image, (name, image)


def test_the_image_installs_the_project_without_extras():
    text = (DOCKER / "app.Dockerfile").read_text()
    installs = re.findall(r"pip install[^\n]*", text)
    assert installs and all("[" not in line and "-e" not in line.split() for line in installs)
    (healthcheck,) = re.findall(r"(?ms)^HEALTHCHECK .*?[^\\]$", text)
    assert "urllib.request" in healthcheck and "/healthz" in healthcheck  # slim has no curl


def test_the_image_installs_every_program_a_procfile_runs():
    """The image installs the runtime lock: each Procfile's program must come from a dependency."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = {canonical(re.split(r"[\[<>=!~;\s]", line, maxsplit=1)[0])
                 for line in project["dependencies"]}  # fmt: skip
    for stage in all_stages():
        for process in stage.processes():
            program = procfile_view(process.command)[1][0]
            scripts = entry_points(group="console_scripts", name=program)
            assert scripts, f"{stage.name} {process.name}: no program {program!r} installed"
            owners = {canonical(script.dist.name) for script in scripts if script.dist}
            assert owners & installed, (
                f"{stage.name} {process.name} runs {program}, from {sorted(owners)}: "
                "not in pyproject.toml's dependencies, so not in the image"
            )


def canonical(distribution: str) -> str:
    """Return a distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_nginx_config_matches_the_contract():
    template = TEMPLATE.read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", template))
    assert placeholders == set(TEMPLATE_VARIABLES)
    dockerfile = (DOCKER / "nginx.Dockerfile").read_text()
    assert f'NGINX_ENVSUBST_FILTER="^({"|".join(TEMPLATE_VARIABLES)})$"' in dockerfile
    (limit,) = re.findall(r"client_max_body_size\s+(\d+)m;", template)
    assert int(limit) * 1024 * 1024 == config.MAX_INGEST_BYTES
    assert "proxy_next_upstream error timeout http_502 http_503;" in template
    directives = [line.split("#")[0] for line in template.splitlines()]
    assert not any("non_idempotent" in line for line in directives)  # no POST sent twice
    assert (NGINX_DIR / "50x.html").is_file()


def test_dockerignore_keeps_local_state_out_of_the_build():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    wanted = {".git", ".venv", ".workshop", "tests", "bench/results", ".env", "**/.env",
              "**/secret.env"}  # fmt: skip
    assert wanted <= ignored, wanted - ignored


@compose_files
def test_compose_files_parse_as_yaml_anchors_and_all(compose_file):
    raw = yaml.safe_load(compose_file.read_text())
    assert raw["name"] == f"workshop-{compose_file.stem}"


def checks_importers(stage, process) -> bool:
    """Tell whether a process answers ingest calls, and so checks who may (workshop.roles)."""
    if not serves_http(process):  # 04's Celery worker shares the ingest package
        return False
    folder = ROOT / stage.name / process.package
    return any("roles.check_may_ingest" in path.read_text() for path in folder.rglob("*.py"))


@compose_files
def test_the_processes_that_check_importers_get_them_from_the_env_file(compose_file, tmp_path):
    """WORKSHOP_IMPORTERS (docker/.env) reaches every process that decides who may ingest."""
    assert re.search(r"(?m)^WORKSHOP_IMPORTERS=$", (DOCKER / ".env.example").read_text())
    stage = stage_of(compose_file)
    env = env_file(tmp_path)
    env.write_text(
        re.sub(r"(?m)^WORKSHOP_IMPORTERS=$", "WORKSHOP_IMPORTERS=ada,bob", env.read_text())
    )
    answer = compose(compose_file, env, "config", "--format", "json")
    assert answer.returncode == 0, answer.stderr
    services = json.loads(answer.stdout)["services"]
    checking = [p for p in stage.processes() if p.package and checks_importers(stage, p)]
    assert checking, f"no process of {stage.name} runs ingest"
    for process in checking:
        environment = services[service_name(process.name)]["environment"]
        assert environment.get("WORKSHOP_IMPORTERS") == "ada,bob", process.name
        assert environment["WORKSHOP_ENV"] == "production", process.name  # nobody, unless named


@compose_files
def test_the_front_door_trusts_nginx_for_the_client_address(compose_file, tmp_path):
    """Login limits count per client: behind nginx, the client is in X-Forwarded-For."""
    services = resolved(compose_file, tmp_path)["services"]
    front_door = service_name(stage_of(compose_file).processes()[0].name)
    assert services[front_door]["environment"].get("WORKSHOP_PROXY_HOPS") == "1"
    others = {name for name, s in services.items()
              if "WORKSHOP_PROXY_HOPS" in s.get("environment", {})}  # fmt: skip
    assert others == {front_door}, "only the front door is behind nginx"


@compose_files
def test_the_gateway_waits_for_every_service_it_calls(compose_file, tmp_path):
    """Compose starts the gateway once every service the Procfile lists answers its
    healthcheck: a service added to the Procfile is added to the gateway's depends_on."""
    stage = stage_of(compose_file)
    upstreams = procfile.services(stage.procfile)
    if not upstreams:
        pytest.skip(f"{stage.name}'s front door calls no services")
    gateway = resolved(compose_file, tmp_path)["services"][service_name(procfile.FRONT_DOOR)]
    waits = gateway.get("depends_on", {})
    missing = [name for name in upstreams if name not in waits]
    assert not missing, f"{compose_file.name}: the gateway does not wait for {missing}"
    assert all(waits[name]["condition"] == "service_healthy" for name in upstreams)
