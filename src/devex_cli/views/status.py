"""What is deployed where now (`devex status`): the report built from the GitOps history (and
Argo CD's view), as JSON and as a table."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from devex_cli.dora.model import ActualState, Skipped
from devex_cli.sources.gitops import DeployedState, GitOpsHistory, ThirdParty
from devex_cli.textsafe import safe, safe_markup
from devex_cli.timeutil import age, rfc3339
from devex_cli.views.json import skipped_json


@dataclass(frozen=True)
class StatusReport:
    environments: tuple[str, ...]
    services: tuple[str, ...]
    states: Mapping[tuple[str, str], DeployedState]
    actual: Mapping[tuple[str, str], ActualState]
    skipped: tuple[Skipped, ...]
    head: str | None
    third_party: tuple[ThirdParty, ...] = ()


def build_status(
    history: GitOpsHistory,
    *,
    environments: Sequence[str] = (),
    actual: Mapping[tuple[str, str], ActualState] | None = None,
) -> StatusReport:
    """The state at the branch head, limited to `environments` when given, with the third-party
    images deployed there and what was skipped (`GitOpsHistory.skipped_items`)."""
    envs = tuple(e for e in history.environments if not environments or e in environments)
    states = {k: v for k, v in history.current.items() if k[1] in envs}
    order = {env: i for i, env in enumerate(envs)}
    third_party = tuple(sorted((t for t in history.third_party if t.environment in order),
                               key=lambda t: (t.image, order[t.environment], t.manifest)))
    services = tuple(sorted({s for s, _ in states}))
    return StatusReport(envs, services, states, actual or {}, history.skipped_items(),
                        history.head, third_party)


def render_status_json(report: StatusReport) -> str:
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
    third_party = [{"image": t.image, "environment": t.environment, "version": t.version,
                    "manifest": t.manifest} for t in report.third_party]
    return json.dumps({"services": services, "third_party": third_party,
                       "skipped": skipped_json(report.skipped)}, indent=2)


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
    if report.third_party:
        console.print("\nThird-party images (deployed beside the services, counted nowhere):")
        table = Table()
        table.add_column("image")
        for environment in report.environments:
            table.add_column(safe_markup(environment))
        images = sorted({t.image for t in report.third_party})
        for image in images:
            versions = {t.environment: t.version for t in report.third_party if t.image == image}
            table.add_row(safe_markup(image), *(safe_markup(versions[e]) if e in versions
                                                 else "-" for e in report.environments))
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
