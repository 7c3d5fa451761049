"""deploy/: Prometheus rules (promtool), Grafana dashboards (only metrics devex exposes, and a real
Prometheus answers every query against the demo exporter), Kubernetes manifests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.services import free_port, prometheus, prometheus_available, query, running

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "devex-rules.yml"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None and
                                    os.environ.get("CI") != "true",
                                    reason="needs promtool (Debian prometheus)")

PROMQL_WORDS = {
    "sum", "by", "on", "group_left", "group_right", "quantile", "count", "max", "min", "avg",
    "or", "and", "unless", "without", "time", "vector", "rate", "increase", "label_values",
    "ignoring", "bool", "topk", "bottomk", "e", "inf", "nan", "offset",
}


def dashboards() -> dict[str, dict]:  # type: ignore[type-arg]
    return {p.stem: json.loads(p.read_text())
            for p in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))}


def exprs() -> list[tuple[str, str, str]]:
    return [(name, panel["title"], target["expr"]) for name, board in dashboards().items()
            for panel in board["panels"] for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_groupings = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)",
                               "", without_labels)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings))
    return {n for n in names if n not in PROMQL_WORDS and not n.isdigit()}


def exposed() -> set[str]:
    """Every family the collector can emit (read from the code) and every recorded rule."""
    source = (ROOT / "src" / "devex_cli" / "metrics" / "exposition.py").read_text()
    names = set(re.findall(r'(?:GaugeMetricFamily|InfoMetricFamily)\(\s*"([a-z_:]+)"', source))
    names |= set(re.findall(r'"(devex_[a-z_]+)": "', source))  # the exporter's health gauges
    names |= {n + "_info" for n in list(names) if n == "devex_build"}
    rules = yaml.safe_load(RULES.read_text())
    names |= {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    return names | {"up"}


def test_dashboards_are_generated_from_code() -> None:
    sys.path.insert(0, str(DEPLOY / "grafana"))
    try:
        import generate  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    for name, board in generate.dashboards().items():
        assert dashboards()[name] == json.loads(json.dumps(board)), \
            f"{name}.json is stale: run python deploy/grafana/generate.py"


def test_every_query_names_only_exposed_metrics() -> None:
    known = exposed()
    assert {"deployment_desired_state", "dora_deployments", "dora:org_change_failure_ratio",
            "devex_collection_duration_seconds"} <= known
    for board, title, expr in exprs():
        unknown = metric_names(expr) - known
        assert not unknown, f"{board} / {title}: {sorted(unknown)} in {expr}"


def test_dashboards_are_provisioning_ready() -> None:
    for name, board in dashboards().items():
        variables = {v["name"] for v in board["templating"]["list"]}
        assert {"datasource", "window", "service"} <= variables, name
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@needs_promtool
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run(["promtool", "test", "rules", "devex-rules.test.yml"],
                           capture_output=True, text=True, check=False, cwd=RULES.parent)
    assert tests.returncode == 0, tests.stdout + tests.stderr


@pytest.mark.skipif(not prometheus_available(), reason="needs Prometheus (Debian prometheus)")
def test_every_dashboard_query_returns_data_from_the_demo(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "devex_cli", "demo", "--serve", "--listen",
            f"127.0.0.1:{port}"]
    with running(argv, f"http://127.0.0.1:{port}/healthz", log=tmp_path / "demo.log", env=env), \
            prometheus(tmp_path / "prom", [f"127.0.0.1:{port}"], rule_files=[RULES]) as url:
        assert query(url, "dora:org_change_failure_ratio", wait=30)  # rules evaluated
        empty = []
        for board, title, expr in exprs():
            promql = (expr.replace("$window", "30d").replace("$service", ".*")
                      .replace("$environment", ".*"))
            if not query(url, promql, wait=10):
                empty.append(f"{board} / {title}: {promql}")
        assert not empty, "\n".join(empty)


def test_kubernetes_manifests_parse_and_hold_together() -> None:
    documents = [d for p in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
                 for d in yaml.safe_load_all(p.read_text()) if d]
    kinds = {d["kind"]: d for d in documents}
    assert {"Deployment", "Service", "ServiceMonitor", "ConfigMap", "CronJob"} <= set(kinds)
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert "--serve" in container["args"] and "0.0.0.0:9464" in container["args"]
    assert kinds["Deployment"]["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
    secret_refs = [e for e in container.get("envFrom", []) if "secretRef" in e]
    assert secret_refs, "tokens come from a Secret"
    config = kinds["ConfigMap"]["data"]["devex.toml"]
    import tomllib

    tomllib.loads(config)
    job = kinds["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert "push-metrics" in " ".join(job["args"] if "args" in job else job["command"])
    volumes = kinds["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
    cache = next(v for v in volumes if v["name"] == "cache")
    claim = cache["persistentVolumeClaim"]["claimName"]  # a job's cache outlives the job
    assert kinds["PersistentVolumeClaim"]["metadata"]["name"] == claim
