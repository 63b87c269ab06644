"""The Kubernetes manifests of stage 04 (docker/k8s/), without a cluster: each resource
validated against Kubernetes' own schemas (kubernetes-validate, strict: a misspelled field
fails), the kustomization rendered where kustomize is on hand, and the Deployments held to
the stage's Procfile and to its compose file (the same processes, commands and settings)."""

import shutil
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.containers.project import (
    CONTAINER_PORT,
    DOCKER,
    ROOT,
    addresses,
    database_of,
    procfile_view,
    registers,
    resolved,
    serves_http,
    service_name,
    upstream_parameters,
    workshop_up_names,
)
from workshop import config
from workshop.tools.stages import get_stage

K8S = DOCKER / "k8s"
STAGE = get_stage("04-async")
# What long-support managed clusters still run, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
CONFIG_MAP = "workshop-config"
SECRET = "workshop-secret"
SECRET_FILE = "secret.env"  # kustomization.yaml's secretGenerator reads it; never committed
# The containers' users: the app's (app.Dockerfile), nginx's, MongoDB's and Redis's own.
UNPRIVILEGED = {10001, 101, 999}


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def resources() -> list[dict[str, Any]]:
    """Return every resource the kustomization lists, from its files as they are."""
    found = []
    for name in kustomization()["resources"]:
        found += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    return found


def of_kind(kind: str, everything: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return the resources of one kind by name."""
    everything = resources() if everything is None else everything
    return {r["metadata"]["name"]: r for r in everything if r["kind"] == kind}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def only_container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(workload)["containers"]
    return container


def plain_env(container: dict[str, Any]) -> dict[str, str]:
    """Return a container's own `env` entries that have a value."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def kustomize_command() -> list[str] | None:
    """Return a kustomize renderer on this machine (kustomize, or kubectl's own), or None."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def validate(resource: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(resource, version, strict=True)


# --- valid Kubernetes, file by file and rendered --------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", kustomization()["resources"])
def test_each_resource_is_valid_kubernetes(name, version):
    documents = [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    assert documents, name
    for resource in documents:
        validate(resource, version)  # raises on an unknown kind, field or type


@pytest.mark.parametrize(
    ("broken", "complaint"),
    [
        (lambda c: c.__setitem__("readinesProbe", c.pop("readinessProbe")), "readinesProbe"),
        (lambda c: c["resources"]["limits"].__setitem__("memory", ["256Mi"]), "256Mi"),
        (lambda c: c["ports"][0].__setitem__("containerPort", "http"), "http"),
    ],
    ids=["misspelled-field", "wrong-type", "port-as-name"],
)
def test_the_validator_catches_a_broken_deployment(broken, complaint):
    deployment = of_kind("Deployment")["search"]
    broken(only_container(deployment))
    with pytest.raises(kubernetes_validate.ValidationError) as caught:
        validate(deployment, KUBERNETES_VERSIONS[0])
    assert complaint in str(caught.value)


def test_the_kustomization_lists_every_manifest_and_nothing_else():
    listed = kustomization()["resources"]
    assert len(listed) == len(set(listed))
    missing = [name for name in listed if not (K8S / name).is_file()]
    assert not missing, f"kustomization.yaml lists files that do not exist: {missing}"
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == manifests, f"not listed: {sorted(manifests - set(listed))}"
    assert kustomization()["namespace"] == of_kind("Namespace").popitem()[0]


def test_the_secret_comes_from_a_file_that_is_never_committed():
    (generator,) = kustomization()["secretGenerator"]
    assert generator["name"] == SECRET and generator["envs"] == [SECRET_FILE]
    path = (K8S / SECRET_FILE).relative_to(ROOT)
    ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT)
    assert ignored.returncode == 0, f"{path} is not git-ignored"
    assert f"**/{SECRET_FILE}" in (ROOT / ".dockerignore").read_text().split()
    assert not of_kind("Secret"), "a Secret in a manifest would be committed"
    for resource in resources():
        assert "SECRET_KEY" not in yaml.safe_dump(resource), resource["metadata"]["name"]


def test_kustomize_renders_valid_kubernetes(tmp_path):
    command = kustomize_command()
    if command is None:
        pytest.skip("no kustomize here (kustomize, or kubectl's `kubectl kustomize`)")
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    (copy / SECRET_FILE).write_text("SECRET_KEY=a-test-secret\n")
    answer = subprocess.run([*command, str(copy)], capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0, answer.stderr
    rendered = [doc for doc in yaml.safe_load_all(answer.stdout) if doc]
    for resource in rendered:
        for version in KUBERNETES_VERSIONS:
            validate(resource, version)
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == kustomization()["namespace"]
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "workshop"
    (secret,) = of_kind("Secret", rendered).values()
    assert secret["metadata"]["name"].startswith(f"{SECRET}-")  # a hash of its content
    assert set(secret["data"]) == {"SECRET_KEY"}
    for name, workload in of_kind("Deployment", rendered).items():
        if name == "nginx":
            continue
        sources = only_container(workload)["envFrom"]
        assert {"secretRef": {"name": secret["metadata"]["name"]}} in sources, name
    # Without the secret file there is nothing to apply: kustomize says which file.
    (copy / SECRET_FILE).unlink()
    answer = subprocess.run([*command, str(copy)], capture_output=True, text=True, timeout=120)
    assert answer.returncode != 0 and SECRET_FILE in answer.stderr


# --- the same processes as the Procfile, the same settings as compose ------------------------


def test_a_deployment_per_procfile_process_plus_nginx():
    wanted = {service_name(p.name) for p in STAGE.processes()} | {"nginx"}
    assert set(of_kind("Deployment")) == wanted


def test_the_deployments_run_the_procfile():
    deployments = of_kind("Deployment")
    for process in STAGE.processes():
        container = only_container(deployments[service_name(process.name)])
        settings, command = procfile_view(process.command)
        assert container["command"] == command, process.name
        env = plain_env(container)
        for name, value in settings.items():
            assert env[name] == value, (process.name, name)
        sources = container["envFrom"]
        assert {"configMapRef": {"name": CONFIG_MAP}} in sources, process.name
        assert {"secretRef": {"name": SECRET}} in sources, process.name
        database = database_of(STAGE, process)
        if process.package == "gateway" or database is None:  # the gateway and beat hold none
            assert "MONGO_URL" not in env, process.name
        else:
            assert env["MONGO_URL"] == f"mongodb://mongo:27017/{database}", process.name


def test_the_config_map_holds_what_workshop_up_gives_and_compose_sets(tmp_path):
    (config_map,) = of_kind("ConfigMap").values()
    data = config_map["data"]
    assert workshop_up_names(STAGE) - {"SECRET_KEY"} <= set(data)
    for name, url in addresses(STAGE).items():
        assert data[name] == url


def test_each_container_gets_the_settings_compose_gives_its_service(tmp_path):
    """ConfigMap + a container's own env == its compose service's environment (but the
    secret, and the address a pod registers under, which only Kubernetes knows)."""
    data = of_kind("ConfigMap")[CONFIG_MAP]["data"]
    deployments = of_kind("Deployment")
    services = resolved(DOCKER / "04-async.yaml", tmp_path)["services"]
    for process in STAGE.processes():
        name = service_name(process.name)
        container = only_container(deployments[name])
        own = {e["name"]: e for e in container.get("env", [])}
        given = {**data, **plain_env(container)}
        from_secret = {n for n, e in own.items() if "secretKeyRef" in e.get("valueFrom", {})}
        expected = dict(services[name]["environment"])
        for only_compose in ("SECRET_KEY", "ADVERTISE_URL", *from_secret):
            expected.pop(only_compose, None)
            given.pop(only_compose, None)
        given.pop("ADVERTISE_URL", None)
        assert given == expected, f"{name}: the manifests and docker/04-async.yaml differ"
        for name_in_secret in from_secret:  # optional: unset, as compose's ${VAR:-}
            reference = own[name_in_secret]["valueFrom"]["secretKeyRef"]
            assert reference == {"name": SECRET, "key": name_in_secret, "optional": True}
            assert name_in_secret in services[name]["environment"]


def test_each_service_registers_its_pod_address():
    deployments = of_kind("Deployment")
    for process in STAGE.processes():
        container = only_container(deployments[service_name(process.name)])
        env = {e["name"]: e for e in container.get("env", [])}
        if not registers(STAGE, process):
            assert "ADVERTISE_URL" not in env, process.name
            continue
        assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        names = [e["name"] for e in container["env"]]
        assert names.index("POD_IP") < names.index("ADVERTISE_URL")  # $(POD_IP) is expanded
        assert env["ADVERTISE_URL"]["value"] == f"http://$(POD_IP):{CONTAINER_PORT}"


def test_http_processes_have_a_service_and_probes_and_the_worker_a_ping():
    deployments, services = of_kind("Deployment"), of_kind("Service")
    front_door = STAGE.processes()[0]
    for process in STAGE.processes():
        name = service_name(process.name)
        container = only_container(deployments[name])
        if not serves_http(process):  # Celery's worker and beat: nothing to route to
            assert name not in services
            assert "readinessProbe" not in container
            line = container["livenessProbe"]["exec"]["command"]
            assert line[:2] == ["sh", "-c"] and "inspect ping" in line[2]
            # Its own node, not any worker's: beat answers as celerybeat@host.
            node = "celerybeat" if "beat" in procfile_view(process.command)[1] else "celery"
            assert f"--destination {node}@$HOSTNAME" in line[2], name
            continue
        (port,) = services[name]["spec"]["ports"]
        assert (port["port"], port["targetPort"]) == (int(CONTAINER_PORT), "http")
        assert services[name]["spec"]["selector"] == {"app.kubernetes.io/name": name}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        # Services are ready when they answer right (/readyz: store, broker, bootstrap). The
        # gateway's /readyz asks every service: as its readiness, one service down would
        # take the whole site out instead of the one part that degrades (web.yaml).
        wanted = "/healthz" if process == front_door else "/readyz"
        assert container["readinessProbe"]["httpGet"]["path"] == wanted, name


def test_one_beat_even_while_it_is_replaced():
    """Two Celery beats would send every scheduled task twice: one replica, and a new pod
    only once the old one is gone (Recreate, not a rolling update)."""
    beat = of_kind("Deployment")["beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}


def test_two_gateways_behind_nginx():
    deployments = of_kind("Deployment")
    front_door = service_name(STAGE.processes()[0].name)
    assert deployments[front_door]["spec"]["replicas"] >= 2
    (budget,) = of_kind("PodDisruptionBudget").values()
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": front_door}
    nginx = only_container(deployments["nginx"])
    servers = plain_env(nginx)["UPSTREAM_SERVERS"]
    # compose's parameters, without `resolve`: the Service is one fixed cluster address.
    assert servers == f"server {front_door}:{CONTAINER_PORT} {' '.join(upstream_parameters())};"
    assert of_kind("Service")["nginx"]["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_every_container_is_limited_and_unprivileged():
    workloads = {**of_kind("Deployment"), **of_kind("StatefulSet")}
    for name, workload in workloads.items():
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] in UNPRIVILEGED, name
        assert spec.get("enableServiceLinks") is False, name
        for container in spec["containers"]:
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), (name, kind)
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], name
            assert "livenessProbe" in container, name


def test_mongodb_and_redis_keep_their_data_on_volumes():
    statefulsets = of_kind("StatefulSet")
    assert set(statefulsets) == {"mongo", "redis"}
    services = of_kind("Service")
    for name, statefulset in statefulsets.items():
        (claim,) = statefulset["spec"]["volumeClaimTemplates"]
        (mount,) = only_container(statefulset)["volumeMounts"]
        assert mount["name"] == claim["metadata"]["name"], name
        assert statefulset["spec"]["serviceName"] == name and name in services
    # The same images as compose, pinned the same way.
    compose = yaml.safe_load((DOCKER / "04-async.yaml").read_text())["services"]
    for name, statefulset in statefulsets.items():
        assert only_container(statefulset)["image"] == compose[name]["image"], name
        assert only_container(statefulset)["args"] == compose[name]["command"], name


def test_nginx_takes_the_largest_body_the_contract_takes():
    template = (DOCKER / "nginx" / "templates" / "default.conf.template").read_text()
    assert f"client_max_body_size {config.MAX_INGEST_BYTES // (1024 * 1024)}m;" in template
    volumes = {v["name"]: v for v in pod_spec(of_kind("Deployment")["nginx"])["volumes"]}
    buffer = volumes["tmp"]["emptyDir"]["sizeLimit"]  # request bodies are buffered in /tmp
    assert int(buffer.removesuffix("Mi")) * 1024 * 1024 > config.MAX_INGEST_BYTES


def test_the_deployments_run_the_images_compose_builds():
    compose = yaml.safe_load((DOCKER / "04-async.yaml").read_text())["services"]
    for name, deployment in of_kind("Deployment").items():
        container = only_container(deployment)
        assert container["image"] == compose[name]["image"], name
        # Built locally (or loaded into the cluster): never pulled when it is there.
        assert container["imagePullPolicy"] == "IfNotPresent", name
