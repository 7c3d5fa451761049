"""The context each card template receives, built from the pipeline, git, the GitOps history,
Jira and the parsed reports. Values are plain strings, numbers, lists and dicts."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devex_cli.config import Settings
from devex_cli.inputs.junit import TestReport
from devex_cli.inputs.security import SEVERITIES, SecurityReport
from devex_cli.pipeline_context import LocalCommit, PipelineContext

log = logging.getLogger("devex.report")

STATUS_STYLE = {"started": "accent", "succeeded": "good", "failed": "attention"}
STATUS_LABEL = {"started": "started", "succeeded": "succeeded", "failed": "FAILED"}
MESSAGE_LIMIT = 240


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """One line, at most `limit` characters, an ellipsis when cut."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _commit_url(pipeline: PipelineContext, sha: str) -> str | None:
    origin = pipeline.git_http_origin
    return f"{origin.rstrip('/')}/commits/{sha}" if origin else None


def _base(pipeline: PipelineContext, local: LocalCommit | None) -> dict[str, Any]:
    sha = pipeline.commit or (local.sha if local else "")
    return {
        "repository": pipeline.repo_slug or "",
        "branch": pipeline.branch or (local.branch if local else None) or "",
        "build_number": pipeline.build_number or "",
        "pipeline_url": pipeline.build_url,
        "commit": {"sha": sha, "short": sha[:7], "url": _commit_url(pipeline, sha) if sha else None,
                   "subject": clip(local.subject, 120) if local else "",
                   "author": local.author if local else ""},
        "pr": ({"id": pipeline.pr_id, "destination": pipeline.pr_destination_branch or "",
                "title": "", "url": (f"{pipeline.git_http_origin.rstrip('/')}/pull-requests/"
                                     f"{pipeline.pr_id}" if pipeline.git_http_origin else None)}
               if pipeline.pr_id else None),
        "notes": [],
    }


@dataclass(frozen=True)
class ChangeSummary:
    commits: list[dict[str, Any]]
    tickets: list[dict[str, Any]]
    previous_revision: str | None
    production_deployments: int | None  # in the GitOps history, for milestones
    clean_streak: int | None  # deployments to the environment since the last rollback


def deployment_context(
    *, service: str, environment: str, status: str, version: str, url: str | None,
    duration: str | None, pipeline: PipelineContext, local: LocalCommit | None,
    changes: ChangeSummary | None, at: datetime, production: bool, fun: bool,
    jira_url: str | None,
) -> dict[str, Any]:
    context = _base(pipeline, local)
    context.update({
        "service": service, "environment": environment, "status": status,
        "status_label": STATUS_LABEL[status], "style": STATUS_STYLE[status],
        "version": version, "url": url, "duration": duration,
        "triggered_by": (local.author if local else "") or "the pipeline",
        "commits": changes.commits if changes else [],
        "tickets": changes.tickets if changes else [],
        "previous_revision": (changes.previous_revision or "")[:7] if changes else "",
        "tickets_url": (f"{jira_url.rstrip('/')}/issues/?jql="
                        + "key%20in%20(" + "%2C".join(t["key"] for t in changes.tickets) + ")"
                        if jira_url and changes and changes.tickets else None),
    })
    if fun:
        context["notes"] = deployment_notes(status=status, production=production, at=at,
                                            service=service, changes=changes)
    return context


def deployment_notes(*, status: str, production: bool, at: datetime, service: str,
                     changes: ChangeSummary | None) -> list[str]:
    """The small touches: deterministic for the same input."""
    notes = []
    if production and status in ("started", "succeeded") and at.weekday() == 4 and at.hour >= 14:
        notes.append("🍕 A Friday-afternoon production deployment. Brave. Someone keep an eye on "
                     "the dashboards until it settles.")
    if production and status == "succeeded" and changes and changes.production_deployments:
        count = changes.production_deployments
        if count == 1:
            notes.append(f"🎉 The first production deployment of {service}. Welcome to prod!")
        elif count % 100 == 0:
            notes.append(f"🎉 The {count}th production deployment of {service}.")
    if status == "succeeded" and changes and changes.clean_streak and changes.clean_streak >= 10 \
            and changes.clean_streak % 10 == 0:
        notes.append(f"🟢 {changes.clean_streak} deployments in a row without a rollback.")
    return notes


def tests_context(report: TestReport, *, title: str | None, pipeline: PipelineContext,
                  local: LocalCommit | None, fun: bool) -> dict[str, Any]:
    context = _base(pipeline, local)
    rate = report.pass_rate
    context.update({
        "title": title or ("Tests passed" if report.ok else "Tests failed"),
        "ok": report.ok, "style": "good" if report.ok else "attention",
        "tests": report.tests, "passed": report.passed, "failures": report.failures,
        "errors": report.errors, "skipped": report.skipped, "flaky": report.flaky,
        "pass_rate": f"{rate:.1%}" if rate is not None else "-",
        "duration": _duration(report.duration_seconds),
        "failed": [{"name": f"{f.suite} › {f.name}", "kind": f.kind,
                    "message": clip(f.message, 300)} for f in report.failed],
        "files": list(report.files),
    })
    if fun and report.ok and report.flaky:
        context["notes"] = [f"🙂 All green, though {report.flaky} flaky test(s) needed a retry."]
    elif fun and report.ok and report.tests >= 1000:
        context["notes"] = [f"✅ {report.tests:,} tests, not one red."]
    return context


def security_context(report: SecurityReport, *, pipeline: PipelineContext,
                     local: LocalCommit | None) -> dict[str, Any]:
    context = _base(pipeline, local)
    by_severity = report.findings_by_severity()
    bands = report.vulnerabilities_by_band()
    serious = by_severity.get(5, 0) + by_severity.get(4, 0) + bands["critical"] + bands["high"]
    context.update({
        "style": "attention" if serious else ("warning" if report.findings or
                                               report.vulnerabilities else "good"),
        "headline": (f"{serious} high or very high finding(s)" if serious else
                     "No high findings"),
        "has_findings": bool(report.findings), "has_vulnerabilities":
            bool(report.vulnerabilities),
        "severity_counts": [[SEVERITIES[s], by_severity.get(s, 0)]
                            for s in sorted(SEVERITIES, reverse=True)],
        "band_counts": [[band, n] for band, n in bands.items() if band != "none"],
        "findings": [{"severity": SEVERITIES[f.severity], "title": clip(f.title, 120),
                      "cwe": f"CWE-{f.cwe}" if f.cwe else "",
                      "where": f"{f.file}:{f.line}" if f.file and f.line else (f.file or "")}
                     for f in report.worst_findings],
        "vulnerabilities": [{"cve": v.cve or "(no CVE)", "title": clip(v.title, 120),
                             "cvss": f"{v.cvss:.1f}" if v.cvss is not None else "-",
                             "band": v.band, "library": v.library or "",
                             "version": v.version or "", "fix": v.fix or ""}
                            for v in report.worst_vulnerabilities],
        "scans": list(report.sources),
    })
    return context


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f}s"


def summarise_changes(settings: Settings, *, service: str, environment: str, head: str | None,
                      repo_path: Any, jira: bool) -> ChangeSummary | None:
    """Commits and tickets since the previous deployment of the service to the environment,
    from the GitOps history and the local app repository; None when that cannot be known.
    Never raises for an outside system: a notification must not fail on it."""
    from devex_cli.changes import TicketRule
    from devex_cli.errors import DevexError
    from devex_cli.sources import gitops
    from devex_cli.sources.apprepo import AppRepo

    if not settings.gitops.repo or not head:
        return None
    try:
        repo = gitops.open_repository(None, settings)
        history = gitops.read_history(repo, settings)
        app = AppRepo(repo_path)
        full_head = app.resolve(head) or head
        mine = [d for d in history.deployments
                if d.service == service and d.environment == environment]
        earlier = [d for d in mine if not (d.release.revision and
                                           full_head.startswith(d.release.revision))]
        previous = earlier[-1].release.revision if earlier else None
        commits = []
        if previous:
            base = app.range_base(previous, full_head)
            commits = list(reversed(app.commits(base, full_head)))
        production = history.production
        count = sum(1 for d in history.deployments
                    if d.service == service and d.environment == production)
        streak = 0
        for rolled_back in _rollbacks_newest_first(app, mine[-100:]):
            if rolled_back:
                break
            streak += 1
    except DevexError as exc:
        log.warning("%s; the card lists no commits", exc)
        return None
    keys = TicketRule(settings).keys(c.message for c in commits)
    tickets = [{"key": k, "url": f"{settings.jira.url.rstrip('/')}/browse/{k}"
                if settings.jira.url else None, "summary": "", "status": ""} for k in keys]
    if jira and keys:
        tickets = _card_tickets_with_jira(settings, tickets)
    return ChangeSummary(
        commits=[{"short": c.sha[:7], "subject": clip(c.subject, 120), "author": c.author,
                  "url": None} for c in commits if not c.is_merge],
        tickets=tickets, previous_revision=previous, production_deployments=count,
        clean_streak=streak)


def _rollbacks(app: Any, deployments: Sequence[Any]) -> list[bool]:
    """Which of one environment's deployments are rollbacks, by the DORA rule (dora.rollbacks):
    ancestry where the app repository has both revisions, else the GitOps history."""
    return list(reversed(list(_rollbacks_newest_first(app, deployments))))


def _rollbacks_newest_first(app: Any, deployments: Sequence[Any]) -> Iterator[bool]:
    """The verdicts newest first, the app repository asked only as far as they are read (the
    card's streak stops at the newest rollback: a few git processes, not two per deployment).
    The GitOps rule's ranks do not depend on ancestry, so they are computed once up front."""
    from devex_cli.dora.model import DeploymentRecord
    from devex_cli.dora.rollbacks import rollbacks

    def ancestry(deployment: Any) -> bool | None:
        if not (deployment.previous and deployment.previous.revision
                and deployment.release.revision):
            return None
        old = app.resolve(deployment.previous.revision)
        new = app.resolve(deployment.release.revision)
        if not (old and new):
            return None
        return old != new and bool(app.is_ancestor(new, old))

    by_gitops = rollbacks([DeploymentRecord(
        d.service, d.environment, d.release.revision, d.release.version, d.time,
        d.gitops_commit) for d in deployments])
    for deployment, gitops in zip(reversed(deployments), reversed(by_gitops), strict=True):
        verdict = ancestry(deployment)
        yield gitops if verdict is None else verdict


def _card_tickets_with_jira(settings: Settings,
                            tickets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    from devex_cli.changes import look_up
    from devex_cli.errors import DevexError

    try:
        lookup = look_up(settings, [t["key"] for t in tickets])
    except DevexError as exc:
        log.warning("%s; tickets are listed without their summaries", exc)
        return list(tickets)
    return [{**t, "summary": clip(found.summary, 100), "status": found.status}
            if (found := lookup.tickets.get(t["key"])) else
            {**t, "status": "not found in Jira"}
            for t in tickets if t["key"] not in lookup.not_tickets]
