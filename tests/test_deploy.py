"""The deployments: every Kubernetes overlay renders with kustomize (kubectl's), validates against the
Kubernetes schemas offline and keeps the promises the README makes; Compose, its load balancer,
Prometheus, alert rules and Grafana dashboard read only metrics the server exports; yamllint clean."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = sorted(p.name for p in (ROOT / "deploy" / "overlays").iterdir())
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="needs kubectl (its built-in kustomize)")


def render(overlay: str) -> list[dict]:
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(ROOT / "deploy" / "overlays" / overlay)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_kind(documents: list[dict], kind: str) -> list[dict]:
    return [d for d in documents if d["kind"] == kind]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_validates_against_the_kubernetes_schemas(overlay, tmp_path):
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.skip("needs kubernetes-validate")
    documents = render(overlay)
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(yaml.safe_dump_all(documents))
    proc = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--no-warn", str(rendered)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_server_deployment_keeps_its_promises(overlay):
    documents = render(overlay)
    (server,) = [d for d in by_kind(documents, "Deployment") if d["metadata"]["name"] == "bottlecheck"]
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


@needs_kubectl
def test_keda_replaces_the_cpu_autoscaler_and_scales_on_the_queue():
    documents = render("production-keda")
    assert not by_kind(documents, "HorizontalPodAutoscaler")  # two autoscalers would fight
    (scaled,) = by_kind(documents, "ScaledObject")  # a CRD: no schema offline, so check its fields
    assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["spec"]["scaleTargetRef"]["name"] == "bottlecheck"
    prometheus = next(t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus")
    assert "bottlecheck_queue_depth" in prometheus["metadata"]["query"]
    assert by_kind(render("production"), "HorizontalPodAutoscaler")


@needs_kubectl
def test_the_service_monitor_and_the_rayjob_have_what_their_operators_read():
    (monitor,) = by_kind(render("production"), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "bottlecheck"
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
    from bottlecheck.watch import Metrics

    exported = {line.split("{")[0].split(" ")[0] for line in Metrics().text().splitlines() if line.startswith("b")}
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
