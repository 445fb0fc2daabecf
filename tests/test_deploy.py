"""The deployments: every Kubernetes overlay renders with kustomize (kubectl's), validates against the
Kubernetes schemas offline and has none of the defects a cluster or an operator would trip on (each
checked in the rendered output); Compose builds, starts on health and publishes its dashboards on
loopback only; its load balancer, Prometheus, alert rules and Grafana dashboard read only metrics
the server exports; yamllint clean."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = sorted(p.name for p in (ROOT / "deploy" / "overlays").iterdir())
KUBECTL = shutil.which("kubectl")


@pytest.fixture
def kubectl() -> str:
    """kubectl, for its built-in kustomize: skipped where it is missing, except in CI (.ci/run installs
    it), where a skip would hide that the deploy files were never rendered."""
    if KUBECTL is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is required in CI (.ci/run installs it): the overlays were not rendered")
        pytest.skip("needs kubectl (its built-in kustomize)")
    return KUBECTL


needs_kubectl = pytest.mark.usefixtures("kubectl")
# Custom resources: kubernetes-validate has schemas for built-in kinds only, so these are checked by
# their fields below (test_keda_..., test_the_service_monitor_...) instead of against a schema.
CRD_KINDS = {"ServiceMonitor": "monitoring.coreos.com/v1", "ScaledObject": "keda.sh/v1alpha1"}


@functools.cache
def _render(overlay: str) -> str:
    assert KUBECTL is not None
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(ROOT / "deploy" / "overlays" / overlay)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def render(overlay: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(_render(overlay)) if doc]


def by_kind(documents: list[dict], kind: str) -> list[dict]:
    return [d for d in documents if d["kind"] == kind]


def server_of(documents: list[dict]) -> dict:
    (server,) = [d for d in by_kind(documents, "Deployment") if d["metadata"]["name"] == "bottlecheck"]
    return server


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_validates_against_the_kubernetes_schemas(overlay):
    """What `kubectl apply --dry-run=server` would refuse, offline: each rendered document against the
    Kubernetes schemas, strict (an unknown field fails). Only the CRD kinds in CRD_KINDS, which have
    no schema here, are left out, and the test says which ones it left out in its failure message."""
    if importlib.util.find_spec("kubernetes_validate") is None:
        if os.environ.get("CI"):
            pytest.fail("kubernetes-validate is required in CI (the test extra)")
        pytest.skip("needs kubernetes-validate")
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    unvalidated = []
    for document in render(overlay):
        try:
            kubernetes_validate.validate(copy.deepcopy(document), version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unvalidated.append((document["kind"], document["apiVersion"]))
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{overlay}: {document['kind']}/{document['metadata']['name']}: {error}")
    unknown = [kind for kind in unvalidated if CRD_KINDS.get(kind[0]) != kind[1]]
    assert not unknown, f"no schema for {unknown} (not a known CRD); left out as CRDs: {unvalidated}"


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_server_deployment_keeps_its_promises(overlay):
    documents = render(overlay)
    server = server_of(documents)
    pod = server["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"requests", "limits"} <= set(container["resources"])
    assert pod["terminationGracePeriodSeconds"] > 30 + 5  # longest request (30 s) and the preStop pause
    assert pod["affinity"]["podAntiAffinity"]
    keys = next(v for v in pod["volumes"] if v["name"] == "api-keys")["secret"]["secretName"]
    secrets = [d["metadata"]["name"] for d in by_kind(documents, "Secret")]
    assert keys in secrets or overlay.startswith("production")  # production: the operator creates it
    settings = {d["metadata"]["name"]: d["data"] for d in by_kind(documents, "ConfigMap")}
    (env_from,) = container["envFrom"]
    assert settings[env_from["configMapRef"]["name"]]["BOTTLECHECK_CACHE_URL"].startswith("redis://")
    assert by_kind(documents, "PodDisruptionBudget") and len(by_kind(documents, "NetworkPolicy")) == 2


def _autoscalers(documents: list[dict]) -> list[tuple[str, int]]:
    """(target Deployment, minimum replicas) of each HorizontalPodAutoscaler and KEDA ScaledObject."""
    found = [
        (d["spec"]["scaleTargetRef"]["name"], d["spec"]["minReplicas"])
        for d in by_kind(documents, "HorizontalPodAutoscaler")
    ]
    found += [
        (d["spec"]["scaleTargetRef"]["name"], d["spec"]["minReplicaCount"]) for d in by_kind(documents, "ScaledObject")
    ]
    return found


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_deployment_an_autoscaler_owns_sets_its_replicas(overlay):
    """A count in the Deployment would reset the autoscaler's on every `kubectl apply`."""
    documents = render(overlay)
    owned = {target for target, _ in _autoscalers(documents)}
    assert owned == {"bottlecheck"}  # exactly one autoscaler: two would fight
    assert len(_autoscalers(documents)) == 1
    for deployment in by_kind(documents, "Deployment"):
        if deployment["metadata"]["name"] in owned:
            assert "replicas" not in deployment["spec"], deployment["metadata"]["name"]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_node_drain_never_blocks_on_the_disruption_budget(overlay):
    """At the fewest replicas the autoscaler keeps, the budget still lets one pod be evicted."""
    documents = render(overlay)
    ((_, fewest),) = _autoscalers(documents)
    (budget,) = by_kind(documents, "PodDisruptionBudget")
    spec = budget["spec"]
    assert isinstance(spec.get("minAvailable", 0), int) and isinstance(spec.get("maxUnavailable", 1), int)
    if "minAvailable" in spec:
        assert spec["minAvailable"] < fewest, (spec, fewest)
    else:
        assert spec["maxUnavailable"] >= 1


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_server_has_a_startup_probe_before_liveness(overlay):
    """Loading the model on a slow node is not taken for a hung server and restarted."""
    (container,) = server_of(render(overlay))["spec"]["template"]["spec"]["containers"]
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30
    assert "initialDelaySeconds" not in container["livenessProbe"]  # the startup probe holds it off


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_image_a_cluster_runs_is_never_pulled_as_latest(overlay):
    """Dev: the image loaded into kind or minikube is used (a `:latest` tag would mean pull Always and
    fail without a registry); production: a pinned tag."""
    (container,) = server_of(render(overlay))["spec"]["template"]["spec"]["containers"]
    image = container["image"]
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest"
    assert tag != "latest", image
    policy = container.get("imagePullPolicy", "Always" if tag == "latest" else "IfNotPresent")
    assert policy in ("IfNotPresent", "Never"), policy
    if overlay == "dev":
        assert container["imagePullPolicy"] == "IfNotPresent"
    else:
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), image


@needs_kubectl
def test_the_dev_overlay_applies_to_a_cluster_without_operators():
    """No custom resource in dev: `kubectl apply -k deploy/overlays/dev` needs no Prometheus Operator
    or KEDA CRDs; one replica at least, at most two."""
    documents = render("dev")
    assert not [d["kind"] for d in documents if d["kind"] in CRD_KINDS]
    assert all(
        d["apiVersion"].split("/")[0] in {"v1", "apps", "autoscaling", "policy", "networking.k8s.io"} for d in documents
    )
    ((_, fewest),) = _autoscalers(documents)
    (hpa,) = by_kind(documents, "HorizontalPodAutoscaler")
    assert fewest == 1 and hpa["spec"]["maxReplicas"] == 2
    assert {d["metadata"]["namespace"] for d in documents} == {"bottlecheck-dev"}


@needs_kubectl
def test_keda_replaces_the_cpu_autoscaler_and_scales_on_the_queue_of_its_own_namespace():
    documents = render("production-keda")
    assert not by_kind(documents, "HorizontalPodAutoscaler")  # two autoscalers would fight
    (scaled,) = by_kind(documents, "ScaledObject")  # a CRD: no schema offline, so check its fields
    assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["spec"]["scaleTargetRef"]["name"] == "bottlecheck"
    namespace = scaled["metadata"]["namespace"]
    assert namespace == server_of(documents)["metadata"]["namespace"] == "bottlecheck"  # beside what it scales
    prometheus = next(t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus")
    query = prometheus["metadata"]["query"]
    series = re.findall(r"(bottlecheck_[a-z_]+)(\{[^}]*\})?", query)
    assert {name for name, _ in series} == {"bottlecheck_queue_depth", "bottlecheck_requests_in_flight"}
    for name, selector in series:  # every series of this namespace only, not summed across the cluster
        assert f'namespace="{namespace}"' in selector, (name, query)
    assert scaled["spec"]["minReplicaCount"] == 3  # the same floor as production's autoscaler
    assert by_kind(render("production"), "HorizontalPodAutoscaler")[0]["spec"]["minReplicas"] == 3


@needs_kubectl
def test_the_service_monitor_and_the_rayjob_have_what_their_operators_read():
    (monitor,) = by_kind(render("production"), "ServiceMonitor")  # components/service-monitor
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "bottlecheck"
    assert monitor["metadata"]["namespace"] == "bottlecheck"
    base = yaml.safe_load((ROOT / "deploy" / "base" / "kustomization.yaml").read_text())
    assert not [name for name in base["resources"] if "monitor" in name]  # the base: built-in kinds only
    rayjob = yaml.safe_load((ROOT / "deploy" / "ray" / "rayjob.yaml").read_text())
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    assert rayjob["spec"]["entrypoint"].startswith("bottlecheck classify")
    assert rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"]


def test_yamllint_is_clean():
    if importlib.util.find_spec("yamllint") is None:
        pytest.skip("needs yamllint")
    proc = subprocess.run(
        [sys.executable, "-m", "yamllint", "-s", str(ROOT / "deploy")], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout


def _metric_names(expr: str) -> set[str]:
    import re

    return {name for name in re.findall(r"\b(bottlecheck_[a-z_]+)", expr)}


def test_the_dashboard_and_alerts_only_use_metrics_the_server_exports(classifier):
    """Every series a Grafana panel or an alert rule reads is in a real /metrics answer."""
    import io
    import json

    from bottlecheck.server import create_app
    from tests.helpers import bottle_photo

    client = create_app({}, classifier=classifier).test_client()
    client.post(
        "/classify", data={"file": (io.BytesIO(bottle_photo(True)), "b.jpg")}, content_type="multipart/form-data"
    )
    client.get("/classify")
    exported = {
        line.split("{")[0].split(" ")[0]
        for line in client.get("/metrics").get_data(as_text=True).splitlines()
        if line.startswith("bottlecheck_")
    }
    compose = ROOT / "deploy" / "compose"
    dashboard = json.loads((compose / "grafana" / "dashboards" / "bottlecheck.json").read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= _metric_names(target["expr"])
    rules = yaml.safe_load((compose / "alerts.yml").read_text())["groups"][0]["rules"]
    for rule in rules:
        used |= _metric_names(rule["expr"])
    assert used and used <= exported, used - exported
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for subject in ("requests", "latency", "status", "queue", "per model call", "cache", "unknown"):
        assert subject in titles
    assert {r["alert"] for r in rules} >= {"BottlecheckErrors", "BottlecheckSlow", "BottlecheckQueueStuck"}


def test_the_watch_alerts_only_use_metrics_the_watch_exports():
    """The second group of rules reads `bottlecheck watch --metrics-port`'s series, every one of them real."""
    pytest.importorskip("watchdog")
    from bottlecheck.runs.watch import WatchMetrics

    exported = {line.split("{")[0].split(" ")[0] for line in WatchMetrics().text().splitlines() if line.startswith("b")}
    groups = yaml.safe_load((ROOT / "deploy" / "compose" / "alerts.yml").read_text())["groups"]
    watch = next(group for group in groups if group["name"] == "bottlecheck-watch")
    used = set().union(*(_metric_names(rule["expr"]) for rule in watch["rules"]))
    assert "bottlecheck_watch_last_open_timestamp_seconds" in used
    assert used <= exported, used - exported


def test_compose_runs_two_replicas_behind_the_load_balancer_with_redis_and_prometheus():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["server"]["deploy"]["replicas"] >= 2 and services["server"]["read_only"] is True
    assert services["server"]["environment"]["BOTTLECHECK_CACHE_URL"].startswith("redis://redis")
    assert {"lb", "redis", "prometheus", "grafana"} <= set(services)
    nginx = (ROOT / "deploy" / "compose" / "nginx.conf").read_text()
    assert "proxy_next_upstream error timeout http_502 non_idempotent" in nginx  # as tests/test_replicas.py
    prometheus = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["dns_sd_configs"][0]["names"] == ["server"]  # every replica


def test_compose_restarts_every_service_reads_the_settings_kubernetes_reads_and_re_resolves_replicas():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {name: service.get("restart") for name, service in services.items()} == dict.fromkeys(
        services, "unless-stopped"
    )
    assert services["server"]["env_file"] == ["deploy/base/server.env"]
    base = yaml.safe_load((ROOT / "deploy" / "base" / "kustomization.yaml").read_text())
    (settings,) = [g for g in base["configMapGenerator"] if g["name"] == "bottlecheck-settings"]
    assert settings["envs"] == ["server.env"]
    shared = {
        line.split("=", 1)[0] for line in (ROOT / "deploy/base/server.env").read_text().splitlines() if "=" in line
    }
    assert {"BOTTLECHECK_RATE_LIMIT", "BOTTLECHECK_TRUSTED_PROXIES", "BOTTLECHECK_THREADS"} <= shared
    written_twice = shared & (set(services["server"]["environment"]) | {x.split("=")[0] for x in settings["literals"]})
    assert not written_twice, written_twice
    nginx = (ROOT / "deploy" / "compose" / "nginx.conf").read_text()
    assert re.search(r"server server:5000 [^;]*\bresolve;", nginx) and re.search(r"zone \w+ \d+k;", nginx)


def test_compose_builds_starts_on_health_and_keeps_the_dashboards_on_loopback():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["server"]["build"] == "."  # `docker compose up --build` makes the image
    for name, service in services.items():
        for needed, how in service.get("depends_on", {}).items():  # a mapping: a plain list waits for nothing
            assert how == {"condition": "service_healthy"}, (name, needed)
            assert services[needed]["healthcheck"]["test"], needed
    assert services["server"]["depends_on"].keys() == {"redis"} and services["lb"]["depends_on"].keys() == {"server"}
    for name in ("grafana", "prometheus"):
        assert services[name]["ports"] and all(port.startswith("127.0.0.1:") for port in services[name]["ports"])
    environment = services["grafana"]["environment"]
    password = environment["GF_SECURITY_ADMIN_PASSWORD"]
    # From the environment, with no default: Compose refuses to start until it is set.
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), password


@needs_kubectl
def test_the_autoscalers_are_sized_from_the_measured_capacity_plan():
    """Issue 39: production's ceilings and targets come from ``benchmarks/bench_capacity.py``, not guesses.

    Both autoscalers may reach the replica count the plan gives for 1,000 requests/s with no cache
    hits; the CPU target is the plan's headroom of what a replica used at its best rate; KEDA's
    per-replica work (images waiting plus requests in flight) is the headroom's share of the clients
    one replica serves within the p99 target. Re-running the benchmark and not the deploy files fails here.
    """
    capacity = json.loads((ROOT / "benchmarks" / "results" / "capacity.json").read_text())
    needed = capacity["plan"]["0%"]["replicas"]
    at_target = capacity["one_replica"]["0%"]["at_target"]
    (hpa,) = by_kind(render("production"), "HorizontalPodAutoscaler")
    assert hpa["spec"]["maxReplicas"] == needed
    # The pod asks for the cores the replica was measured on, and is planned at the headroom's share
    # of the CPU it used at its best rate within the target.
    (container,) = server_of(render("production"))["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"] == str(capacity["cores_per_replica"])
    utilisation = round(100 * capacity["headroom"] * at_target["server_cpu_utilisation"])
    (cpu,) = hpa["spec"]["metrics"]
    assert cpu["resource"]["target"]["averageUtilization"] == utilisation
    (scaled,) = by_kind(render("production-keda"), "ScaledObject")
    assert scaled["spec"]["maxReplicaCount"] == needed
    prometheus = next(t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus")
    assert prometheus["metadata"]["threshold"] == str(max(1, round(at_target["clients"] * capacity["headroom"])))
    assert next(t for t in scaled["spec"]["triggers"] if t["type"] == "cpu")["metadata"]["value"] == str(utilisation)
