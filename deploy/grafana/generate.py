"""Grafana dashboards for devex, generated from code so that panels follow the metric names.

    python deploy/grafana/generate.py      # rewrites deploy/grafana/dashboards/*.json

A small generator of our own (the dashboards use six panel kinds); the JSON is provisioning-ready:
the data source is the `datasource` variable, and `service` / `environment` variables filter.
tests/test_deploy.py checks that every query names only metrics devex exposes or the recording
rules in deploy/prometheus/devex-rules.yml define, and that a real Prometheus answers each one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
W = 'window="$window"'
SVC = 'service=~"$service"'
ENV = 'environment=~"$environment"'


@dataclass
class Panel:
    title: str
    kind: str  # stat | timeseries | table | bargauge | barchart
    exprs: list[tuple[str, str]]  # (expr, legend)
    unit: str = "none"
    width: int = 6
    height: int = 6
    description: str = ""
    instant: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    thresholds: list[tuple[float | None, str]] = field(default_factory=list)


def _panel(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    grafana_type = {"barchart": "bargauge"}.get(panel.kind, panel.kind)
    steps = [{"color": color, "value": value} for value, color in
             (panel.thresholds or [(None, "green")])]
    out: dict[str, Any] = {
        "id": pid, "type": grafana_type, "title": panel.title, "description": panel.description,
        "datasource": DS, "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit,
                                     "thresholds": {"mode": "absolute", "steps": steps}},
                        "overrides": []},
        "options": panel.options,
        "targets": [{"refId": chr(65 + n), "datasource": DS, "expr": expr,
                     "legendFormat": legend, "instant": panel.instant and panel.kind != "timeseries",
                     "range": panel.kind == "timeseries",
                     "format": "table" if panel.kind == "table" else "time_series"}
                    for n, (expr, legend) in enumerate(panel.exprs)],
    }
    if panel.kind == "table":
        out["transformations"] = [{"id": "merge", "options": {}}]
    return out


def _variables(with_environment: bool = True) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
        {"name": "window", "type": "custom", "label": "Window", "query": "7d,30d,90d",
         "current": {"text": "30d", "value": "30d"},
         "options": [{"text": w, "value": w, "selected": w == "30d"} for w in ("7d", "30d", "90d")]},
        {"name": "service", "type": "query", "label": "Service", "datasource": DS,
         "query": {"query": "label_values(deployment_desired_state, service)", "refId": "s"},
         "definition": "label_values(deployment_desired_state, service)",
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2},
    ]
    if with_environment:
        variables.append({
            "name": "environment", "type": "query", "label": "Environment", "datasource": DS,
            "query": {"query": "label_values(devex_environment_info, environment)", "refId": "e"},
            "definition": "label_values(devex_environment_info, environment)",
            "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2})
    return variables


def dashboard(uid: str, title: str, description: str, rows: list[list[Panel]],
              with_environment: bool = True) -> dict[str, Any]:
    panels, pid, y = [], 1, 0
    for row in rows:
        x = 0
        for panel in row:
            panels.append(_panel(panel, pid, x, y))
            pid, x = pid + 1, x + panel.width
        y += max(p.height for p in row)
    return {
        "uid": uid, "title": title, "description": description, "tags": ["devex", "dora"],
        "editable": True, "schemaVersion": 39, "version": 1, "time": {"from": "now-30d",
                                                                       "to": "now"},
        "refresh": "5m", "templating": {"list": _variables(with_environment)},
        "annotations": {"list": []}, "panels": panels,
    }


TIER = [(None, "red"), (1, "orange"), (2, "yellow"), (3, "green")]


def dashboards() -> dict[str, dict[str, Any]]:
    overview = dashboard("devex-dora", "DORA overview",
                         "The four keys in production, their DORA tier, and the trend per month.", [
        [Panel("Deployments per day", "stat",
               [(f'sum(dora:production_deployment_frequency:per_day{{{W},{SVC}}})', "")],
               description="Production deployments per day over the window, all selected services."),
         Panel("Lead time (median of services)", "stat",
               [(f'quantile(0.5, dora:production_lead_time_seconds{{{W},{SVC},statistic="median"}})', "")],
               unit="s", description="Commit (author time) to its first production deployment."),
         Panel("Change failure rate", "stat",
               [(f'sum(dora_failed_deployments{{{W},{SVC}}} * on (environment) group_left () max by (environment) (devex_production_environment))'
                 f' / sum(dora:production_deployments{{{W},{SVC}}})', "")],
               unit="percentunit", thresholds=[(None, "green"), (0.1, "orange"), (0.2, "red")]),
         Panel("Recovery time (median of services)", "stat",
               [(f'quantile(0.5, dora:production_recovery_time_seconds{{{W},{SVC},statistic="median"}}) or vector(0)', "")],
               unit="s")],
        [Panel("DORA tier per service", "bargauge",
               [(f'dora_performance_tier{{{W},{SVC}}}', "{{service}}")], width=12, height=8,
               description="0 low, 1 medium, 2 high, 3 elite (2024 DORA report thresholds, docs/dora.md).",
               thresholds=TIER, options={"orientation": "horizontal", "displayMode": "basic"}),
         Panel("Production deployments per month", "barchart",
               [('dora:org_deployments_per_month:sum', "{{month}}")], width=12, height=8)],
        [Panel("The four keys per service", "table",
               [(f'dora:production_deployment_frequency:per_day{{{W},{SVC}}}', "per day"),
                (f'dora:production_lead_time_seconds{{{W},{SVC},statistic="median"}}', "lead time"),
                (f'dora:production_change_failure_ratio{{{W},{SVC}}}', "failure rate"),
                (f'dora:production_recovery_time_seconds{{{W},{SVC}}} or vector(0)', "recovery")],
               width=24, height=9)],
    ], with_environment=False)
    deployments = dashboard("devex-deployments", "Deployments",
                            "How often each service reaches each environment.", [
        [Panel("Deployments in the window", "bargauge",
               [(f'sum by (service) (dora_deployments{{{W},{SVC},{ENV}}})', "{{service}}")],
               width=12, height=8, options={"orientation": "horizontal"}),
         Panel("Deployments per environment", "bargauge",
               [(f'sum by (environment) (dora_deployments{{{W},{SVC},{ENV}}})', "{{environment}}")],
               width=12, height=8)],
        [Panel("Deployments per month", "barchart",
               [(f'sum by (month) (dora_monthly_deployments{{{SVC},{ENV}}})', "{{month}}")],
               width=12, height=8),
         Panel("Rollbacks and hotfixes (rework)", "bargauge",
               [(f'sum by (service) (dora_rollbacks{{{W},{SVC},{ENV}}} + dora_hotfixes{{{W},{SVC},{ENV}}})', "{{service}}")],
               width=12, height=8)],
        [Panel("Deployed now", "table",
               [(f'deployment_desired_state{{{SVC},{ENV}}}', ""),
                (f'deployment_age_seconds{{{SVC},{ENV}}}', "age")], width=24, height=10)],
    ])
    lead_time = dashboard("devex-lead-time", "Lead time and bottlenecks",
                          "Where commits wait on their way to production.", [
        [Panel("Lead time to production (p50, p90)", "bargauge",
               [(f'dora:production_lead_time_seconds{{{W},{SVC},statistic="median"}}', "{{service}} p50"),
                (f'dora:production_lead_time_seconds{{{W},{SVC},statistic="p90"}}', "{{service}} p90")],
               unit="s", width=12, height=9, options={"orientation": "horizontal"}),
         Panel("Median wait per stage, all services", "bargauge",
               [(f'dora_promotion_wait_seconds{{{W},service="",statistic="median"}}',
                 "{{from_environment}} → {{to_environment}}")], unit="s", width=12, height=9)],
        [Panel("Bottleneck per service", "table",
               [(f'dora_bottleneck{{{W},{SVC}}} * on (service, from_environment, to_environment, window) '
                 f'group_left () dora_promotion_wait_seconds{{statistic="median"}}', "")],
               unit="s", width=12, height=9),
         Panel("Lead time to each environment (median)", "table",
               [(f'deployment_lead_time_seconds{{{W},{SVC},{ENV},statistic="median"}}', "")],
               unit="s", width=12, height=9)],
    ])
    qa_release = dashboard("devex-qa-release", "QA release",
                           "Tickets deployed to an environment and not yet in production.", [
        [Panel("Tickets waiting for production", "stat",
               [(f'sum(devex_tickets_in_environment{{{SVC},{ENV}}})', "")]),
         Panel("Without a fix version", "stat",
               [(f'count(ticket_missing_fix_version{{{SVC},{ENV}}}) or vector(0)', "")],
               thresholds=[(None, "green"), (1, "red")],
               description="Tickets Jira has no Release Version for: the QA gate blocks them."),
         Panel("Tickets per environment", "bargauge",
               [(f'sum by (environment) (devex_tickets_in_environment{{{SVC},{ENV}}})', "{{environment}}")],
               width=12)],
        [Panel("Tickets in the release (missing fix versions highlighted)", "table",
               [(f'ticket_in_environment{{{SVC},{ENV}}}', ""),
                (f'ticket_missing_fix_version{{{SVC},{ENV}}} or vector(0)', "missing fix version")],
               width=16, height=12),
         Panel("Fix versions", "table",
               [('ticket_fix_version or vector(0)', "")], width=8, height=12)],
    ])
    drift = dashboard("devex-drift", "Desired and actual state",
                      "What the GitOps repository asks for beside what Argo CD runs.", [
        [Panel("Services drifting", "stat",
               [(f'sum(deployment_drift{{{SVC},{ENV}}}) or vector(0)', "")],
               thresholds=[(None, "green"), (1, "red")]),
         Panel("Longest drift", "stat",
               [(f'max(deployment_drift_seconds{{{SVC},{ENV}}}) or vector(0)', "")], unit="s"),
         Panel("Desired state", "table",
               [(f'deployment_desired_state{{{SVC},{ENV}}}', "")], width=12)],
        [Panel("Actual state (Argo CD)", "table",
               [(f'deployment_actual_state{{{SVC},{ENV}}} or vector(0)', "")], width=24,
               height=10)],
    ])
    health = dashboard("devex-health", "devex collector health",
                       "Is the collector up, reading every source, and fresh?", [
        [Panel("Sources up", "stat", [('devex_source_up', "{{source}}")],
               thresholds=[(None, "red"), (1, "green")], width=12),
         Panel("Age of the figures", "stat",
               [('time() - devex_snapshot_timestamp_seconds', "")], unit="s",
               thresholds=[(None, "green"), (1800, "orange"), (3600, "red")]),
         Panel("Collection duration", "stat",
               [('devex_collection_duration_seconds or vector(0)', "")], unit="s")],
        [Panel("Data quality", "table",
               [('devex_manifests_skipped', "manifests skipped"),
                ('devex_revisions_not_found', "revisions not found"),
                ('devex_deployments_without_change_set', "without change set")], width=24)],
    ], with_environment=False)
    return {"dora-overview": overview, "deployments": deployments, "lead-time": lead_time,
            "qa-release": qa_release, "drift": drift, "collector-health": health}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, board in dashboards().items():
        (OUT / f"{name}.json").write_text(json.dumps(board, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {OUT / name}.json ({len(board['panels'])} panels)")


if __name__ == "__main__":
    main()
