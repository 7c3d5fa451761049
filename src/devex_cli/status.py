"""`devex status`: what is deployed where now, from the GitOps repository (and Argo CD)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from devex_cli.config import Settings
from devex_cli.dora.model import ActualState, Skipped
from devex_cli.sources import gitops as gitops_source
from devex_cli.sources.gitops import DeployedState, GitOpsHistory, ThirdParty
from devex_cli.textsafe import safe, safe_markup
from devex_cli.timeutil import age, rfc3339


@dataclass(frozen=True)
class StatusReport:
    environments: tuple[str, ...]
    services: tuple[str, ...]
    states: Mapping[tuple[str, str], DeployedState]
    actual: Mapping[tuple[str, str], ActualState]
    skipped: tuple[Skipped, ...]
    head: str | None
    third_party: tuple[ThirdParty, ...] = ()


def skipped_items(history: GitOpsHistory) -> tuple[Skipped, ...]:
    """What the GitOps reading did not read, as `status` and `collect` both report it: every
    manifest version that could not be parsed (path and commit, anywhere in the history), then the
    files at the branch head that set images but belong to no environment. A tag that names no
    commit is read (a version), so it is not here."""
    return (*history.skipped,
            *(Skipped(path, history.head or "", "sets images but belongs to no environment "
                   "(no environment name in its path, and no gitops.manifests template)")
              for path in history.unread))


def build_status(
    history: GitOpsHistory,
    *,
    environments: Sequence[str] = (),
    actual: Mapping[tuple[str, str], ActualState] | None = None,
) -> StatusReport:
    """The state at the branch head, limited to `environments` when given, with the third-party
    images deployed there and what was skipped (`skipped_items`)."""
    envs = tuple(e for e in history.environments if not environments or e in environments)
    states = {k: v for k, v in history.current.items() if k[1] in envs}
    order = {env: i for i, env in enumerate(envs)}
    third_party = tuple(sorted((t for t in history.third_party if t.environment in order),
                               key=lambda t: (t.image, order[t.environment], t.manifest)))
    services = tuple(sorted({s for s, _ in states}))
    return StatusReport(envs, services, states, actual or {}, skipped_items(history),
                        history.head, third_party)


def read_status(settings: Settings, *, gitops: str | None, environments: Sequence[str],
                offline: bool) -> StatusReport:
    """The state at the GitOps repository's head (`gitops`, else the configured one, else the
    current folder) and, unless `offline`, what Argo CD runs. Raises UsageError for a
    repository, service or environment that is not there; Argo CD failing only degrades."""
    from devex_cli.sources.commitgraph import local_commit_checker

    repo = gitops_source.open_repository(gitops, settings, default_here=True)
    checker = local_commit_checker({name: s.repo for name, s in settings.services.items()
                                    if s.repo})
    history = gitops_source.read_history(repo, settings, has_commit=checker)
    history.require_services()
    history.require_environments(environments)
    actual = None
    if not offline and settings.environ.get("ARGOCD_SERVER"):
        from devex_cli.argocd_refine import actual_states
        from devex_cli.collect import read_argocd
        from devex_cli.sources.base import SourceHealth

        view = read_argocd(settings, history, SourceHealth())
        if view is not None:
            actual = actual_states(history, view, lambda synced: gitops_source.commits_after(
                repo, synced, history.head))
    return build_status(history, environments=environments, actual=actual)


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


def skipped_json(skipped: Sequence[Skipped]) -> list[dict[str, str]]:
    """The skipped items as `status --format json` and `collect --format json` write them."""
    return [{"path": s.path, "commit": s.commit, "reason": s.reason} for s in skipped]


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
