"""The Kubernetes manifests of stage 04 (docker/k8s/), without a cluster: each resource
validated against Kubernetes' own schemas (kubernetes-validate, strict: a misspelled field
fails), the kustomization rendered where kustomize is on hand, and the Deployments held to
the stage's Procfile and to its compose file (the same processes, commands and settings)."""

import re
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
    credentials,
    password_names,
    procfile_view,
    registers,
    resolved,
    serves_http,
    service_name,
    static_password,
    upstream_parameters,
    variable,
    workshop_up_names,
)
from tests.timing import scaled
from tooling.stages import get_stage
from workshop import config

K8S = DOCKER / "k8s"
STAGE = get_stage("04-async")
# What long-support managed clusters still run, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
CONFIG_MAP = "workshop-config"
SECRET = "workshop-secret"
SECRET_FILE = "secret.env"  # kustomization.yaml's secretGenerator reads it; never committed
STORE_SCRIPTS = "store-scripts"  # the ConfigMap of MongoDB's and Redis's scripts (stores/)
# The variables that carry a store's password, built per Deployment from the Secret.
STORE_URLS = {"MONGO_URL", "BROKER_URL", "REGISTRY_URL", "CELERY_RESULT_BACKEND"}
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


def workloads() -> dict[str, Any]:
    """Return the Deployments and StatefulSets by name."""
    return {**of_kind("Deployment"), **of_kind("StatefulSet")}


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


def expand(value: str, values: dict[str, str]) -> str:
    """Expand $(NAME) as Kubernetes does in a container's env, from the values given."""
    return re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)), value)


def placeholders(urls: dict[str, str]) -> dict[str, str]:
    """Return store URLs with each password as the $(NAME) a manifest builds it from."""
    found = {}
    for name, url in urls.items():
        found[name] = re.sub(
            r"//([^:]+):pw-([a-z0-9-]+)@",
            lambda m: f"//{m.group(1)}:$({m.group(2).upper().replace('-', '_')})@",
            url,
        )
    return found


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
    # Every secret a pod gets comes from the Secret by name, never as a value written here.
    secret_names = {"SECRET_KEY", *password_names()}
    for resource in resources():
        assert not secret_names & set(resource.get("data", {})), resource["metadata"]["name"]
    for name, workload in workloads().items():
        for container in pod_spec(workload)["containers"]:
            for entry in container.get("env", []):
                if entry["name"] in secret_names or "PASSWORD" in entry["name"]:
                    reference = entry["valueFrom"]["secretKeyRef"]
                    assert reference["name"] == SECRET, (name, entry["name"])
                else:
                    assert "value" in entry or "valueFrom" in entry, (name, entry)


def test_kustomize_renders_valid_kubernetes(tmp_path):
    command = kustomize_command()
    if command is None:
        pytest.skip("no kustomize here (kustomize, or kubectl's `kubectl kustomize`)")
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    keys = ["SECRET_KEY", *password_names()]
    (copy / SECRET_FILE).write_text("".join(f"{key}=a-test-{key.lower()}\n" for key in keys))
    answer = subprocess.run(
        [*command, str(copy)], capture_output=True, text=True, timeout=scaled(120)
    )
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
    assert set(secret["data"]) == set(keys)
    hashed = secret["metadata"]["name"]
    (scripts,) = of_kind("ConfigMap", rendered).keys() - {CONFIG_MAP}
    assert scripts.startswith(f"{STORE_SCRIPTS}-")  # a hash of the scripts
    for name, workload in {**of_kind("Deployment", rendered),
                           **of_kind("StatefulSet", rendered)}.items():  # fmt: skip
        spec = pod_spec(workload)
        for container in spec["containers"]:
            for entry in container.get("env", []):  # each secret from the hashed Secret
                reference = entry.get("valueFrom", {}).get("secretKeyRef")
                assert reference is None or reference["name"] == hashed, (name, entry)
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, name  # never the whole Secret
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] == scripts, name
    # Without the secret file there is nothing to apply: kustomize says which file.
    (copy / SECRET_FILE).unlink()
    answer = subprocess.run(
        [*command, str(copy)], capture_output=True, text=True, timeout=scaled(120)
    )
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
        assert container["envFrom"] == [{"configMapRef": {"name": CONFIG_MAP}}], process.name
        secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
                   if "secretKeyRef" in e.get("valueFrom", {})}  # fmt: skip
        assert secrets["SECRET_KEY"] == {"name": SECRET, "key": "SECRET_KEY"}, process.name
        # Its store URLs, each from its own users' passwords: what compose gives it.
        urls = {name: url for name, url in env.items() if name in STORE_URLS}
        assert urls == placeholders(credentials(STAGE, process)), process.name
        for name, reference in secrets.items():
            if name != "WORKSHOP_IMPORTERS":  # optional: see the next test
                assert reference == {"name": SECRET, "key": name}, (process.name, name)
        assert set(secrets) - {"SECRET_KEY", "WORKSHOP_IMPORTERS"} == {
            name for url in urls.values() for name in re.findall(r"\$\((\w+)\)", url)
        }, f"{process.name} gets a password it does not use"
        names = [e["name"] for e in container["env"]]
        for url_name, url in urls.items():  # $(NAME) is expanded from the entries before
            for name in re.findall(r"\$\((\w+)\)", url):
                assert names.index(name) < names.index(url_name), (process.name, name)


def test_the_config_map_holds_what_workshop_up_gives_and_compose_sets(tmp_path):
    data = of_kind("ConfigMap")[CONFIG_MAP]["data"]
    assert not STORE_URLS & set(data), "a store's URL carries a password: not in a ConfigMap"
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
        from_secret = {n for n, e in own.items() if "secretKeyRef" in e.get("valueFrom", {})}
        # What Kubernetes makes of $(NAME): the Secret's value, here the static checks' own.
        values = {n: static_password(n) for n in from_secret if "PASSWORD" in n}
        given = {**data, **{n: expand(v, values) for n, v in plain_env(container).items()}}
        expected = dict(services[name]["environment"])
        for only_compose in ("SECRET_KEY", "ADVERTISE_URL", *from_secret):
            expected.pop(only_compose, None)
            given.pop(only_compose, None)
        given.pop("ADVERTISE_URL", None)
        assert given == expected, f"{name}: the manifests and docker/04-async.yaml differ"
        for name_in_secret in from_secret - set(values) - {"SECRET_KEY"}:
            # optional: unset, as compose's ${VAR:-}
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
            # Ingest asks the worker's /healthz through its Service (WORKER_URL); beat none.
            assert (name in services) == (name in asked_by_url()), name
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
    for name, workload in workloads().items():
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] in UNPRIVILEGED, name
        assert spec.get("enableServiceLinks") is False, name
        for container in spec["containers"]:
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), (name, kind)
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name  # none added back
            # A read-only root: what it writes goes to its volumes (/tmp an emptyDir).
            assert context["readOnlyRootFilesystem"] is True, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], name
            assert "livenessProbe" in container, name


def test_mongodb_and_redis_keep_their_data_on_volumes():
    statefulsets = of_kind("StatefulSet")
    assert set(statefulsets) == {"mongo", "redis"}
    services = of_kind("Service")
    for name, statefulset in statefulsets.items():
        (claim,) = statefulset["spec"]["volumeClaimTemplates"]
        mounts = only_container(statefulset)["volumeMounts"]
        (data,) = [m for m in mounts if m["mountPath"].startswith("/data")]
        assert data["name"] == claim["metadata"]["name"], name
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


# --- who may reach whom, and what the stores' users are -------------------------------------


OUTSIDE = "outside"  # anything not a pod of the stage: a client, the internet
DNS = "dns"  # the cluster's DNS (kube-dns in kube-system)
PRIVATE = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}


def policies() -> list[dict[str, Any]]:
    return list(of_kind("NetworkPolicy").values())


def pod_labels() -> dict[str, dict[str, str]]:
    """Return each workload's pod labels."""
    return {name: w["spec"]["template"]["metadata"]["labels"] for name, w in workloads().items()}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Tell whether a label selector picks labels (matchLabels only: the manifests use no
    other kind, and this reading would not be sure of one)."""
    assert set(selector) <= {"matchLabels"}, selector
    return selector.get("matchLabels", {}).items() <= labels.items()


def peer_matches(peer: dict[str, Any], other: str, labels: dict[str, dict[str, str]]) -> bool:
    """Tell whether a rule's peer (from/to) is `other`: a pod of the stage, OUTSIDE or DNS."""
    if "ipBlock" in peer:  # an address block: outside the cluster's private ranges
        block = peer["ipBlock"]
        cidr, kept_out = block["cidr"], set(block.get("except", []))
        return other == OUTSIDE and cidr == "0.0.0.0/0" and kept_out >= PRIVATE
    if "namespaceSelector" in peer:  # another namespace: only the DNS is allowed
        dns = {"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"}
        wanted = (peer["namespaceSelector"]["matchLabels"], peer["podSelector"]["matchLabels"])
        return other == DNS and wanted == dns
    return other in labels and selects(peer["podSelector"], labels[other])


def rule_allows(rule: dict[str, Any], peers: str, other: str, port: int, protocol: str,
                labels: dict[str, dict[str, str]]) -> bool:  # fmt: skip
    ports = rule.get("ports")
    if ports is not None and not any(
        p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports
    ):
        return False
    if peers not in rule:  # no from/to: any peer
        return True
    return any(peer_matches(peer, other, labels) for peer in rule[peers])


def allowed(
    source: str,
    target: str,
    port: int,
    protocol: str = "TCP",
    labels: dict[str, dict[str, str]] | None = None,
    found: list[dict[str, Any]] | None = None,
    ends: tuple[str, ...] = ("Egress", "Ingress"),
) -> bool:
    """Tell whether the policies let `source` open a connection to `target` on a port: an
    egress rule of a policy picking the source (unless it is OUTSIDE) and an ingress rule of
    one picking the target (unless it is OUTSIDE or DNS). A pod no policy picks for a
    direction would be open that way: the default deny picks every pod. (labels, found:
    the pods' labels and the policies, when already read; ends: one alone, to ask what
    that end lets through whatever the other does.)"""
    labels = pod_labels() if labels is None else labels
    found = policies() if found is None else found

    def side(pod: str, direction: str, other: str) -> bool:
        picking = [p for p in found if direction in p["spec"]["policyTypes"]
                   and selects(p["spec"]["podSelector"], labels[pod])]  # fmt: skip
        if not picking:
            return True
        key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        return any(rule_allows(rule, peers, other, port, protocol, labels)
                   for policy in picking for rule in policy["spec"].get(key, []))  # fmt: skip

    leaves = source == OUTSIDE or "Egress" not in ends or side(source, "Egress", target)
    arrives = target in (OUTSIDE, DNS) or "Ingress" not in ends or side(target, "Ingress", source)
    return leaves and arrives


def asked_by_url() -> set[str]:
    """Return the Deployments a pod's own http:// URL names (ingest's WORKER_URL)."""
    deployments = of_kind("Deployment")
    urls = [str(value) for workload in deployments.values()
            for value in plain_env(only_container(workload)).values()]  # fmt: skip
    hosts = {host.group(1) for url in urls if (host := re.fullmatch(r"http://([\w-]+):\d+", url))}
    return hosts & set(deployments)


def needed_edges() -> set[tuple[str, str, int]]:
    """Return the connections the stage makes, from what each pod is given: anyone to
    nginx, nginx to the gateways, the gateways to each service they call, each pod to
    the stores and the processes its URLs name, and the process that fetches from reddit
    to the internet."""
    front_door = service_name(STAGE.processes()[0].name)
    edges = {(OUTSIDE, "nginx", 8080), ("nginx", front_door, 8000)}
    edges |= {(front_door, url.split("//")[1].split(":")[0], 8000)
              for url in addresses(STAGE).values()}  # fmt: skip
    for name, workload in of_kind("Deployment").items():
        for value in plain_env(only_container(workload)).values():
            host = re.match(r"(mongodb|redis)://[^@/]*@([\w-]+):(\d+)/", str(value))
            if host:
                edges.add((name, host.group(2), int(host.group(3))))
            called = re.fullmatch(r"http://([\w-]+):(\d+)", str(value))
            if called and called.group(1) in asked_by_url():
                edges.add((name, called.group(1), int(called.group(2))))
    edges.add(("worker", OUTSIDE, 443))  # reddit: the worker does the fetching (04)
    return edges


def test_every_pod_is_cut_off_but_for_what_a_policy_allows():
    (deny,) = [p for p in policies() if p["metadata"]["name"] == "default-deny"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_the_network_policies_allow_each_edge_the_stage_uses_and_no_other():
    labels, found = pod_labels(), policies()
    pods = set(labels)
    ports = {8000, 8080, 27017, 6379, 443}
    possible = {(s, t, p) for s in pods | {OUTSIDE} for t in pods | {OUTSIDE} for p in ports
                if s != t}  # fmt: skip
    open_edges = {e for e in possible if allowed(*e, labels=labels, found=found)}
    assert open_edges == needed_edges()
    # Each end on its own lets through no more (a loose rule at one end is a hole the
    # other end alone covers): but nginx, the way in, takes anyone on 8080.
    for end, at in (("Egress", 0), ("Ingress", 1)):  # the edges leaving, arriving at a pod
        mine = {e for e in possible if e[at] != OUTSIDE}
        alone = {e for e in mine if allowed(*e, labels=labels, found=found, ends=(end,))}
        anyone = {(s, "nginx", 8080) for s in pods} if end == "Ingress" else set()
        assert alone - anyone == needed_edges() & mine, f"{end} rules allow more than needed"
    for pod in pods:  # names are looked up: every pod asks the DNS
        for protocol in ("UDP", "TCP"):
            assert allowed(pod, DNS, 53, protocol, labels, found), (pod, protocol)


def test_the_policy_check_sees_an_edge_open_or_closed():
    """The reading above, held to known cases (else it could pass anything)."""
    labels, found = pod_labels(), policies()

    def edge(source: str, target: str, port: int) -> bool:
        return allowed(source, target, port, labels=labels, found=found)

    assert edge("nginx", "web", 8000) and not edge("web", "nginx", 8000)
    assert edge("users", "mongo", 27017) and not edge("web", "mongo", 27017)
    assert edge("beat", "redis", 6379) and not edge("beat", "mongo", 27017)
    assert not edge("users", "search", 8000), "services talk through the broker only"
    assert not edge(OUTSIDE, "web", 8000) and edge(OUTSIDE, "nginx", 8080)
    assert not edge("users", OUTSIDE, 443) and edge("worker", OUTSIDE, 443)
    # Without the default deny, a pod no other policy picks would be open both ways.
    open_nginx = [p for p in found if p["metadata"]["name"] not in ("default-deny", "dns", "nginx")]
    assert allowed("nginx", "mongo", 6379, labels=labels, found=open_nginx) is False
    assert allowed("nginx", OUTSIDE, 443, labels=labels, found=open_nginx) is True


def test_mongodb_and_redis_make_exactly_the_users_the_pods_log_in_as():
    """The mongo pod gets a password for each database a Deployment's MONGO_URL names, and
    the redis pod one for each Redis user a Deployment's URLs name: no user nobody uses,
    none missing; each from the Secret key of its own name."""
    used: dict[str, set[str]] = {"mongodb": set(), "redis": set()}
    for workload in of_kind("Deployment").values():
        for value in plain_env(only_container(workload)).values():
            found = re.match(r"(mongodb|redis)://([\w-]+):\$\((\w+)\)@", str(value))
            if found:
                kind, user, password = found.groups()
                assert password == variable("MONGO" if kind == "mongodb" else "REDIS", user)
                used[kind].add(password)
    statefulsets = of_kind("StatefulSet")
    for kind, name in (("mongodb", "mongo"), ("redis", "redis")):
        env = only_container(statefulsets[name])["env"]
        secret = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
        passwords = {n for n in secret if "PASSWORD_" in n and not n.startswith("MONGO_INITDB")}
        assert passwords == used[kind], name
        for entry, reference in secret.items():
            wanted = "MONGO_ROOT_PASSWORD" if entry == "MONGO_INITDB_ROOT_PASSWORD" else entry
            assert reference == {"name": SECRET, "key": wanted}, (name, entry)
    mongo = only_container(statefulsets["mongo"])
    assert "--auth" in mongo["args"]
    assert plain_env(mongo)["MONGO_INITDB_ROOT_USERNAME"] == "root"
    redis = only_container(statefulsets["redis"])
    assert redis["args"][:2] == ["sh", "/usr/local/etc/redis/redis-users.sh"]


def test_the_stores_scripts_are_compose_s_own():
    """kustomize reads nothing outside docker/k8s/: stores/ holds copies, kept equal."""
    (generator,) = kustomization()["configMapGenerator"]
    assert generator["name"] == STORE_SCRIPTS
    for name in generator["files"]:
        assert (K8S / name).read_bytes() == (DOCKER / name).read_bytes(), name
    assert {f"stores/{p.name}" for p in (DOCKER / "stores").iterdir()} == set(generator["files"])
    mounts = {}
    for name in ("mongo", "redis"):
        container = only_container(of_kind("StatefulSet")[name])
        volumes = {v["name"]: v for v in pod_spec(of_kind("StatefulSet")[name])["volumes"]}
        for mount in container["volumeMounts"]:
            source = volumes.get(mount["name"], {}).get("configMap")
            if source:
                assert source["name"] == STORE_SCRIPTS and mount["readOnly"] is True
                (item,) = source["items"]
                mounts[name] = f"{mount['mountPath']}/{item['path']}"
    assert mounts == {"mongo": "/docker-entrypoint-initdb.d/mongo-users.js",
                      "redis": "/usr/local/etc/redis/redis-users.sh"}  # fmt: skip
