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
    source = (ROOT / "src" / "devex_cli" / "views" / "prometheus.py").read_text()
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


def kubernetes_documents() -> list[dict]:  # type: ignore[type-arg]
    return [d for p in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text()) if d]


def test_kubernetes_manifests_parse_and_hold_together() -> None:
    documents = kubernetes_documents()
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


def test_the_collectors_keep_their_cache_on_a_claim() -> None:
    """The cache devex writes (cache.dir of the mounted devex.toml, or DEVEX_CACHE_DIR) is a
    PersistentVolumeClaim for the Deployment as for the CronJob: the Argo CD history kept beyond
    Argo's last 10 syncs, the clones and the reader's state survive a restart. The pods stay
    non-root on a read-only root filesystem; the cache and /tmp are the only writable places."""
    import tomllib

    documents = kubernetes_documents()
    claims = {d["metadata"]["name"]: d for d in documents if d["kind"] == "PersistentVolumeClaim"}
    config_maps = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ConfigMap"}
    workloads = {d["kind"]: d for d in documents if d["kind"] in ("Deployment", "CronJob")}
    assert set(workloads) == {"Deployment", "CronJob"}
    used = {}
    for kind, workload in workloads.items():
        template = (workload["spec"]["template"] if kind == "Deployment"
                    else workload["spec"]["jobTemplate"]["spec"]["template"])
        pod = template["spec"]
        container = pod["containers"][0]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        command = " ".join(container.get("command", []) + container.get("args", []))
        config_path = re.search(r"--config (\S+)", command)
        assert config_path, f"{kind}: devex reads the ConfigMap's devex.toml"
        folder, file_name = config_path[1].rsplit("/", 1)
        config_map = config_maps[volumes[mounts[folder]["name"]]["configMap"]["name"]]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        cache_dir = env.get("DEVEX_CACHE_DIR") or \
            tomllib.loads(config_map["data"][file_name])["cache"]["dir"]
        assert cache_dir in mounts, f"{kind}: {cache_dir} would be on the read-only root"
        assert not mounts[cache_dir].get("readOnly")
        volume = volumes[mounts[cache_dir]["name"]]
        assert "persistentVolumeClaim" in volume, f"{kind}: the cache is {volume}, lost at restart"
        claim = claims[volume["persistentVolumeClaim"]["claimName"]]
        assert claim["metadata"]["namespace"] == workload["metadata"]["namespace"]
        used[kind] = claim["metadata"]["name"]

        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["fsGroup"]  # the non-root user may write the claim
        writable = {path for path, m in mounts.items() if not m.get("readOnly")}
        assert writable == {cache_dir, "/tmp"}
        assert env.get("HOME") in writable  # git writes under $HOME
    # Both may be applied together: a ReadWriteOnce claim each, never one cache for two writers.
    assert used["Deployment"] != used["CronJob"]
    deployment = workloads["Deployment"]["spec"]
    if "ReadWriteOnce" in claims[used["Deployment"]]["spec"]["accessModes"]:
        assert deployment["replicas"] == 1
        assert deployment["strategy"]["type"] == "Recreate", \
            "a rolling update starts the new pod before the old one lets go of the volume"


SHARDED = DEPLOY / "sharded"


def test_sharded_collectors_split_the_services_and_keep_their_own_caches() -> None:
    """deploy/sharded: two collectors of one devex.toml, each serving the services its
    DEVEX_COLLECT_SERVICES matches; every service name in exactly one set, a claim each."""
    from fnmatch import fnmatchcase

    from devex_cli.config import load_settings

    documents = [d for d in yaml.safe_load_all((SHARDED / "collectors.yaml").read_text()) if d]
    workloads = [d for d in documents if d["kind"] == "Deployment"]
    claims = {d["metadata"]["name"] for d in documents if d["kind"] == "PersistentVolumeClaim"}
    services = [d for d in documents if d["kind"] == "Service"]
    assert len(workloads) == 2 and len(services) == 2
    config_map = next(d for d in kubernetes_documents() if d["kind"] == "ConfigMap")
    sets, used = [], set()
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert "--serve" in container["args"] and "0.0.0.0:9464" in container["args"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
        used.add(volumes["cache"]["persistentVolumeClaim"]["claimName"])
        env = {e["name"]: e["value"] for e in container["env"]}
        settings = load_settings(None, environ={"DEVEX_CONFIG": "/dev/null", **env})
        sets.append(settings.collect.services)
        selector = workload["spec"]["selector"]["matchLabels"]
        assert any(s["spec"]["selector"] == selector for s in services)
    assert used <= claims and len(used) == 2, "never one cache for two writers"
    for name in ("payments", "checkout", "zebra", "anvil", "mango", "notifications", "9lives"):
        matched = [s for s in sets if any(fnmatchcase(name, p) for p in s)]
        assert len(matched) == 1, (name, sets)


@needs_promtool
def test_promtool_checks_the_sharded_prometheus_configs() -> None:
    for name in ("prometheus-remote-write.yml", "prometheus-federation.yml"):
        check = subprocess.run(["promtool", "check", "config", name], capture_output=True,
                               text=True, check=False, cwd=SHARDED)
        assert check.returncode == 0, check.stdout + check.stderr
    written = yaml.safe_load((SHARDED / "prometheus-remote-write.yml").read_text())
    assert written["remote_write"][0]["url"].endswith("/api/v1/push")
    targets = {t for c in written["scrape_configs"] for s in c["static_configs"]
               for t in s["targets"]}
    assert targets == {"devex-a.devex.svc:9464", "devex-b.devex.svc:9464"}
    federation = yaml.safe_load((SHARDED / "prometheus-federation.yml").read_text())
    job = federation["scrape_configs"][0]
    assert job["metrics_path"] == "/federate" and job["honor_labels"] is True
