"""docker/prometheus/<stage>.yml: Prometheus (--profile observability, stages 03 and 04),
one config per stage, each mounted by its stage's compose file, scrapes exactly that stage's
compose services that serve /metrics, in their containers, on the port they serve it on.
Which processes serve /metrics is read from the code each one runs, so a new service that
is not scraped (or a scraped one that is gone, such as 04's Celery worker on 03, whose name
no DNS answers) fails here.

No Prometheus here (promtool), and check-jsonschema has no builtin schema for its config:
the file is read as YAML and held to the few keys it uses.
"""

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.containers.project import (
    COMPOSE_FILES,
    DOCKER,
    everything,
    procfile_view,
    service_name,
    stage_of,
)
from tooling.stages import Process, Stage

CONFIGS = DOCKER / "prometheus"
MOUNTED_AT = "/etc/prometheus/prometheus.yml"
# What the file may say, and no more: a misspelled key would be ignored by nobody here.
GLOBAL_KEYS = {"scrape_interval", "scrape_timeout", "evaluation_interval"}
JOB_KEYS = {"job_name", "metrics_path", "scheme", "dns_sd_configs", "static_configs"}
DNS_KEYS = {"names", "type", "port", "refresh_interval"}
# The module a command runs: gateway:create_app() -> gateway, `-A ingest.tasks` -> ingest.tasks.
TARGET = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_][\w()]*)?"
# 04's Celery worker serves its own /healthz and /metrics once it is ready (ingest/tasks.py).
WORKER_SERVES = re.compile(
    r"@signals\.worker_ready\.connect\ndef \w+\([^)]*\)[^:]*:\n(    .*\n)*?    serve_http\(\)"
)


def module_source(stage: Stage, command: list[str]) -> str:
    """Return the source of the module a command runs (its package's __init__, or the
    module Celery's -A names)."""
    if "-A" in command:
        target = command[command.index("-A") + 1]
    else:
        (target,) = [w for w in command if re.fullmatch(TARGET, w) and ":" in w]
    dotted = target.split(":")[0]
    base = stage.path / Path(*dotted.split("."))
    path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    return path.read_text()


def serves_metrics(stage: Stage, process: Process) -> bool:
    """Tell whether a process serves /metrics: its app hooks the chassis's metrics in (the
    gateway), or is made by the chassis's create_service, which does; or it is a Celery
    worker whose module serves them when the worker is ready."""
    command = procfile_view(process.command)[1]
    source = module_source(stage, command)
    chassis = (stage.path / "chassis" / "service.py").read_text()
    if re.search(r"\bmetrics\.init_(flask|quart)\(", source):
        return True
    if "from chassis.service import create_service" in source:
        return bool(re.search(r"\bmetrics\.init_(flask|quart)\(", chassis))
    return command[0] == "celery" and "worker" in command and bool(WORKER_SERVES.search(source))


def config_path(compose_file: Path) -> Path:
    """Return the scrape config of a compose file's stage: docker/prometheus/03-services.yml."""
    return CONFIGS / f"{compose_file.stem}.yml"


def config(compose_file: Path) -> dict[str, Any]:
    return yaml.safe_load(config_path(compose_file).read_text())


def targets(described: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Return each scrape job's (host name, port), checking the job's shape."""
    assert set(described) <= {"global", "scrape_configs"}, set(described)
    assert set(described.get("global", {})) <= GLOBAL_KEYS
    found = {}
    for job in described["scrape_configs"]:
        assert set(job) <= JOB_KEYS, set(job) - JOB_KEYS
        assert job.get("metrics_path", "/metrics") == "/metrics", job["job_name"]
        assert job.get("scheme", "http") == "http", job["job_name"]
        assert job["job_name"] not in found, f"two jobs named {job['job_name']}"
        assert "static_configs" not in job, "by DNS: a service's replicas are each a target"
        (dns,) = job["dns_sd_configs"]
        assert set(dns) <= DNS_KEYS and dns["type"] == "A", dns
        (name,) = dns["names"]
        found[job["job_name"]] = (name, dns["port"])
    return found


def metrics_services(compose_file: Path, folder: Path) -> dict[str, int]:
    """Return the compose services that serve /metrics, with the container port they serve
    it on (their PORT), checking each listens beyond its container's loopback."""
    stage = stage_of(compose_file)
    services = everything(compose_file, folder)["services"]
    found = {}
    for process in stage.processes():
        if not serves_metrics(stage, process):
            continue
        name = service_name(process.name)
        assert name in services, f"{compose_file.name} has no service {name} (Procfile)"
        environment = services[name]["environment"]
        command = services[name]["command"]
        listens = " ".join(command)
        if "--bind" in command or "--host" in command:  # the app's own server
            assert "0.0.0.0" in listens, f"{name} listens on its loopback only"
        else:  # prometheus_client's, where WORKSHOP_METRICS_HOST says
            assert environment.get("WORKSHOP_METRICS_HOST") == "0.0.0.0", name
        found[name] = int(environment["PORT"])
    return found


def mismatch(found: dict[str, tuple[str, int]], wanted: dict[str, int]) -> list[str]:
    """Return what is wrong with the scrape jobs against the services serving /metrics."""
    complaints = []
    scraped = {name: port for name, port in found.values()}
    for name, port in sorted(wanted.items()):
        if name not in scraped:
            complaints.append(f"{name} serves /metrics and is not scraped")
        elif scraped[name] != port:
            complaints.append(f"{name} is scraped on {scraped[name]}, serves on {port}")
    complaints += [f"{name} is scraped and serves no /metrics" for name in scraped
                   if name not in wanted]  # fmt: skip
    complaints += [f"job {job} scrapes {name}" for job, (name, _) in found.items() if job != name]
    return complaints


# The compose files that run Prometheus (--profile observability).
SCRAPING = [f for f in COMPOSE_FILES if "prometheus:" in f.read_text()]
BY_STAGE = pytest.mark.parametrize("compose_file", SCRAPING, ids=lambda p: p.stem)


def by_stem(stem: str) -> Path:
    (compose_file,) = [f for f in SCRAPING if f.stem == stem]
    return compose_file


def test_the_stages_with_services_scrape_them():
    assert {stage_of(f).name for f in SCRAPING} == {"03-services", "04-async"}


def test_each_stage_has_its_own_config_and_no_other_is_left():
    assert sorted(CONFIGS.iterdir()) == sorted(config_path(f) for f in SCRAPING)


@BY_STAGE
def test_prometheus_scrapes_exactly_the_stage_services_that_serve_metrics(compose_file, tmp_path):
    wanted = metrics_services(compose_file, tmp_path)
    assert "web" in wanted  # the gateway
    assert "beat" not in wanted and "nginx" not in wanted
    assert mismatch(targets(config(compose_file)), wanted) == []


def test_the_worker_is_scraped_where_it_runs_and_only_there(tmp_path):
    """04's Celery worker serves /metrics; 03 has no worker container, and a job for it
    would fail its DNS lookup on every refresh."""
    assert "worker" in metrics_services(by_stem("04-async"), tmp_path)
    assert "worker" not in everything(by_stem("03-services"), tmp_path)["services"]
    assert "worker" not in targets(config(by_stem("03-services")))


@BY_STAGE
def test_a_service_left_unscraped_is_caught(compose_file, tmp_path):
    wanted = metrics_services(compose_file, tmp_path)
    for name in wanted:
        described = config(compose_file)
        described["scrape_configs"] = [j for j in described["scrape_configs"]
                                       if j["job_name"] != name]  # fmt: skip
        assert mismatch(targets(described), wanted) == [
            f"{name} serves /metrics and is not scraped"
        ]
    wanted_more = {**wanted, "beat": 8000}
    assert "beat serves /metrics and is not scraped" in mismatch(
        targets(config(compose_file)), wanted_more
    )


def test_a_job_for_another_stage_service_is_caught(tmp_path):
    """04's config on 03 scrapes a worker 03 does not run (and, with a service added to 03
    in class, misses that one)."""
    wanted = metrics_services(by_stem("03-services"), tmp_path)
    found = targets(config(by_stem("04-async")))
    assert "worker is scraped and serves no /metrics" in mismatch(found, wanted)


def test_the_code_decides_who_serves_metrics():
    """The worker serves them, beat (the same module) does not; so do all HTTP processes."""
    stage = stage_of(by_stem("04-async"))
    serving = {p.name for p in stage.processes() if serves_metrics(stage, p)}
    assert serving == {p.name for p in stage.processes()} - {"beat"}


@BY_STAGE
def test_prometheus_reads_its_stage_config_read_only_and_keeps_its_data_in_a_volume(
    compose_file, tmp_path
):
    described = everything(compose_file, tmp_path)
    service = described["services"]["prometheus"]
    mounts = {v["target"]: v for v in service["volumes"]}
    config_mount = mounts[MOUNTED_AT]
    assert config_mount["type"] == "bind" and config_mount["read_only"] is True
    assert Path(config_mount["source"]) == config_path(compose_file)
    assert f"--config.file={MOUNTED_AT}" in service["command"]
    (path,) = [
        w.split("=", 1)[1] for w in service["command"] if w.startswith("--storage.tsdb.path=")
    ]
    assert mounts[path]["type"] == "volume" and mounts[path]["source"] in described["volumes"]
    assert "--storage.tsdb.retention.time=2d" in service["command"]
    health = shlex.join(service["healthcheck"]["test"])
    assert "http://127.0.0.1:9090/-/healthy" in health
    assert described["services"]["jaeger"]["profiles"] == ["observability"]
    assert service["profiles"] == ["observability"]
