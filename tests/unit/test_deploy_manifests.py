"""The deployment files (issue 16): deploy/kubernetes/ and compose.yaml, checked offline.

* Kubernetes objects validate against the Kubernetes OpenAPI schemas bundled by the
  `kubernetes-validate` package (strict: an unknown or misspelt field fails), for the oldest and
  the newest Kubernetes version we claim. KEDA's ScaledObject has no schema there: it is checked
  against the fields its CRD (keda.sh_scaledobjects.yaml) declares and requires, written out
  below, and against what each scaler needs.
* compose.yaml validates against the Compose Specification's JSON schema (vendored by the
  `check-jsonschema` package).
* Every command line parses with the real CLI parser, every TASKSTREAM_* variable is one
  Settings reads, every probe and health check asks for a route the app (or the metrics
  exporter) serves on the port the command line gives it.
* With `kubectl` on PATH (kustomize built in, rendering offline), both kustomizations are
  rendered and the result validated again; without it that one test is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from taskstream.broker.keys import Keys
from taskstream.cli import build_parser
from taskstream.core.config import Settings
from taskstream.core.models import Priority, TaskStatus
from taskstream.observability.metrics import exposition

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "compose.yaml"
IMAGE = "taskstream"  # the image name in the manifests; kustomization's `images` sets the real one
K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())  # oldest we claim, newest known
NOT_KUBERNETES = {"Kustomization", "ScaledObject"}
SETTINGS_VARS = {f"TASKSTREAM_{name.upper()}" for name in Settings.__struct_fields__}


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def objects() -> list[tuple[str, dict[str, Any]]]:
    return [
        (str(path.relative_to(KUBE)), doc)
        for path in sorted(KUBE.rglob("*.yaml"))
        for doc in load_all(path)
    ]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in objects() if doc["kind"] == kind}


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("Deployment", "Job"):
        for name, doc in of_kind(kind).items():
            yield f"{kind}/{name}", doc["spec"]["template"]["spec"]


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for where, spec in pod_specs():
        for c in spec["containers"] + spec.get("initContainers", []):
            yield f"{where}/{c['name']}", c


def argv(container: dict[str, Any]) -> list[str]:
    """The taskstream arguments of a container of our image (ENTRYPOINT ["taskstream"])."""
    command = [str(a) for a in container.get("command", [])]
    if command and command[0] == "taskstream":
        command = command[1:]
    return command + [str(a) for a in container.get("args", [])]


def option(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def parse(args: list[str]) -> str | None:
    """None when the CLI parser accepts ``args``, else what it said."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(args)
    except SystemExit as exc:
        return err.getvalue().strip() or f"exit {exc.code}"
    return None


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # merge keys (<<) resolved
    return doc


def ours(service: dict[str, Any]) -> bool:
    return service.get("build") == "."


def configmap_env() -> dict[str, str]:
    return {k: str(v) for k, v in of_kind("ConfigMap")["taskstream-config"]["data"].items()}


# -- Kubernetes: schemas -------------------------------------------------------------------------


def check_schema(path: str, doc: dict[str, Any], version: str) -> None:
    """Fail with where and what (not the whole schema, which the error's text holds)."""
    problem = None
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        at = ".".join(str(p) for p in exc.path)
        problem = f"{path}: {doc['kind']} invalid for Kubernetes {version} at {at}: {exc.message}"
    if problem:
        pytest.fail(problem)


KUBERNETES_OBJECTS = [(f, d) for f, d in objects() if d["kind"] not in NOT_KUBERNETES]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    ("path", "doc"),
    KUBERNETES_OBJECTS,
    ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in KUBERNETES_OBJECTS],
)
def test_kubernetes_objects_validate_against_the_openapi_schema(
    path: str, doc: dict[str, Any], version: str
) -> None:
    check_schema(path, doc, version)


def test_the_strict_schema_check_refuses_a_misspelt_field() -> None:
    """The check above can fail: one typo in a probe is enough."""
    api = json.loads(json.dumps(of_kind("Deployment")["taskstream-api"]))
    probe = api["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGet"]["pth"] = probe["httpGet"].pop("path")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, K8S_VERSIONS[0], strict=True)


def test_every_role_has_its_objects() -> None:
    assert set(of_kind("Deployment")) == {
        "taskstream-api", "taskstream-worker", "taskstream-scheduler",
    }  # fmt: skip
    assert set(of_kind("Job")) == {"taskstream-migrate"}
    assert set(of_kind("Service")) == {"taskstream-api"}
    assert set(of_kind("PodDisruptionBudget")) == set(of_kind("Deployment"))
    assert set(of_kind("ScaledObject")) == {"taskstream-worker", "taskstream-worker-streams"}
    assert of_kind("Deployment")["taskstream-scheduler"]["spec"]["replicas"] >= 2  # a standby


def test_each_pod_disruption_budget_selects_its_deployment() -> None:
    budgets = of_kind("PodDisruptionBudget")
    for name, deployment in of_kind("Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert deployment["spec"]["selector"]["matchLabels"] == selector, name
        assert selector.items() <= labels.items(), name


def test_the_api_service_reaches_the_api_pods() -> None:
    service = of_kind("Service")["taskstream-api"]["spec"]
    pod = of_kind("Deployment")["taskstream-api"]["spec"]["template"]
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert {p["targetPort"] for p in service["ports"]} <= ports


# -- Kubernetes: kustomize -----------------------------------------------------------------------


def kustomizations() -> dict[Path, dict[str, Any]]:
    return {p.parent: load_all(p)[0] for p in sorted(KUBE.rglob("kustomization.yaml"))}


def test_kustomizations_list_every_manifest_but_the_examples() -> None:
    for folder, kustomization in kustomizations().items():
        for entry in kustomization["resources"]:
            assert (folder / entry).exists(), f"{folder}: {entry} does not exist"
    base = kustomizations()[KUBE / "base"]["resources"]
    files = {p.name for p in (KUBE / "base").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(base) == {f for f in files if ".example." not in f}
    assert kustomizations()[KUBE]["resources"] == ["base"]
    assert kustomizations()[KUBE / "keda"]["resources"] == ["../base", "scaledobject.yaml"]
    assert {i["name"] for i in kustomizations()[KUBE / "base"]["images"]} == {IMAGE}


def kubectl() -> str:
    found = shutil.which("kubectl")
    if not found:
        pytest.skip(
            "kubectl is not on PATH, so the kustomizations were not rendered (Debian's "
            "kubernetes-client is 1.20, whose kustomize predates `labels` and `patches`)"
        )
    return found


@pytest.mark.parametrize("overlay", [".", "keda"])
def test_kustomize_renders_valid_objects(overlay: str) -> None:
    tool = kubectl()
    done = subprocess.run([tool, "kustomize", str(KUBE / overlay)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    images = set()
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "taskstream"
        if doc["kind"] in NOT_KUBERNETES:
            continue
        check_schema(f"kustomize {overlay}", doc, K8S_VERSIONS[-1])
        if doc["kind"] in ("Deployment", "Job"):
            images |= {c["image"] for c in doc["spec"]["template"]["spec"]["containers"]}
    assert images == {"registry.example.com/taskstream:0.1.0"}
    kinds = sorted(d["kind"] for d in docs)
    worker = next(d for d in docs if d["metadata"]["name"] == "taskstream-worker")
    if overlay == "keda":  # KEDA owns the worker count: the Deployment does not reset it
        assert "ScaledObject" in kinds
        assert "replicas" not in worker["spec"]
    else:
        assert "ScaledObject" not in kinds
        assert worker["spec"]["replicas"] >= 1


# -- Kubernetes: KEDA ----------------------------------------------------------------------------

_INT = {"type": "integer", "format": "int32"}
# The ScaledObject fields of KEDA 2.x's CRD (config/crd/bases/keda.sh_scaledobjects.yaml), with
# what it requires; the HPA `advanced` block is left to KEDA (it is the HPA's own schema).
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "minReplicaCount": _INT,
                "maxReplicaCount": _INT,
                "idleReplicaCount": _INT,
                "pollingInterval": _INT,
                "cooldownPeriod": _INT,
                "initialCooldownPeriod": _INT,
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "properties": {"failureThreshold": _INT, "replicas": _INT},
                },
                "advanced": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "kind": {}},
                            },
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}
# What each scaler we use needs in its metadata (KEDA's scaler docs): all of `required`, and one
# of each `one_of` group.
SCALERS: dict[str, dict[str, list[Any]]] = {
    "prometheus": {"required": ["serverAddress", "query", "threshold"], "one_of": []},
    "redis-streams": {
        "required": ["stream"],
        "one_of": [["address", "host"], ["streamLength", "pendingEntriesCount", "lagCount"]],
    },
}


@pytest.mark.parametrize("name", ["taskstream-worker", "taskstream-worker-streams"])
def test_scaled_objects_match_the_keda_crd(name: str) -> None:
    scaled = of_kind("ScaledObject")[name]
    errors = [e.message for e in jsonschema.Draft7Validator(SCALED_OBJECT).iter_errors(scaled)]
    assert not errors, errors
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] in of_kind("Deployment")
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    for trigger in spec["triggers"]:
        needs = SCALERS[trigger["type"]]
        missing = [k for k in needs["required"] if k not in trigger["metadata"]]
        missing += [g for g in needs["one_of"] if not set(g) & set(trigger["metadata"])]
        assert not missing, (trigger.get("name"), missing)


def test_the_crd_check_refuses_a_number_where_keda_wants_a_string() -> None:
    scaled = json.loads(json.dumps(of_kind("ScaledObject")["taskstream-worker"]))
    scaled["spec"]["triggers"][0]["metadata"]["threshold"] = 50
    assert list(jsonschema.Draft7Validator(SCALED_OBJECT).iter_errors(scaled))


def worker_concurrency() -> int:
    worker = of_kind("Deployment")["taskstream-worker"]["spec"]["template"]["spec"]
    return int(option(argv(worker["containers"][0]), "--concurrency") or 10)


def test_the_prometheus_trigger_asks_for_the_depth_the_api_serves() -> None:
    """The query names task_queue_depth with labels and statuses it really has, and scales one
    worker per --concurrency tasks."""
    trigger = of_kind("ScaledObject")["taskstream-worker"]["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    served = exposition([("acme", "default", "normal", "pending", 1, 0.0)]).decode()
    depth = next(f for f in text_string_to_metric_families(served) if f.name == "task_queue_depth")
    labels = set(depth.samples[0].labels)
    used = re.findall(r"task_queue_depth\{([^}]*)\}", query)
    assert used, query
    for matcher in re.findall(r'(\w+)\s*=~?\s*"([^"]*)"', used[0]):
        assert matcher[0] in labels, matcher
        if matcher[0] == "status":
            assert set(matcher[1].split("|")) <= {s.value for s in TaskStatus}, matcher
    by = re.search(r"by \(([^)]*)\)", query)
    assert by and {b.strip() for b in by.group(1).split(",")} == labels  # one series per row
    assert int(trigger["metadata"]["threshold"]) == worker_concurrency()


def test_the_redis_streams_example_names_real_streams_and_the_group() -> None:
    keys = Keys(configmap_env()["TASKSTREAM_REDIS_PREFIX"])
    triggers = of_kind("ScaledObject")["taskstream-worker-streams"]["spec"]["triggers"]
    assert {t["metadata"]["stream"] for t in triggers} == set(
        keys.streams("acme", "default").values()
    )
    assert len(triggers) == len(Priority)
    assert {t["metadata"]["consumerGroup"] for t in triggers} == {keys.group}
    assert {t["metadata"]["streamLength"] for t in triggers} == {str(worker_concurrency())}


# -- command lines and environment ---------------------------------------------------------------


def command_lines() -> list[tuple[str, list[str]]]:
    lines = [(where, argv(c)) for where, c in containers() if c["image"] == IMAGE]
    for name, service in compose()["services"].items():
        if ours(service):
            lines.append((f"compose:{name}", [str(a) for a in service["command"]]))
    return lines


def test_every_container_runs_our_image() -> None:
    assert {c["image"] for _, c in containers()} == {IMAGE}


@pytest.mark.parametrize(("where", "args"), command_lines(), ids=[w for w, _ in command_lines()])
def test_every_command_line_parses_with_the_cli(where: str, args: list[str]) -> None:
    error = parse(args)
    assert error is None, f"{where}: taskstream {' '.join(args)}: {error}"


def test_the_cli_check_refuses_a_wrong_flag() -> None:
    assert parse(["worker", "--concurency", "50"]) is not None
    assert parse(["schedule", "--metrics-port", "9100"]) is not None
    assert parse(["worker", "--concurrency", "50", "--metrics-port", "9100"]) is None


def test_every_role_runs_in_both_deployments() -> None:
    verbs: dict[str, set[str]] = {"kubernetes": set(), "compose": set()}
    for where, args in command_lines():
        verbs["compose" if where.startswith("compose:") else "kubernetes"].add(args[0])
    assert verbs["kubernetes"] == verbs["compose"] == {"migrate", "api", "worker", "scheduler"}


def variables() -> Iterator[tuple[str, str]]:
    for where, c in containers():
        for env in c.get("env", []):
            yield where, env["name"]
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                yield f"{where} (secret key)", ref["key"]
    for name, doc in of_kind("ConfigMap").items():
        yield from ((f"ConfigMap/{name}", key) for key in doc["data"])
    for name, doc in of_kind("Secret").items():
        yield from ((f"Secret/{name}", key) for key in doc["stringData"])
    for name, service in compose()["services"].items():
        if ours(service):
            yield from ((f"compose:{name}", key) for key in service["environment"])


def test_every_taskstream_variable_is_one_the_settings_read() -> None:
    names = list(variables())
    assert len(names) > 20
    unknown = [(w, n) for w, n in names if n.startswith("TASKSTREAM_") and n not in SETTINGS_VARS]
    assert not unknown, unknown


def test_every_container_gets_its_connections_and_configuration() -> None:
    for where, c in containers():
        env = {e["name"] for e in c["env"]}
        assert {"TASKSTREAM_DATABASE_URL", "TASKSTREAM_REDIS_URL"} <= env, where
        assert {"name": "taskstream-config"} in [e["configMapRef"] for e in c["envFrom"]], where
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
        assert refs == set(of_kind("Secret")), where


def test_the_example_secret_holds_only_placeholders() -> None:
    for value in of_kind("Secret")["taskstream"]["stringData"].values():
        assert "CHANGE-ME" in value


# -- probes and health checks --------------------------------------------------------------------


@pytest.fixture(scope="module")
def get_routes() -> set[str]:
    """The paths the API app answers GET on, from the app itself (no server, no connection)."""
    from taskstream.api.app import create_app

    app = create_app(Settings())
    return {r.path for r in app.routes if "GET" in getattr(r, "methods", ())}


def probe_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def test_api_probes_ask_the_app_on_its_port(get_routes: set[str]) -> None:
    api = of_kind("Deployment")["taskstream-api"]["spec"]["template"]["spec"]["containers"][0]
    port = int(option(argv(api), "--port") or 8000)
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = api[kind]["httpGet"]
        assert get["path"] in get_routes, (kind, get)
        assert probe_port(api, get["port"]) == port, kind
    assert option(argv(api), "--host") == "0.0.0.0"  # reachable from the kubelet


@pytest.mark.parametrize("name", ["taskstream-worker", "taskstream-scheduler"])
def test_worker_and_scheduler_serve_metrics_where_probes_and_scrapes_look(name: str) -> None:
    template = of_kind("Deployment")[name]["spec"]["template"]
    container = template["spec"]["containers"][0]
    port = int(option(argv(container), "--metrics-port") or 0)
    assert port, f"{name} serves no --metrics-port"
    assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in container["ports"]
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/metrics" and probe_port(container, probe["port"]) == port
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)


def shutdown_grace_s(environment: dict[str, str]) -> float:
    return float(environment.get("TASKSTREAM_SHUTDOWN_GRACE_S", Settings().shutdown_grace_s))


def test_the_worker_outlasts_its_drain_before_it_is_killed() -> None:
    """A stopping worker waits up to the grace for running tasks, then up to as long again for
    the completions to commit (worker/runner.py _drain): the kill must come later than both."""
    pod = of_kind("Deployment")["taskstream-worker"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > 2 * shutdown_grace_s(configmap_env())
    worker = compose()["services"]["worker"]
    seconds = int(re.fullmatch(r"(\d+)s", worker["stop_grace_period"]).group(1))  # type: ignore[union-attr]
    assert seconds > 2 * shutdown_grace_s(worker["environment"])


# -- hardening -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "spec"), list(pod_specs()), ids=[w for w, _ in pod_specs()])
def test_pods_run_unprivileged_on_a_read_only_root(where: str, spec: dict[str, Any]) -> None:
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] > 0
    assert spec["automountServiceAccountToken"] is False
    scratch = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        # tempfile (the supervisor's metrics folder) needs a writable /tmp
        assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}
        assert {m["name"] for m in c["volumeMounts"]} <= scratch
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][bound]), (c["name"], bound)


# -- compose -------------------------------------------------------------------------------------


def test_compose_validates_against_the_compose_specification() -> None:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose())]
    assert not errors, errors


def test_compose_keeps_data_in_named_volumes() -> None:
    doc = compose()
    assert set(doc["volumes"]) == {"pgdata", "redisdata"}
    services = doc["services"]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redisdata:/data" in services["redis"]["volumes"]
    redis = services["redis"]["command"]
    assert redis[redis.index("--appendonly") + 1] == "yes"  # a restart keeps the streams


def test_compose_starts_in_order() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    for name in ("api", "scheduler", "worker"):
        needs = services[name]["depends_on"]
        assert needs["migrate"] == {"condition": "service_completed_successfully"}, name
        assert needs["postgres"] == needs["redis"] == {"condition": "service_healthy"}, name
    conditions = {
        c["condition"] for s in services.values() for c in s.get("depends_on", {}).values()
    }
    assert conditions <= {"service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)


def health_url(service: dict[str, Any]) -> tuple[int, str]:
    """The port and path a python-urllib health check fetches."""
    test = " ".join(service["healthcheck"]["test"])
    found = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", test)
    assert found, test
    assert service["healthcheck"]["test"][:2] == ["CMD", "python"]  # the image has no curl
    return int(found.group(1)), found.group(2)


def test_every_long_running_compose_service_has_a_health_check(get_routes: set[str]) -> None:
    services = compose()["services"]
    running = {n for n, s in services.items() if s.get("restart") != "no"}
    assert running == {"redis", "postgres", "api", "scheduler", "worker"}
    for name in running:
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    api = services["api"]
    assert health_url(api) == (int(option(api["command"], "--port") or 0), "/healthz")
    assert "/healthz" in get_routes
    for name in ("scheduler", "worker"):
        port = int(option(services[name]["command"], "--metrics-port") or 0)
        assert health_url(services[name]) == (port, "/metrics"), name
