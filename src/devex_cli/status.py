"""`devex status`: what is deployed where now, from the GitOps repository (and Argo CD)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from devex_cli.dora.model import ActualState
from devex_cli.sources.gitops import DeployedState, GitOpsHistory
from devex_cli.textsafe import safe, safe_markup
from devex_cli.timeutil import age, rfc3339


@dataclass(frozen=True)
class SkippedItem:
    path: str
    commit: str | None
    reason: str


@dataclass(frozen=True)
class StatusReport:
    environments: tuple[str, ...]
    services: tuple[str, ...]
    states: Mapping[tuple[str, str], DeployedState]
    actual: Mapping[tuple[str, str], ActualState]
    skipped: tuple[SkippedItem, ...]
    head: str | None


def build_status(
    history: GitOpsHistory,
    *,
    environments: Sequence[str] = (),
    unmatched: Sequence[str] = (),
    actual: Mapping[tuple[str, str], ActualState] | None = None,
) -> StatusReport:
    """The state at the branch head, limited to `environments` when given, with what was skipped."""
    envs = tuple(e for e in history.environments if not environments or e in environments)
    states = {k: v for k, v in history.current.items() if k[1] in envs}
    skipped = [SkippedItem(p.path, p.commit, p.reason) for p in history.broken_at_head]
    skipped += [SkippedItem(path, history.head, "matches no manifest template")
                for path in unmatched]
    skipped += [
        SkippedItem(state.manifest, state.gitops_commit,
                    f"image tag {state.release.version!r} of {state.service} names no commit "
                    "(a version, not a revision)")
        for state in sorted(states.values(), key=lambda s: (s.service, s.environment))
        if state.release.revision is None
    ]
    services = tuple(sorted({s for s, _ in states}))
    return StatusReport(envs, services, states, actual or {}, tuple(skipped), history.head)


def render_json(report: StatusReport) -> str:
    services = []
    for service in report.services:
        rows = []
        for environment in report.environments:
            state = report.states.get((service, environment))
            if state is None:
                continue
            actual = report.actual.get((service, environment))
            rows.append({
                "environment": environment,
                "revision": state.release.revision,
                "version": state.release.version,
                "deployed_at": rfc3339(state.deployed_at),
                "gitops_commit": state.gitops_commit,
                "manifest": state.manifest,
                "actual": None if actual is None else {
                    "revision": actual.revision, "version": actual.version,
                    "sync": actual.sync, "health": actual.health,
                    "application": actual.application, "gitops_revision": actual.gitops_revision,
                    "drift": actual.drift},
            })
        services.append({"service": service, "environments": rows})
    skipped = [{"path": s.path, "commit": s.commit, "reason": s.reason} for s in report.skipped]
    return json.dumps({"services": services, "skipped": skipped}, indent=2)


def render_table(report: StatusReport, *, now: datetime, color: bool) -> None:
    """A service x environment table on stdout, then what was skipped.

    Names, tags and paths come from the GitOps repository and Argo CD: each enters the table
    through `safe_markup` (no escape sequence, no rich markup); emoji codes stay text too.
    """
    from rich.console import Console
    from rich.table import Table

    console = Console(no_color=not color, highlight=False, soft_wrap=False, emoji=False,
                      width=None if sys.stdout.isatty() else 120)
    if not report.services:
        console.print("No service found in the GitOps repository "
                      "(check gitops.manifests against its layout).")
    else:
        console.print(f"Deployed now, GitOps {safe_markup((report.head or '')[:12])}:")
        table = Table()
        table.add_column("service", style="bold")
        for environment in report.environments:
            table.add_column(safe_markup(environment))
        for service in report.services:
            cells = [safe_markup(service)]
            for environment in report.environments:
                state = report.states.get((service, environment))
                cells.append("-" if state is None else _cell(
                    state, report.actual.get((service, environment)), now))
            table.add_row(*cells)
        console.print(table)
    if report.skipped:
        console.print(f"\nSkipped ({len(report.skipped)}):")
        for item in report.skipped:
            at = f" @ {safe(item.commit[:12])}" if item.commit else ""
            console.print(f"  {safe(item.path)}{at}: {safe(item.reason)}", markup=False)


def _cell(state: DeployedState, actual: ActualState | None, now: datetime) -> str:
    shown = state.release.revision[:7] if state.release.revision else state.release.version
    text = f"{safe_markup(shown)} ({age(now - state.deployed_at)})"
    if actual is not None:
        text += f"\n{safe_markup(actual.sync)}/{safe_markup(actual.health)}"
        if actual.drift:
            running = (actual.revision or "")[:7] or actual.version or "?"
            text += f"\nruns {safe_markup(running)} (drift)"
    return text
