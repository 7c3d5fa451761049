"""What a gate prints: the framed blocked message, the allowed table, or one JSON object."""

from __future__ import annotations

import json

from devex_cli.gates.decision import GateReport
from devex_cli.textsafe import safe

_WIDTH = 72


def _frame(title: str) -> list[str]:
    bar = "=" * _WIDTH
    return [bar, title.center(_WIDTH).rstrip(), bar]


def render_text(report: GateReport) -> str:
    """The seed's blocked message, or a table of the tickets when allowed.

    Every value from Jira, git or the GitOps repository goes through `safe`: an escape sequence
    in a ticket summary must not clear or rewrite the verdict in the pipeline's log.
    """
    lines: list[str] = []
    since = safe(report.deployed_revision[:12]) if report.deployed_revision else "(none)"
    count = len(report.tickets) + len(report.not_found)
    scope = (f"{safe(report.service)} -> {safe(report.environment)}: {report.commits} commit(s) "
             f"since {since}, {count} ticket(s)")
    if report.blocked:
        missing = [t for t in report.tickets if t.key in report.missing_fix_version]
        lines += _frame("QA DEPLOYMENT BLOCKED")
        lines += ["", scope]
        if missing:
            lines += ["", f"The following {len(missing)} ticket(s) are missing Release "
                          "Version/s:", ""]
            for ticket in missing:
                status = f" [{safe(ticket.status)}]" if ticket.status else ""
                moved = f" (now {safe(ticket.moved_to)})" if ticket.moved_to else ""
                lines.append(f"  - {safe(ticket.key)}{moved}{status} "
                             f"{safe(_clip(ticket.summary))}".rstrip())
                lines.append(f"    {safe(ticket.url)}")
        if report.not_found:
            lines += ["", f"The following {len(report.not_found)} ticket(s) were not found in "
                          "Jira or are not visible to this account:", ""]
            for key in report.not_found:
                lines.append(f"  - {safe(key)}")
                lines.append(f"    {safe(report.browse_url)}/{safe(key)}")
        lines += ["", "ACTION REQUIRED:"]
        steps = []
        if missing:
            steps += ["Open each ticket missing a Release Version in Jira.",
                      "Set its 'Fix Version/s' field to the release this deployment belongs to."]
        if report.not_found:
            steps += ["For each ticket not found: check its key in the commit message, or\n"
                      "     let the Jira account devex uses browse its project."]
        steps.append("Re-run this pipeline step; no new commit is needed.")
        lines += [f"  {n}. {step}" for n, step in enumerate(steps, 1)]
        lines += [
            f"  Every commit since the current {safe(report.environment)} release ships with this "
            "deployment:",
            "  a ticket that must not ship needs its change reverted, not its key removed.",
        ]
    else:
        lines.append(f"QA release gate: allowed. {scope}")
        if report.tickets:
            lines.append("")
            key_width = max(len("TICKET"), *(len(safe(t.key)) for t in report.tickets))
            lines.append(f"  {'TICKET'.ljust(key_width)}  FIX VERSIONS        STATUS")
            for ticket in report.tickets:
                versions = ", ".join(safe(v) for v in ticket.fix_versions)
                moved = f" (now {safe(ticket.moved_to)})" if ticket.moved_to else ""
                lines.append(f"  {safe(ticket.key).ljust(key_width)}  {versions.ljust(18)}  "
                             f"{safe(ticket.status)}{moved}".rstrip())
        if report.fail_open:
            lines.append("")
            lines.append("FAIL-OPEN: allowed without a full check, by --fail-open (the warning "
                         "on stderr says what was not checked).")
    return "\n".join(lines) + "\n"


def render_gate_json(report: GateReport) -> str:
    """Exactly one JSON object, the contract's shape (plus `warnings`)."""
    return json.dumps({
        "decision": report.decision,
        "service": report.service,
        "environment": report.environment,
        "deployed_revision": report.deployed_revision,
        "head": report.head,
        "commits": report.commits,
        "tickets": [
            {"key": t.key, "fix_versions": list(t.fix_versions), "status": t.status,
             "summary": t.summary, "url": t.url, "moved_to": t.moved_to}
            for t in report.tickets
        ],
        "missing_fix_version": list(report.missing_fix_version),
        "not_found": list(report.not_found),
        "unknown": list(report.unknown),
        "fail_open": report.fail_open,
        "warnings": list(report.warnings),
    }, indent=2, ensure_ascii=False)


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
