"""Pipeline events as metric families for the Pushgateway. Pure.

Times are pushed as timestamps ("last deployed at"), never as "time since", which would be stale
the moment it was pushed. docs/metrics.md lists every family.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric

from devex_cli.deployment_status import DEPLOYMENT_STATUSES
from devex_cli.inputs.junit import TestReport
from devex_cli.inputs.security import SEVERITIES, SecurityReport


def _severity_label(name: str) -> str:
    return name.lower().replace(" ", "_")


def deployment_families(*, service: str, environment: str, status: str, version: str,
                        at: datetime, duration_seconds: float | None) -> list[Metric]:
    labels = ["service", "environment"]
    values = [service, environment]
    families: list[Metric] = []
    state = GaugeMetricFamily("devex_deployment_status",
                              "1 for the status of the last deployment event, 0 for the others",
                              labels=[*labels, "status"])
    for candidate in DEPLOYMENT_STATUSES:
        state.add_metric([*values, candidate], 1 if candidate == status else 0)
    families.append(state)
    when = GaugeMetricFamily(f"devex_deployment_{status}_timestamp_seconds",
                             f"When a deployment last {status} (Unix time)", labels=labels)
    when.add_metric(values, at.timestamp())
    families.append(when)
    info = GaugeMetricFamily("devex_deployment_version_info",
                             "1 for the version of the last deployment event", labels=[
                                 *labels, "version"])
    info.add_metric([*values, version], 1)
    families.append(info)
    if duration_seconds is not None:
        took = GaugeMetricFamily("devex_deployment_duration_seconds",
                                 "How long the last deployment took", labels=labels)
        took.add_metric(values, duration_seconds)
        families.append(took)
    return families


def tests_families(report: TestReport, *, service: str, at: datetime) -> list[Metric]:
    results = GaugeMetricFamily("devex_tests", "Tests of the last run by result",
                                labels=["service", "result"])
    for result, count in (("passed", report.passed), ("failed", report.failures),
                          ("error", report.errors), ("skipped", report.skipped),
                          ("flaky", report.flaky)):
        results.add_metric([service, result], count)
    last = GaugeMetricFamily("devex_tests_last_run_timestamp_seconds",
                             "When the tests last ran (Unix time)", labels=["service"])
    last.add_metric([service], at.timestamp())
    families: list[Metric] = [results, last]
    if report.duration_seconds is not None:  # unknown (a `nan` time): not pushed, never NaN
        duration = GaugeMetricFamily("devex_tests_duration_seconds",
                                     "Duration of the last test run", labels=["service"])
        duration.add_metric([service], report.duration_seconds)
        families.insert(1, duration)
    if report.pass_rate is not None:
        ratio = GaugeMetricFamily("devex_tests_pass_ratio", "Passed / run (0-1) in the last run",
                                  labels=["service"])
        ratio.add_metric([service], report.pass_rate)
        families.append(ratio)
    return families


def security_families(report: SecurityReport, *, service: str, at: datetime) -> list[Metric]:
    families: list[Metric] = []
    if report.static_scanned:
        findings = GaugeMetricFamily("devex_security_findings",
                                     "Static analysis findings of the last scan by severity",
                                     labels=["service", "severity"])
        for severity, count in sorted(report.findings_by_severity().items(), reverse=True):
            findings.add_metric([service, _severity_label(SEVERITIES[severity])], count)
        families.append(findings)
    if report.sca_scanned:
        vulnerabilities = GaugeMetricFamily(
            "devex_security_vulnerabilities",
            "Vulnerable dependencies of the last SCA scan by CVSS band", labels=["service",
                                                                                "band"])
        for band, count in report.vulnerabilities_by_band().items():
            vulnerabilities.add_metric([service, band], count)
        families.append(vulnerabilities)
    last = GaugeMetricFamily("devex_security_last_scan_timestamp_seconds",
                             "When the last security scan ran (Unix time)", labels=["service"])
    last.add_metric([service], at.timestamp())
    families.append(last)
    return families
